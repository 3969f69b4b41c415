"""Building what the insights settings (INSIGHTS_*, declared in shared/config.py) select."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from shared.config import InsightsSettings
from shared.errors import ConfigurationError
from shared.insights.attachment_parsers import ExtractionLimits
from shared.insights.sentiment import SentimentAnalyzer, VaderAnalyzer


def extraction_limits(settings: InsightsSettings) -> ExtractionLimits:
    return ExtractionLimits(
        max_bytes=settings.attachment_max_bytes,
        timeout_seconds=settings.attachment_timeout_seconds,
        max_chars=settings.attachment_max_chars,
        max_pdf_pages=settings.attachment_max_pdf_pages,
        memory_limit_bytes=settings.attachment_memory_limit_mb * 1024 * 1024 or None,
    )


def load_insights_settings(environ: Mapping[str, str]) -> InsightsSettings:
    """Validate just the insights group from an explicit mapping (the app uses get_settings())."""
    from shared.config import _build

    try:
        built = _build(InsightsSettings, dict(environ))
    except ValidationError as exc:
        problems = [f"INSIGHTS_{str(e['loc'][0]).upper() if e.get('loc') else ''}: {e.get('msg')}" for e in exc.errors()]
        raise ConfigurationError("invalid configuration: " + "; ".join(problems), settings=problems) from exc
    if not isinstance(built, InsightsSettings):  # pragma: no cover - _build returns the class it was given
        raise ConfigurationError("insights settings could not be built")
    return built


def build_analyzer(settings: InsightsSettings) -> SentimentAnalyzer:
    """Azure AI Language when an endpoint and a credential are configured, else the local analyzer
    (``INSIGHTS_ANALYZER``: the sentence model, or VADER)."""
    if not settings.azure_configured:
        if settings.analyzer == "vader":
            return VaderAnalyzer()
        from shared.insights.model_analyzer import ModelAnalyzer

        return ModelAnalyzer(name=settings.sentiment_model)
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
