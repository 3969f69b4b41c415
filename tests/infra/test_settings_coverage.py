"""Every setting the code reads (shared/config.py) is defined in the bicep app settings and in
local.settings.sample.json, except the few listed below with the reason they do not belong there.
A new settings field without a deployment value fails here, naming the setting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic_settings import BaseSettings

import shared.config as config
from tests.infra.bicep import MAIN, ROOT, is_reference, main_app_settings, platform_app_settings

SAMPLE = ROOT / "local.settings.sample.json"

# Settings the code reads that the Azure deployment deliberately leaves out.
NOT_IN_AZURE: dict[str, str] = {
    "AzureWebJobsStorage": "Azure uses the identity-based AzureWebJobsStorage__* settings; a connection string "
                           "needs shared keys, which the storage account disables.",
    "EWS_CA_BUNDLE": "a file path on the host: set by hand where the on-premises endpoint uses an internal CA.",
    "GRAPH_CA_BUNDLE": "sandbox only: trusts the Graph simulator's self-signed CA; Azure uses the public CAs.",
}

# Settings the code reads that a local run (Azurite, simulators) deliberately leaves out.
NOT_IN_LOCAL_SAMPLE: dict[str, str] = {
    "AzureWebJobsStorage__queueServiceUri": "identity-based storage is for Azure; local runs use Azurite through "
                                            "the AzureWebJobsStorage connection string.",
    "AzureWebJobsStorage__tableServiceUri": "same as AzureWebJobsStorage__queueServiceUri.",
    "AzureWebJobsStorage__clientId": "same as AzureWebJobsStorage__queueServiceUri (no managed identity locally).",
}


def _groups() -> list[tuple[type[BaseSettings], str]]:
    """Every settings class in shared/config.py, with its env prefix."""
    found: dict[type[BaseSettings], str] = {}
    for cls, prefix in getattr(config, "_GROUPS", {}).values():
        found[cls] = prefix
    for obj in vars(config).values():
        if (isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings
                and obj.__module__ == config.__name__):
            found.setdefault(obj, str(obj.model_config.get("env_prefix", "")))
    return sorted(found.items(), key=lambda kv: kv[0].__name__)


def code_settings() -> dict[str, tuple[str, Any]]:
    """Setting name -> (group class name, the code's default)."""
    out: dict[str, tuple[str, Any]] = {}
    for cls, prefix in _groups():
        prefix = str(cls.model_config.get("env_prefix", prefix))
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
            name = alias or f"{prefix}{field_name}".upper()
            out[name] = (cls.__name__, field.default)
    return out


def test_settings_are_discovered():
    names = code_settings()
    # A few anchors per group, so that a broken introspection cannot pass vacuously.
    for anchor in ("AzureWebJobsStorage", "GRAPH_CLIENT_ID", "PEGA_BASE_URL", "API_AUDIENCE",
                   "SYNC_NOTIFICATION_FREQUENCY_MINUTES", "APP_MODE"):
        assert anchor in names
    assert len(names) >= 40


def test_allow_lists_name_real_settings():
    names = code_settings()
    stale = [n for n in (*NOT_IN_AZURE, *NOT_IN_LOCAL_SAMPLE) if n not in names]
    assert not stale, f"allow-listed settings the code no longer reads: {stale}"


def test_every_setting_is_defined_in_the_bicep_app_settings():
    defined = {**main_app_settings(), **platform_app_settings()}
    missing = sorted(n for n in code_settings() if n not in defined and n not in NOT_IN_AZURE)
    assert not missing, (
        "settings the code reads but infra/main.bicep (var appSettings) does not define: " + ", ".join(missing)
    )


def test_bicep_app_settings_are_settings_the_code_reads():
    """A typo (GRAPH_CLIENTID) would otherwise deploy a setting nobody reads and leave the real one unset."""
    names = code_settings()
    unknown = sorted(n for n in main_app_settings() if n not in names)
    assert not unknown, f"infra/main.bicep sets settings shared/config.py does not declare: {unknown}"


def test_bicep_literal_values_pass_the_codes_validation():
    """Literal values in the bicep (numbers, enums, booleans) are ones the code accepts."""
    env = {k: v for k, v in main_app_settings().items() if isinstance(v, str) and not is_reference(MAIN, v)}
    assert len(env) >= 20, "expected many literal defaults"
    env |= {
        "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net",
    }
    config.load_settings(env)  # raises ConfigurationError naming each bad value


def test_every_setting_is_in_local_settings_sample():
    if not SAMPLE.exists():
        pytest.fail(f"{SAMPLE.name} is missing (the foundation owner's file): every setting needs a local value",
                    pytrace=False)
    values = json.loads(SAMPLE.read_text()).get("Values", {})
    missing = sorted(n for n in code_settings() if n not in values and n not in NOT_IN_LOCAL_SAMPLE)
    assert not missing, f"settings the code reads but {SAMPLE.name} does not define: " + ", ".join(missing)
