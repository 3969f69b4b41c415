"""Settings of the insights feature (INSIGHTS_*), and building the analyzer they select.

Kept here (not in shared/config.py, which another part owns) but built the same way: from an
explicit mapping, validated, failing with the setting's name. The foundation can add
``InsightsSettings`` to ``shared.config._GROUPS`` unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError
from shared.insights.attachment_parsers import ExtractionLimits
from shared.insights.sentiment import SentimentAnalyzer, VaderAnalyzer


class InsightsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSIGHTS_", extra="ignore", case_sensitive=False)
    enabled: bool = True
    rules_file: str | None = None
    language: str = "en"
    # Azure AI Language: set the endpoint to switch from the local analyzer; key, or managed identity
    azure_language_endpoint: str = ""
    azure_language_key: str | None = None
    azure_language_use_managed_identity: bool = False
    azure_language_client_id: str | None = None  # user-assigned managed identity
    azure_language_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 30.0
    attachment_max_bytes: Annotated[int, Field(ge=1024, le=100 * 1024 * 1024)] = 10 * 1024 * 1024
    attachment_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0
    attachment_max_chars: Annotated[int, Field(ge=1000, le=2_000_000)] = 100_000
    attachment_max_pdf_pages: Annotated[int, Field(ge=1, le=10_000)] = 50
    attachment_memory_limit_mb: Annotated[int, Field(ge=0, le=16384)] = 1024  # 0 = no cap

    @field_validator("azure_language_endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https URL (plain http only for a local stand-in)")
        return v.rstrip("/")

    @property
    def azure_configured(self) -> bool:
        return bool(self.azure_language_endpoint and (self.azure_language_key or self.azure_language_use_managed_identity))

    def extraction_limits(self) -> ExtractionLimits:
        return ExtractionLimits(
            max_bytes=self.attachment_max_bytes,
            timeout_seconds=self.attachment_timeout_seconds,
            max_chars=self.attachment_max_chars,
            max_pdf_pages=self.attachment_max_pdf_pages,
            memory_limit_bytes=self.attachment_memory_limit_mb * 1024 * 1024 or None,
        )


def load_insights_settings(environ: Mapping[str, str] | None = None) -> InsightsSettings:
    from shared.config import _build

    env = dict(os.environ if environ is None else environ)
    try:
        s = _build(InsightsSettings, env)
    except ValidationError as exc:
        problems = [f"INSIGHTS_{str(e['loc'][0]).upper() if e.get('loc') else ''}: {e.get('msg')}" for e in exc.errors()]
        raise ConfigurationError("invalid configuration: " + "; ".join(problems), settings=problems) from exc
    if not isinstance(s, InsightsSettings):  # pragma: no cover - _build returns the class it was given
        raise ConfigurationError("insights settings could not be built")
    return s


def build_analyzer(settings: InsightsSettings) -> SentimentAnalyzer:
    """Azure AI Language when an endpoint and a credential are configured, else local VADER."""
    if not settings.azure_configured:
        return VaderAnalyzer()
    from shared.insights.azure_analyzer import AzureLanguageAnalyzer

    credential: object
    if settings.azure_language_key:
        credential = settings.azure_language_key
    else:
        from azure.identity.aio import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=settings.azure_language_client_id)
    return AzureLanguageAnalyzer(
        settings.azure_language_endpoint,
        credential,
        language=settings.language,
        timeout_seconds=settings.azure_language_timeout_seconds,
    )
