"""Failure and recovery notices: one email to the rep and the configured admin, via Graph sendMail.

The message is sent from the configured service mailbox (SYNC_FAILURE_NOTICE_SENDER) through the
GraphGateway, so it uses the app's Mail.Send permission and the same auth, limits and typed errors
as every other Graph call. Bodies state the mailbox, the kind, since when, the last error
(sanitized: never a subject or a body) and what to do — plain text, no tracking, not saved to the
sender's Sent Items.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Protocol

from shared.graph.gateway import GraphGateway
from shared.ops.privacy import sanitize_error

log = logging.getLogger(__name__)

FAILURE = "failure"
RECOVERY = "recovery"

KIND_LABEL = {"email": "email", "calendar": "calendar", "contacts": "contacts"}


@dataclass(frozen=True)
class Notice:
    what: str  # failure | recovery
    mailbox: str
    kind: str
    failing_since: dt.datetime | None
    last_error: str
    frequency_minutes: int
    at: dt.datetime
    recovered_at: dt.datetime | None = None
    last_failure_at: dt.datetime | None = None

    @property
    def subject(self) -> str:
        label = KIND_LABEL.get(self.kind, self.kind)
        if self.what == FAILURE:
            return f"Pega Exchange Sync: {label} sync is failing for {self.mailbox}"
        return f"Pega Exchange Sync: {label} sync has recovered for {self.mailbox}"

    @property
    def text(self) -> str:
        label = KIND_LABEL.get(self.kind, self.kind)
        since = _when(self.failing_since)
        if self.what == FAILURE:
            return "\n".join([
                f"The {label} synchronization for the mailbox {self.mailbox} has been failing since {since}.",
                "",
                f"Mailbox:        {self.mailbox}",
                f"What:           {label}",
                f"Failing since:  {since}",
                f"Last error:     {sanitize_error(self.last_error) or '(none recorded)'}",
                f"Notice after:   {self.frequency_minutes} minutes of failures (notification frequency)",
                "",
                "What happens now: the service keeps checking this mailbox. Items that could not be synchronized",
                "have been set aside as dead letters (nothing is lost); they are resumed automatically when the",
                "synchronization recovers, and can also be replayed by hand once the cause is fixed.",
                "",
                "What to do:",
                "- Representative: nothing, unless your administrator asks; changes made meanwhile are kept.",
                "- Administrator: check the cause above (mailbox access, Graph or Pega availability, credentials),",
                f"  see `pes-admin health {self.mailbox}` and `pes-admin deadletters list --mailbox {self.mailbox}`,",
                f"  then, once fixed, `pes-admin deadletters replay --mailbox {self.mailbox}`.",
                "",
                "You will get one more message when the synchronization recovers. This notice is sent once per incident.",
            ])
        return "\n".join([
            f"The {label} synchronization for the mailbox {self.mailbox} has recovered"
            f" at {_when(self.recovered_at or self.at)}.",
            "",
            f"Mailbox:        {self.mailbox}",
            f"What:           {label}",
            f"Failing since:  {since}",
            f"Last failure:   {_when(self.last_failure_at)}",
            f"Last error:     {sanitize_error(self.last_error) or '(none recorded)'}",
            "",
            "What happens now: the items set aside while it was failing are resumed automatically. Anything",
            "set aside for another reason (a refusal, a malformed request) stays listed for an administrator:",
            f"`pes-admin deadletters list --mailbox {self.mailbox}`; replay with",
            f"`pes-admin deadletters replay --mailbox {self.mailbox}` (replay is safe to repeat).",
        ])


def _when(t: dt.datetime | None) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "(unknown)"


class Notifier(Protocol):
    """Where notices go. `send` returns False when nothing could be sent because none is configured."""

    async def send(self, notice: Notice) -> bool: ...


class GraphNotifier:
    def __init__(self, gateway: GraphGateway, *, sender: str, admin: str = "") -> None:
        self.gateway = gateway
        self.sender = sender.strip()
        self.admin = admin.strip()

    def recipients(self, notice: Notice) -> list[str]:
        out: list[str] = []
        for addr in (notice.mailbox, *self.admin.replace(";", ",").split(",")):
            a = addr.strip().lower()
            if a and a not in out:
                out.append(a)
        return out

    async def send(self, notice: Notice) -> bool:
        if not self.sender:
            log.warning("no failure notice sender configured (SYNC_FAILURE_NOTICE_SENDER): %s notice not sent",
                        notice.what)
            return False
        message = {
            "subject": notice.subject,
            "body": {"contentType": "Text", "content": notice.text},
            "toRecipients": [{"emailAddress": {"address": a}} for a in self.recipients(notice)],
            "importance": "high" if notice.what == FAILURE else "normal",
        }
        await self.gateway.request("POST", f"users/{self.sender}/sendMail", mailbox=self.sender,
                                   body={"message": message, "saveToSentItems": False},
                                   immutable_ids=False, what=f"send {notice.what} notice")
        log.info("%s notice sent for %s/%s", notice.what, notice.mailbox, notice.kind)
        return True
