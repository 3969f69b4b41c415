"""The one typed place where settings are read.

Functions app settings arrive as environment variables (from local.settings.json when run
locally, from app settings in Azure). Every setting the code reads is declared here, so that a
wrong value fails at start with a message naming the setting instead of surfacing later as a
confusing runtime error. Nothing is read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError


class AppMode(str, enum.Enum):
    SANDBOX = "sandbox"
    REAL = "real"


class CredentialKind(str, enum.Enum):
    SECRET = "secret"
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY = "managed_identity"


class PrivatePolicy(str, enum.Enum):
    """What happens to items marked private in Outlook (Pega's connector always skips them)."""

    SKIP = "skip"
    MASK = "mask"
    FULL = "full"


class ConflictPolicy(str, enum.Enum):
    """Who wins a true conflict (same field changed on both sides since the last sync)."""

    NEWER = "newer"
    PEGA = "pega"
    EXCHANGE = "exchange"


_COMMON = SettingsConfigDict(extra="ignore", case_sensitive=True, populate_by_name=True)


class StorageSettings(BaseSettings):
    """Where state (tables) and work (queues) live: the Functions host storage account."""

    model_config = _COMMON
    connection_string: str | None = Field(default=None, alias="AzureWebJobsStorage")
    queue_service_uri: str | None = Field(default=None, alias="AzureWebJobsStorage__queueServiceUri")
    table_service_uri: str | None = Field(default=None, alias="AzureWebJobsStorage__tableServiceUri")
    managed_identity_client_id: str | None = Field(default=None, alias="AzureWebJobsStorage__clientId")
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = Field(default=10.0, alias="STORAGE_TIMEOUT_SECONDS")
    # An HTTP proxy for Table/Queue calls, if storage is only reachable through one. Given here rather than
    # through HTTP(S)_PROXY: with proxy variables honoured, the HTTP client looks up ~/.netrc and the
    # proxy variables in a worker thread on every request (issue 16: two thread hops per storage call).
    http_proxy: str = Field(default="", alias="STORAGE_HTTP_PROXY")

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> StorageSettings:
        if not self.connection_string and not (self.queue_service_uri and self.table_service_uri):
            raise ValueError(
                "AzureWebJobsStorage: set a connection string, or both AzureWebJobsStorage__queueServiceUri "
                "and AzureWebJobsStorage__tableServiceUri for identity-based connections"
            )
        return self

    @property
    def is_emulator(self) -> bool:
        cs = self.connection_string or ""
        return "UseDevelopmentStorage=true" in cs or "127.0.0.1" in cs or "localhost" in cs


class GraphSettings(BaseSettings):
    """How the service reaches Microsoft Graph as an app (client credentials)."""

    model_config = SettingsConfigDict(env_prefix="GRAPH_", extra="ignore", case_sensitive=False)
    tenant_id: str = ""
    client_id: str = ""
    credential_kind: CredentialKind = CredentialKind.SECRET
    client_secret: str | None = None
    certificate_path: str | None = None
    certificate_password: str | None = None
    managed_identity_client_id: str | None = None
    authority_host: str = "https://login.microsoftonline.com"
    base_url: str = "https://graph.microsoft.com/v1.0"
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    # Sandbox only: a CA bundle to trust for the token endpoint (the simulator's self-signed CA).
    ca_bundle: str | None = None
    max_concurrency_per_mailbox: Annotated[int, Field(ge=1, le=4)] = 4
    # The per-mailbox limit held across instances through the `graphslots` table (shared/graph/mailbox_slots.py).
    shared_mailbox_slots: bool = True

    @field_validator("base_url", "authority_host")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        if not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https URL (plain http only for a local simulator)")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _credential_complete(self) -> GraphSettings:
        if self.credential_kind is CredentialKind.SECRET and self.client_id and not self.client_secret:
            raise ValueError("GRAPH_CLIENT_SECRET is required when GRAPH_CREDENTIAL_KIND=secret")
        if self.credential_kind is CredentialKind.CERTIFICATE and not self.certificate_path:
            raise ValueError("GRAPH_CERTIFICATE_PATH is required when GRAPH_CREDENTIAL_KIND=certificate")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.tenant_id and self.client_id)


class EwsAuthType(str, enum.Enum):
    BASIC = "basic"
    NTLM = "ntlm"
    OAUTH = "oauth"  # hybrid modern authentication (Entra app with full_access_as_app)


class EwsSettings(BaseSettings):
    """How the service reaches Exchange Server on-premises over EWS: one service account with the
    ApplicationImpersonation role acting as each rep (Pega's connector model)."""

    model_config = SettingsConfigDict(env_prefix="EWS_", extra="ignore", case_sensitive=False)
    url: str = ""  # https://mail.contoso.com/EWS/Exchange.asmx
    auth_type: EwsAuthType = EwsAuthType.BASIC
    username: str = ""  # DOMAIN\\svc-pega-sync or svc-pega-sync@contoso.com
    password: str | None = None
    oauth_tenant_id: str = ""
    oauth_client_id: str = ""
    oauth_client_secret: str | None = None
    server_version: str = "15.2"  # Exchange 2019 / SE (2016: 15.1); skips version guessing
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    max_threads: Annotated[int, Field(ge=1, le=64)] = 8
    max_connections_per_mailbox: Annotated[int, Field(ge=1, le=10)] = 4
    ca_bundle: str | None = None

    @field_validator("url")
    @classmethod
    def _https(cls, v: str) -> str:
        if v and not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https URL (plain http only for a local simulator)")
        return v

    @field_validator("server_version")
    @classmethod
    def _version(cls, v: str) -> str:
        parts = v.split(".")
        if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts) or int(parts[0]) < 15:
            raise ValueError("an Exchange build such as 15.1 (2016) or 15.2 (2019 / SE)")
        return v

    @model_validator(mode="after")
    def _credential_complete(self) -> EwsSettings:
        if self.url and self.auth_type is not EwsAuthType.OAUTH and not (self.username and self.password):
            raise ValueError("EWS_USERNAME and EWS_PASSWORD are required for basic and ntlm")
        if self.url and self.auth_type is EwsAuthType.OAUTH and not (
                self.oauth_tenant_id and self.oauth_client_id and self.oauth_client_secret):
            raise ValueError("EWS_OAUTH_TENANT_ID, EWS_OAUTH_CLIENT_ID and EWS_OAUTH_CLIENT_SECRET are required "
                             "for oauth")
        return self

    @property
    def configured(self) -> bool:
        return bool(self.url)


class PegaSettings(BaseSettings):
    """How the service reaches Pega: DX API v2 (OAuth 2.0) and the SA API v1 (Basic)."""

    model_config = SettingsConfigDict(env_prefix="PEGA_", extra="ignore", case_sensitive=False)
    base_url: str = ""
    client_id: str = ""
    client_secret: str | None = None
    username: str = ""
    password: str | None = None
    mapping_file: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 30.0
    # Token endpoint for DX API v2 client credentials; empty = {base_url}/prweb/PRRestService/oauth2/v1/token.
    token_url: str = ""
    # Refresh a cached token this many seconds before it expires.
    token_refresh_skew_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # API roots; an application alias (e.g. /prweb/app/SalesAutomation/api/...) differs per implementation.
    dx_api_path: str = "/prweb/api/application/v2"
    sa_api_path: str = "/prweb/api/v1"
    # Page size for data view lookups (Pega caps pageSize at 5000).
    data_view_page_size: Annotated[int, Field(ge=1, le=5000)] = 500
    # Which Pega adapter the engine speaks (shared/pega/adapter.py): the Pega-side sync-service contract
    # (recommended for Sales Automation 8.x; `make run` uses it) or DX API v2 cases (Constellation apps).
    adapter: Literal["sync-service", "dx-v2"] = "dx-v2"
    # Root of the sync-service contract's Service REST rules (pega-service.openapi.yaml).
    service_path: str = "/prweb/api/ExchangeSync/v1"

    @field_validator("base_url", "token_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https URL (plain http only for a local simulator)")
        return v.rstrip("/")

    @field_validator("dx_api_path", "sa_api_path", "service_path")
    @classmethod
    def _path(cls, v: str) -> str:
        return "/" + v.strip("/")

    @property
    def effective_token_url(self) -> str:
        return self.token_url or f"{self.base_url}/prweb/PRRestService/oauth2/v1/token"

    @property
    def configured(self) -> bool:
        return bool(self.base_url)


class ApiAuthSettings(BaseSettings):
    """How callers of our HTTP contract (Pega's Connect-REST rules) are authenticated."""

    model_config = SettingsConfigDict(env_prefix="API_", extra="ignore", case_sensitive=False)
    tenant_id: str = ""
    audience: str = ""
    required_role: str = "Sync.ReadWrite"
    openid_config_url: str = ""
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 10 * 1024 * 1024
    # Accepted token issuers, comma-separated; empty = the `issuer` of the OpenID configuration.
    issuer: str = ""
    # JWKS URL; empty = `jwks_uri` of the OpenID configuration.
    jwks_url: str = ""
    # Extra accepted audiences (comma-separated), e.g. the app's client id next to its App ID URI.
    extra_audiences: str = ""
    # Optional allow-list of caller app ids (appid/azp), comma-separated; empty = any caller with the role.
    allowed_client_ids: str = ""
    leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 60
    jwks_cache_seconds: Annotated[int, Field(ge=60, le=86400)] = 3600
    http_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0

    @property
    def effective_openid_config_url(self) -> str:
        if self.openid_config_url:
            return self.openid_config_url
        if not self.tenant_id:
            return ""
        return f"https://login.microsoftonline.com/{self.tenant_id}/v2.0/.well-known/openid-configuration"


class SyncDefaults(BaseSettings):
    """Defaults for every mailbox, named after Pega's own Exchange settings; a mailbox may override."""

    model_config = SettingsConfigDict(env_prefix="SYNC_", extra="ignore", case_sensitive=False)
    past_days: Annotated[int, Field(ge=0, le=3650)] = 30
    future_days: Annotated[int, Field(ge=1, le=3650)] = 180
    batch_size: Annotated[int, Field(ge=1, le=512)] = 50
    # Items of a delta page worked on at once (association lookups and writes towards Pega): bounds what one
    # round asks of Pega at a time, so a backfill does not stampede a real Pega.
    pega_concurrency: Annotated[int, Field(ge=1, le=128)] = 16
    notification_frequency_minutes: Annotated[int, Field(ge=1, le=10080)] = 30
    email_enabled: bool = True
    calendar_enabled: bool = True
    contacts_enabled: bool = True
    push_enabled: bool = True
    private_policy: PrivatePolicy = PrivatePolicy.SKIP
    contact_category: str = "PegaSASync"
    # Pega → Exchange contacts: a dedicated contact folder (display name; empty = the default folder), and what
    # closing a contact in Pega does in Outlook: "clear_category" (keep the contact) or "delete".
    contact_folder: str = ""
    contact_close_action: Literal["clear_category", "delete"] = "clear_category"
    # Which mail folders sync (shared/sync/folders.py): Inbox with every folder under it (mail filed there by
    # server rules) and Sent Items; or every mail folder but Deleted Items/Junk/Drafts/Outbox; or Inbox and Sent.
    mail_folders: Literal["inbox_tree", "all", "inbox"] = "inbox_tree"
    conflict_policy: ConflictPolicy = ConflictPolicy.NEWER
    delete_safety_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    notification_url_base: str = ""
    # The function key Graph must present on notification POSTs (it is copied from the URL's ?code=).
    notification_url_key: str = ""
    # Safety-net delta poll: each mailbox is looked at this often (at its own minute); a round runs unless one
    # completed within half of it.
    poll_interval_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    # Renew a subscription when less than this is left of its lifetime.
    subscription_renew_before_minutes: Annotated[int, Field(ge=45, le=10080)] = 2880
    # A delta round's / an outbound operation's lease, renewed every third of it while the work runs:
    # a crashed worker's work is free again (and re-enqueued by the recovery timer) after this long.
    lease_seconds: Annotated[float, Field(ge=1, le=600)] = 30.0
    failure_notice_sender: str = ""
    failure_notice_admin: str = ""


class TelemetrySettings(BaseSettings):
    """Application Insights (OpenTelemetry via azure-monitor-opentelemetry); empty = telemetry off."""

    model_config = _COMMON
    connection_string: str = Field(default="", alias="APPLICATIONINSIGHTS_CONNECTION_STRING")
    # `ClientId=<managed identity client id>;Authorization=AAD` when local auth is disabled.
    authentication_string: str = Field(default="", alias="APPLICATIONINSIGHTS_AUTHENTICATION_STRING")


class InsightsSettings(BaseSettings):
    """Sentiment and suggested actions (shared/insights): local VADER unless Azure AI Language is set."""

    model_config = SettingsConfigDict(env_prefix="INSIGHTS_", extra="ignore", case_sensitive=False)
    enabled: bool = True
    # the record first, its insight fields after (a queued job, shared.sync.insight_jobs): `auto` while
    # the local model is busy (records then arrive at the pace of Graph, storage and Pega rather than
    # the model's), `always`, or `never` (in the record's create); docs/performance.md
    deferred: Literal["auto", "always", "never"] = "auto"
    rules_file: str | None = None
    language: str = "en"
    # local analyzer when Azure AI Language is not configured: the packaged sentence model + trained head,
    # or stock-lexicon VADER (smaller, faster, less accurate)
    analyzer: Literal["model", "vader"] = "model"
    # the local sentiment model: the fine-tuned MPNet (0.72 macro-F1 on real held-out text, ≈ 250 ms of
    # CPU per mail) or the fine-tuned MiniLM (0.66, ≈ 50 ms): docs/insights.md
    sentiment_model: Literal["mpnet", "minilm"] = "mpnet"
    # processes that run the sentence model beside the host (0: the host's own threads, which slows
    # every round while the model runs: docs/performance.md)
    worker_processes: Annotated[int, Field(ge=0, le=16)] = 1
    # CPU priority of those processes below the host's (Unix nice increment; 0: the same): with deferred
    # insights the model's backlog waits while rounds and notifications have work
    worker_nice: Annotated[int, Field(ge=0, le=19)] = 10
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


class AppSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_", extra="ignore", case_sensitive=False)
    mode: AppMode = AppMode.REAL


class Settings:
    """All settings, grouped. Built by :func:`load_settings`; treat as read-only."""

    def __init__(
        self,
        *,
        app: AppSettings,
        storage: StorageSettings,
        graph: GraphSettings,
        pega: PegaSettings,
        api: ApiAuthSettings,
        sync: SyncDefaults,
        telemetry: TelemetrySettings | None = None,
        insights: InsightsSettings | None = None,
        ews: EwsSettings | None = None,
    ) -> None:
        self.app = app
        self.storage = storage
        self.graph = graph
        self.pega = pega
        self.api = api
        self.sync = sync
        self.insights = insights or InsightsSettings.model_validate({})
        self.telemetry = telemetry or TelemetrySettings()
        self.ews = ews or EwsSettings.model_validate({})

    @property
    def mode(self) -> AppMode:
        return self.app.mode


_GROUPS: dict[str, tuple[type[BaseSettings], str]] = {
    "app": (AppSettings, "APP_"),
    "storage": (StorageSettings, ""),
    "graph": (GraphSettings, "GRAPH_"),
    "pega": (PegaSettings, "PEGA_"),
    "api": (ApiAuthSettings, "API_"),
    "sync": (SyncDefaults, "SYNC_"),
    "telemetry": (TelemetrySettings, ""),
    "insights": (InsightsSettings, "INSIGHTS_"),
    "ews": (EwsSettings, "EWS_"),
}


def _setting_name(cls: type[BaseSettings], prefix: str, loc: tuple[Any, ...]) -> str:
    if not loc:
        return prefix.rstrip("_") or cls.__name__
    field = cls.model_fields.get(str(loc[0]))
    if field is not None and field.alias:
        return field.alias
    return f"{prefix}{str(loc[0]).upper()}"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raise ConfigurationError naming each bad one."""
    env = dict(os.environ if environ is None else environ)
    built: dict[str, BaseSettings] = {}
    problems: list[str] = []
    for group, (cls, prefix) in _GROUPS.items():
        try:
            built[group] = _build(cls, env)
        except ValidationError as exc:
            for err in exc.errors():
                name = _setting_name(cls, prefix, tuple(err.get("loc", ())))
                msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                problems.append(f"{name}: {msg}")
    if problems:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems), settings=problems)
    return Settings(**built)  # type: ignore[arg-type]


def _build(cls: type[BaseSettings], env: dict[str, str]) -> BaseSettings:
    """Validate from an explicit mapping (not the process env) so tests and hosts can pass their own."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    case_sensitive = bool(cls.model_config.get("case_sensitive", False))
    values: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        key = field.alias or f"{prefix}{name}"
        if case_sensitive:
            if key in env:
                values[field.alias or name] = env[key]
        else:
            wanted = key.upper()
            for k, v in env.items():
                if k.upper() == wanted:
                    values[field.alias or name] = v
                    break
    # _env_file=None and an empty environment source: only the explicit mapping counts.
    return cls.model_validate(values)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once on first use (never at import)."""
    return load_settings()


def reset_settings_cache() -> None:
    get_settings.cache_clear()
