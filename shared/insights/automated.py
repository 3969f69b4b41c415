"""Is this message written by a person, or by a machine (auto-reply, bounce, read receipt, bulk mail)?

A machine-written message needs no sales action, and its words mislead the rules ("I will be happy
to schedule a meeting when I am back", "Request a quote today!"). The headers Graph exposes in
``internetMessageHeaders`` are the reliable signal — RFC 3834 ``Auto-Submitted``, Exchange's
``X-Auto-Response-Suppress``, RFC 2369/2919 ``List-Unsubscribe``/``List-Id``, ``Precedence``, RFC 3464/3798
``multipart/report`` — and the subject/body are a fallback for mail whose headers the caller does not
have. Which signals count is data (``AutomatedConfig``, overridable in the rules file), not code.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, field_validator


class MessageClass(str, enum.Enum):
    AUTO_REPLY = "auto_reply"  # out-of-office and other automatic replies
    BOUNCE = "bounce"  # delivery status notifications
    READ_RECEIPT = "read_receipt"
    BULK = "bulk"  # newsletters, marketing, mailing lists
    NOTIFICATION = "notification"  # system notifications (tickets, alerts, "do not reply")


@dataclass(frozen=True, slots=True)
class Classification:
    kind: MessageClass
    evidence: tuple[str, ...]  # which header/subject/body signal decided it; never the content itself

    @property
    def reason(self) -> str:
        return "; ".join(self.evidence)


class HeaderSignal(BaseModel):
    """A header whose presence (or value matching ``value``) marks the message as ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    header: str
    value: str | None = None  # regex on the value, case-insensitive; None = present with any value
    kind: MessageClass

    @field_validator("value")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v


class TextSignal(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: str  # regex, case-insensitive
    kind: MessageClass
    where: list[str] = ["subject"]  # subject | body
    min_matches: int = 1  # body signals usually need two different patterns of the same kind

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        re.compile(v)
        return v


_AUTO_SUBJECT = (
    r"^\s*(?:automatic\s+reply|auto(?:matic)?[- ]?(?:reply|response)|out\s+of\s+(?:the\s+)?office|ooo\b|away\s+until"
    r"|abwesenheitsnotiz|automatische\s+antwort|r[ée]ponse\s+automatique|absence\s+du\s+bureau|respuesta\s+autom[aá]tica"
    r"|risposta\s+automatica|automatisch\s+antwoord|afwezig|autosvar|automaattinen\s+vastaus|автоматический\s+ответ"
    r"|odpowied[zź]\s+automatyczna)\b"
)
_BOUNCE_SUBJECT = (
    r"^\s*(?:undeliverable|undelivered\s+mail|delivery\s+status\s+notification|mail\s+delivery\s+(?:failed|failure|subsystem)"
    r"|returned\s+mail|delivery\s+fail(?:ure|ed)|failure\s+notice|non\s+remis|unzustellbar|nicht\s+zustellbar"
    r"|message\s+not\s+delivered|delivery\s+has\s+failed|no\s+entregado)\b"
)


class AutomatedConfig(BaseModel):
    """The signals that classify a message as machine-written. Defaults cover Exchange, Gmail and common senders."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    headers: list[HeaderSignal] = [
        HeaderSignal(header="Content-Type", value=r"report-type\s*=\s*\"?delivery-status", kind=MessageClass.BOUNCE),
        HeaderSignal(header="Content-Type", value=r"report-type\s*=\s*\"?disposition-notification", kind=MessageClass.READ_RECEIPT),
        HeaderSignal(header="X-Failed-Recipients", kind=MessageClass.BOUNCE),
        HeaderSignal(header="Auto-Submitted", value=r"^\s*auto-replied", kind=MessageClass.AUTO_REPLY),
        HeaderSignal(header="Auto-Submitted", value=r"^\s*auto-(?:generated|notified)", kind=MessageClass.NOTIFICATION),
        HeaderSignal(header="Auto-Submitted", value=r"^\s*(?!no\b)\S", kind=MessageClass.NOTIFICATION),
        HeaderSignal(header="X-Autoreply", kind=MessageClass.AUTO_REPLY),
        HeaderSignal(header="X-Autorespond", kind=MessageClass.AUTO_REPLY),
        HeaderSignal(header="Precedence", value=r"^\s*auto_reply", kind=MessageClass.AUTO_REPLY),
        HeaderSignal(header="X-Auto-Response-Suppress", value=r"\b(?:all|oof|autoreply)\b", kind=MessageClass.AUTO_REPLY),
        HeaderSignal(header="List-Unsubscribe", kind=MessageClass.BULK),
        HeaderSignal(header="List-Id", kind=MessageClass.BULK),
        HeaderSignal(header="Precedence", value=r"^\s*(?:bulk|list|junk)", kind=MessageClass.BULK),
        HeaderSignal(header="X-Campaign", kind=MessageClass.BULK),
        HeaderSignal(header="Feedback-ID", kind=MessageClass.BULK),
    ]
    text: list[TextSignal] = [
        TextSignal(pattern=_AUTO_SUBJECT, kind=MessageClass.AUTO_REPLY),
        TextSignal(pattern=_BOUNCE_SUBJECT, kind=MessageClass.BOUNCE),
        TextSignal(pattern=r"^\s*(?:read|gelesen|lu|le[ií]do|letto|gelezen)\s*:", kind=MessageClass.READ_RECEIPT),
        TextSignal(pattern=r"\bwas\s+read\s+on\b|\bwurde\s+am\b.{0,40}\bgelesen\b", kind=MessageClass.READ_RECEIPT,
                   where=["body"]),
        TextSignal(pattern=r"\b(?:could\s+not|couldn't|cannot|can't)\s+be\s+delivered\b|\bdelivery\s+has\s+failed\b"
                           r"|\bpermanent\s+(?:error|failure)\b|\bmailer-daemon\b|\bdelivery\s+to\s+the\s+following\s+recipients?\s+failed\b",
                   kind=MessageClass.BOUNCE, where=["body"], min_matches=1),
        TextSignal(pattern=r"\b(?:i\s+am|i'm|i\s+will\s+be)\s+(?:currently\s+)?(?:out\s+of\s+(?:the\s+)?office|on\s+(?:annual\s+|parental\s+|sick\s+)?leave|on\s+vacation|on\s+holiday|away\s+from\s+the\s+office)\b",
                   kind=MessageClass.AUTO_REPLY, where=["body"], min_matches=2),
        TextSignal(pattern=r"\b(?:limited|no)\s+access\s+to\s+(?:my\s+)?e-?mail\b|\bwill\s+(?:return|be\s+back)\s+(?:on|in)\b"
                           r"|\byour\s+(?:message|e-?mail)\s+will\s+not\s+be\s+forwarded\b",
                   kind=MessageClass.AUTO_REPLY, where=["body"], min_matches=2),
        TextSignal(pattern=r"\bunsubscribe\b|\bmanage\s+(?:your\s+)?(?:email\s+)?preferences\b|\bview\s+(?:this\s+email\s+)?in\s+(?:your\s+)?browser\b"
                           r"|\byou\s+(?:are\s+)?receiv(?:ed|ing)\s+this\s+(?:e-?mail|message)?\s*because\b",
                   kind=MessageClass.BULK, where=["body"], min_matches=2),
        TextSignal(pattern=r"\b(?:please\s+)?do\s+not\s+reply\s+(?:to\s+)?(?:this\s+)?(?:automated\s+)?(?:e-?mail|message|notification)\b"
                           r"|\bthis\s+(?:is\s+an?\s+)?automated\s+(?:e-?mail|message|notification)\b|\bthis\s+message\s+was\s+(?:sent|created)\s+automatically\b"
                           r"|\breply\s+above\s+this\s+line\b",
                   kind=MessageClass.NOTIFICATION, where=["body"], min_matches=1),
    ]


@functools.lru_cache(maxsize=256)
def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.MULTILINE)


def header_map(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> dict[str, list[str]]:
    """Graph's ``internetMessageHeaders`` ([{name, value}] or pairs or a dict) → lower-cased name → values."""
    out: dict[str, list[str]] = {}
    if not headers:
        return out
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        out.setdefault(str(name).strip().lower(), []).append(str(value or ""))
    return out


def classify(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None, subject: str, body: str,
             config: AutomatedConfig | None = None) -> Classification | None:  # fmt: skip
    """The machine-written class of a message, or None for mail a person wrote. Headers win over text."""
    cfg = config or _DEFAULT
    hdrs = header_map(headers)
    for sig in cfg.headers:
        for value in hdrs.get(sig.header.lower(), ()):
            if sig.value is None or _rx(sig.value).search(value):
                return Classification(sig.kind, (f"header {sig.header}" + (f" matches {sig.value!r}" if sig.value else " present"),))
    body_head = (body or "")[:4000]
    hits: dict[MessageClass, list[str]] = {}
    for tsig in cfg.text:
        for where in tsig.where:
            text = (subject or "") if where == "subject" else body_head
            found = {m.group(0).lower() for m in _rx(tsig.pattern).finditer(text)}
            if len(found) >= tsig.min_matches:
                hits.setdefault(tsig.kind, []).append(f"{where} matches {sorted(found)[0]!r}")
    for kind in MessageClass:  # fixed order: auto_reply before bounce before bulk …
        if kind in hits:
            return Classification(kind, tuple(hits[kind]))
    return None


_DEFAULT = AutomatedConfig()
