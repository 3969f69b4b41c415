"""What may leave the service in telemetry, notices and admin output: no addresses, no content, no secrets.

Mailbox UPNs become a stable pseudonymous id (`mbx-` + 16 hex of a SHA-256 over a fixed domain
prefix and the lower-cased address), so an operator can follow one mailbox across spans, metrics
and logs — and map a known UPN to its id with `pes-admin pseudonym UPN` — without the telemetry
store ever holding the address. Free text (error messages, URLs, log lines) is scrubbed:
addresses become their pseudonym, quoted strings (where services echo subjects and field values)
are elided, and secrets in query strings, headers and connection strings are redacted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

_PREFIX = b"pega-exchange-sync/mailbox/v1:"

EMAIL = re.compile(r"[A-Za-z0-9._+'-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SECRET_PARAM = re.compile(
    r"(?i)\b(code|sig|client_secret|client_assertion|password|passwd|pwd|access_token|refresh_token|id_token|"
    r"token|apikey|api_key|secret|accountkey|sharedaccesskey|validationtoken|clientstate)(=|:\s*|\"\s*:\s*\")"
    r"[^&\s;\"',]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_QUOTED = re.compile(r"'[^']{1,2000}'|\"[^\"]{1,2000}\"|“[^”]{1,2000}”")
# Attribute keys whose string values are content or credentials wherever they come from.
_DROP_KEY = re.compile(r"(?i)(subject|(^|[._])body($|[._])|content(?![._-]?(type|length))|preview|authorization|"
                       r"cookie|password|secret|client_state|clientstate|recipients|attendees|display_?name)")


def mailbox_id(upn: str) -> str:
    """The stable pseudonymous id of a mailbox (or any address) for telemetry."""
    digest = hashlib.sha256(_PREFIX + upn.strip().lower().replace("%40", "@").encode("utf-8")).hexdigest()
    return "mbx-" + digest[:16]


def _pseudonymize(m: re.Match[str]) -> str:
    return mailbox_id(m.group(0))


def scrub_text(text: str, *, elide_quoted: bool = True, limit: int = 2000) -> str:
    """Free text safe for telemetry: addresses pseudonymized, quoted content elided, secrets redacted."""
    if not text:
        return text
    out = _JWT.sub("<jwt>", text)
    out = _BEARER.sub(lambda m: f"{m.group(1)} <redacted>", out)
    out = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}<redacted>", out)
    out = EMAIL.sub(_pseudonymize, out)
    if elide_quoted:
        out = _QUOTED.sub("'…'", out)
    return out[:limit]


def sanitize_error(text: str, *, limit: int = 500) -> str:
    """A last-error line fit for a notice email or an admin table: type and gist, no content."""
    return scrub_text(" ".join((text or "").split()), limit=limit)


def scrub_value(key: str, value: Any) -> Any | None:
    """A telemetry attribute value made safe, or None to drop the attribute."""
    if isinstance(value, str):
        if _DROP_KEY.search(key):
            return None
        return scrub_text(value)
    if isinstance(value, list | tuple):
        if _DROP_KEY.search(key):
            return None
        return type(value)(scrub_text(v) if isinstance(v, str) else v for v in value)
    return value


def scrub_attributes(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (attrs or {}).items():
        safe = scrub_value(k, v)
        if safe is not None:
            out[k] = safe
    return out
