"""Renders the settings reference: the README table and local.settings.sample.json.

The settings themselves are declared (typed, validated) in shared/config.py; this holds what each
one is for and a sample value, and renders both documents from them so they cannot drift apart.
`python -m sandbox.settings_doc --write` rewrites both; tests fail when either is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from sandbox.proc import ROOT

# name: (sample value for local.settings.sample.json, description)
DOCS: dict[str, tuple[str, str]] = {
    "FUNCTIONS_WORKER_RUNTIME": ("python", "Functions host: the language worker (always `python`)."),
    "APP_MODE": ("real", "`sandbox` or `real`; reported by `/api/health` (`make run` sets `sandbox`)."),
    "AzureWebJobsStorage": ("UseDevelopmentStorage=true",
                            "Storage for the host, state tables and queues (connection string; Azurite locally)."),
    "AzureWebJobsStorage__queueServiceUri": ("", "Identity-based storage (Azure): queue endpoint, instead of a connection string."),
    "AzureWebJobsStorage__tableServiceUri": ("", "Identity-based storage (Azure): table endpoint."),
    "AzureWebJobsStorage__clientId": ("", "Identity-based storage: client id of the user-assigned managed identity."),
    "STORAGE_TIMEOUT_SECONDS": ("10", "Timeout of every Table/Queue call."),
    "STORAGE_HTTP_PROXY": ("", "HTTP proxy for Table/Queue calls (proxy environment variables are not read for them)."),
    "GRAPH_TENANT_ID": ("<tenant-guid>", "Entra tenant of the Exchange Online organization."),
    "GRAPH_CLIENT_ID": ("<app-registration-client-id>", "App registration with Mail.ReadWrite, Mail.Send, Calendars.ReadWrite, Contacts.ReadWrite (application)."),
    "GRAPH_CREDENTIAL_KIND": ("secret", "`secret`, `certificate` or `managed_identity` (federated credential; no secret)."),
    "GRAPH_CLIENT_SECRET": ("<secret-or-key-vault-reference>", "Client secret (kind `secret`)."),
    "GRAPH_CERTIFICATE_PATH": ("", "PEM/PFX certificate file (kind `certificate`)."),
    "GRAPH_CERTIFICATE_PASSWORD": ("", "Password of the certificate file, if any."),
    "GRAPH_MANAGED_IDENTITY_CLIENT_ID": ("", "User-assigned managed identity trusted by the app registration (kind `managed_identity`)."),
    "GRAPH_AUTHORITY_HOST": ("https://login.microsoftonline.com", "Entra authority (the Graph simulator's https port in the sandbox)."),
    "GRAPH_BASE_URL": ("https://graph.microsoft.com/v1.0", "Microsoft Graph base URL."),
    "GRAPH_TIMEOUT_SECONDS": ("30", "Timeout of every Graph call."),
    "GRAPH_CA_BUNDLE": ("", "Sandbox only: CA file to trust for the simulator's token endpoint."),
    "GRAPH_MAX_CONCURRENCY_PER_MAILBOX": ("4", "Concurrent Graph requests per mailbox (Outlook allows 4 per app and mailbox)."),
    "GRAPH_SHARED_MAILBOX_SLOTS": ("true", "Hold that limit across all instances through the `pesgraphslots` table; `false`: per instance only."),
    "EWS_URL": ("", "Exchange Server on-premises EWS endpoint (https://mail.contoso.com/EWS/Exchange.asmx); empty: no on-premises mailboxes."),
    "EWS_AUTH_TYPE": ("basic", "`basic` or `ntlm` (service account with ApplicationImpersonation), or `oauth` (hybrid modern authentication)."),
    "EWS_USERNAME": ("", "Service account (DOMAIN\\\\user or UPN) holding the ApplicationImpersonation role."),
    "EWS_PASSWORD": ("", "Its password (a Key Vault reference in Azure)."),
    "EWS_OAUTH_TENANT_ID": ("", "Entra tenant of a hybrid organization (auth `oauth`)."),
    "EWS_OAUTH_CLIENT_ID": ("", "App registration with full_access_as_app on Office 365 Exchange Online (auth `oauth`)."),
    "EWS_OAUTH_CLIENT_SECRET": ("", "Its secret (auth `oauth`)."),
    "EWS_SERVER_VERSION": ("15.2", "Exchange build: 15.1 (2016) or 15.2 (2019, Subscription Edition); no version guessing."),
    "EWS_TIMEOUT_SECONDS": ("30", "Timeout of every EWS call."),
    "EWS_MAX_THREADS": ("8", "Worker threads for EWS calls (exchangelib is synchronous; the event loop never blocks)."),
    "EWS_MAX_CONNECTIONS_PER_MAILBOX": ("4", "Concurrent EWS requests per mailbox per instance."),
    "EWS_CA_BUNDLE": ("", "CA file to trust for the EWS endpoint's certificate (an internal PKI)."),
    "PEGA_BASE_URL": ("https://pega.example.com", "Pega server (…/prweb is appended by the API paths)."),
    "PEGA_CLIENT_ID": ("<pega-oauth-client-id>", "OAuth 2.0 client (client credentials) for the DX API v2."),
    "PEGA_CLIENT_SECRET": ("<secret-or-key-vault-reference>", "Its secret."),
    "PEGA_USERNAME": ("<integration-operator>", "Integration operator for the Sales Automation API v1 (Basic; needs PegaRULES:PegaAPI)."),
    "PEGA_PASSWORD": ("<secret-or-key-vault-reference>", "Its password."),
    "PEGA_MAPPING_FILE": ("", "JSON file overriding the Pega mapping (case types, classes, properties, data views)."),
    "PEGA_TIMEOUT_SECONDS": ("30", "Timeout of every Pega call."),
    "PEGA_TOKEN_URL": ("", "OAuth token URL (default: <base>/prweb/PRRestService/oauth2/v1/token)."),
    "PEGA_TOKEN_REFRESH_SKEW_SECONDS": ("60", "Refresh the Pega token this long before it expires."),
    "PEGA_DX_API_PATH": ("/prweb/api/application/v2", "Path of the DX API v2."),
    "PEGA_SA_API_PATH": ("/prweb/api/v1", "Path of the Sales Automation API v1."),
    "PEGA_DATA_VIEW_PAGE_SIZE": ("500", "Page size of data view queries."),
    "PEGA_ADAPTER": ("sync-service", "How the engine speaks to Pega: `sync-service` (the Pega-side contract pega-service.openapi.yaml, recommended for Sales Automation 8.x; `make run` uses it) or `dx-v2` (DX API v2 cases, for Constellation apps). See docs/pega-setup.md."),
    "PEGA_SERVICE_PATH": ("/prweb/api/ExchangeSync/v1", "Root of the sync-service contract's Service REST rules."),
    "API_TENANT_ID": ("<tenant-guid>", "Tenant whose tokens the Pega-facing API accepts."),
    "API_AUDIENCE": ("api://pega-exchange-sync", "Audience (Application ID URI) of the API's app registration."),
    "API_REQUIRED_ROLE": ("Sync.ReadWrite", "App role Pega's client must hold."),
    "API_OPENID_CONFIG_URL": ("", "OpenID metadata URL (default: derived from the tenant)."),
    "API_MAX_BODY_BYTES": ("10485760", "Largest accepted request body (attachments included)."),
    "API_ISSUER": ("", "Expected token issuer (default: from the OpenID metadata)."),
    "API_JWKS_URL": ("", "Signing keys URL (default: from the OpenID metadata)."),
    "API_EXTRA_AUDIENCES": ("", "Further accepted audiences, comma-separated (e.g. the app's client id)."),
    "API_ALLOWED_CLIENT_IDS": ("", "If set, only these caller app ids (comma-separated) are accepted."),
    "API_LEEWAY_SECONDS": ("60", "Clock skew allowed on token expiry/not-before."),
    "API_JWKS_CACHE_SECONDS": ("3600", "How long signing keys are cached (refreshed early on an unknown key id)."),
    "API_HTTP_TIMEOUT_SECONDS": ("10", "Timeout fetching OpenID metadata and keys."),
    "SYNC_PAST_DAYS": ("30", "Pega's \"Sync From No Of Days\": history window for mail and calendar backfill."),
    "SYNC_FUTURE_DAYS": ("180", "Calendar horizon forward."),
    "SYNC_BATCH_SIZE": ("50", "Pega's batch size (1 to 512): delta page size."),
    "SYNC_PEGA_CONCURRENCY": ("16", "Items of a delta page worked on at once (lookups and writes towards Pega, 1 to 128)."),
    "SYNC_NOTIFICATION_FREQUENCY_MINUTES": ("30", "Pega's notification frequency: retry this long, then dead-letter and email a failure notice."),
    "SYNC_EMAIL_ENABLED": ("true", "Default per-object enablement: email."),
    "SYNC_CALENDAR_ENABLED": ("true", "Default per-object enablement: calendar."),
    "SYNC_CONTACTS_ENABLED": ("true", "Default per-object enablement: contacts."),
    "SYNC_PUSH_ENABLED": ("true", "Graph change notifications on; when off, the delta poll is the only path."),
    "SYNC_PRIVATE_POLICY": ("skip", "Private items: `skip` (Pega's behaviour), `mask` (time only) or `full`."),
    "SYNC_CONTACT_CATEGORY": ("PegaSASync", "Outlook category that marks contacts to sync (as in Pega)."),
    "SYNC_CONTACT_FOLDER": ("", "Contact folder for contacts created from Pega (empty: the default folder)."),
    "SYNC_CONTACT_CLOSE_ACTION": ("clear_category", "A contact closed in Pega: `clear_category` or `delete` in Outlook."),
    "SYNC_MAIL_FOLDERS": ("inbox_tree", "Mail folders that sync: `inbox_tree` (Inbox, every folder under it — where server rules file mail — and Sent Items), `all` (every folder but Deleted Items, Junk, Drafts, Outbox) or `inbox` (Inbox and Sent Items)."),
    "SYNC_CONFLICT_POLICY": ("newer", "True conflicts on one field: `newer` edit wins, or `pega` / `exchange` always."),
    "SYNC_DELETE_SAFETY_SHARE": ("0.5", "A round that would close/cancel more than this share of linked items is held."),
    "SYNC_NOTIFICATION_URL_BASE": ("https://<app>.azurewebsites.net/api", "Public base URL Graph posts notifications to."),
    "SYNC_NOTIFICATION_URL_KEY": ("<function-key>", "Function key Graph presents (`?code=`) on notification posts."),
    "SYNC_POLL_INTERVAL_MINUTES": ("15", "Safety-net delta poll: each mailbox is looked at this often (at its own minute); a round runs unless one completed within half of it."),
    "SYNC_SUBSCRIPTION_RENEW_BEFORE_MINUTES": ("2880", "Renew a subscription when less than this is left."),
    "SYNC_LEASE_SECONDS": ("30", "Lease of a delta round or an outbound operation, renewed by a heartbeat while it runs: a crashed worker's work is taken over after this long."),
    "SYNC_FAILURE_NOTICE_SENDER": ("sync-notices@contoso.com", "Mailbox that sends failure/recovery notices (Mail.Send)."),
    "SYNC_FAILURE_NOTICE_ADMIN": ("crm-admins@contoso.com", "Admin address copied on failure/recovery notices."),
    "APPLICATIONINSIGHTS_CONNECTION_STRING": ("", "Turns on OpenTelemetry export to Application Insights."),
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": ("", "Entra auth for telemetry (`Authorization=AAD;ClientId=<uami>`)."),
    "INSIGHTS_ENABLED": ("true", "Sentiment and suggested actions on received mail and appointments."),
    "INSIGHTS_DEFERRED": ("auto", "Insight fields after the record, from a queued job (`insight-work`): `auto` while the local model is busy, `always`, `never`."),
    "INSIGHTS_RULES_FILE": ("", "YAML/JSON suggested-action rules (default: the built-in rules)."),
    "INSIGHTS_LANGUAGE": ("en", "Language of the texts analysed."),
    "INSIGHTS_ANALYZER": ("model", "Local analyzer: `model` (packaged sentence model fine-tuned for sentiment) or `vader` (lexicon)."),
    "INSIGHTS_SENTIMENT_MODEL": ("mpnet", "The local model's sentiment: `mpnet` (fine-tuned all-mpnet-base-v2, 0.72 macro-F1 on real held-out text, ≈ 250 ms of CPU per mail) or `minilm` (fine-tuned all-MiniLM-L6-v2, 0.66, ≈ 50 ms; docs/insights.md)."),
    "INSIGHTS_WORKER_PROCESSES": ("1", "Processes that run the sentence model beside the host (0: in the host's threads)."),
    "INSIGHTS_WORKER_NICE": ("10", "CPU priority of the model's processes below the host's (nice increment, 0-19)."),
    "INSIGHTS_AZURE_LANGUAGE_ENDPOINT": ("", "Azure AI Language endpoint: set it to switch from the local analyzer."),
    "INSIGHTS_AZURE_LANGUAGE_KEY": ("", "Its key (or use the managed identity)."),
    "INSIGHTS_AZURE_LANGUAGE_USE_MANAGED_IDENTITY": ("false", "Authenticate to Azure AI Language with the managed identity."),
    "INSIGHTS_AZURE_LANGUAGE_CLIENT_ID": ("", "User-assigned identity for Azure AI Language."),
    "INSIGHTS_AZURE_LANGUAGE_TIMEOUT_SECONDS": ("30", "Timeout of Azure AI Language calls."),
    "INSIGHTS_ATTACHMENT_MAX_BYTES": ("10485760", "Attachments larger than this are skipped (with the reason)."),
    "INSIGHTS_ATTACHMENT_TIMEOUT_SECONDS": ("5", "Time limit per attachment parse."),
    "INSIGHTS_ATTACHMENT_MAX_CHARS": ("100000", "Text kept per attachment."),
    "INSIGHTS_ATTACHMENT_MAX_PDF_PAGES": ("50", "PDF pages read per attachment."),
    "INSIGHTS_ATTACHMENT_MEMORY_LIMIT_MB": ("1024", "Memory cap of the attachment parser process (0: none)."),
    "LOCAL_HOST_MASTER_KEY": ("<local-master-key>", "Local host only: the admin (master) key."),
    "LOCAL_HOST_FUNCTION_KEY": ("<local-function-key>", "Local host only: the function key."),
}

# Settings the code reads that are not in shared/config.py (the host's own).
HOST_SETTINGS = ("FUNCTIONS_WORKER_RUNTIME", "LOCAL_HOST_MASTER_KEY", "LOCAL_HOST_FUNCTION_KEY")


def config_settings() -> list[tuple[str, str, Any]]:
    """(group, setting name, default) for every setting shared/config.py declares."""
    from shared.config import _GROUPS

    out = []
    for group, (cls, prefix) in _GROUPS.items():
        for name, f in cls.model_fields.items():
            default = getattr(f.default, "value", f.default)
            out.append((group, f.alias or (prefix + name).upper(), default))
    return out


def render_table() -> str:
    rows = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for _group, name, default in config_settings():
        shown = "" if default in (None, "") else f"`{str(default).lower() if isinstance(default, bool) else default}`"
        rows.append(f"| `{name}` | {shown} | {DOCS[name][1]} |")
    for name in HOST_SETTINGS:
        rows.append(f"| `{name}` | | {DOCS[name][1]} |")
    return "\n".join(rows)


def render_sample() -> str:
    values = {"FUNCTIONS_WORKER_RUNTIME": "python"}
    for _group, name, _default in config_settings():
        if name.startswith("AzureWebJobsStorage__"):
            continue  # identity-based storage is for Azure; locally the connection string is used
        values[name] = DOCS[name][0]
    for name in HOST_SETTINGS[1:]:
        values[name] = DOCS[name][0]
    doc = {"IsEncrypted": False, "Values": values,
           "Host": {"LocalHttpPort": 7071}}
    return json.dumps(doc, indent=2) + "\n"


TABLE_START, TABLE_END = "<!-- settings:start -->", "<!-- settings:end -->"


def readme_with_table(readme: str) -> str:
    block = f"{TABLE_START}\n{render_table()}\n{TABLE_END}"
    if TABLE_START in readme:
        return re.sub(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END), lambda _m: block, readme, flags=re.S)
    return readme.replace("SETTINGS_TABLE", block)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sandbox.settings_doc")
    p.add_argument("--write", action="store_true", help="rewrite README.md's table and local.settings.sample.json")
    args = p.parse_args(argv)
    missing = [n for _g, n, _d in config_settings() if n not in DOCS]
    if missing:
        print("settings without a description in sandbox/settings_doc.py: " + ", ".join(missing), file=sys.stderr)
        return 1
    readme = ROOT / "README.md"
    sample = ROOT / "local.settings.sample.json"
    if args.write:
        readme.write_text(readme_with_table(readme.read_text()))
        sample.write_text(render_sample())
        return 0
    stale = [str(f.name) for f, want in ((readme, readme_with_table(readme.read_text())), (sample, render_sample()))
             if not f.exists() or f.read_text() != want]
    if stale:
        print("stale: " + ", ".join(stale) + " (run python -m sandbox.settings_doc --write)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())



