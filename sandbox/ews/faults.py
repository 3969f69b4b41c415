"""Injected failures (/_sim/faults): ErrorServerBusy with a BackOffMilliseconds hint (Exchange's
throttling answer), HTTP 503, or any EWS error code, for the next N matching requests."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.ews.soap import EwsFault


@dataclass
class Fault:
    code: str = "ErrorServerBusy"
    operation: str = ""  # "" = any
    mailbox: str = ""  # "" = any
    caller: str = ""  # the account the request authenticated as; "" = any
    count: int = 1
    back_off_ms: int = 30_000
    status: int = 500

    def matches(self, operation: str, mailbox: str, caller: str = "") -> bool:
        return (self.count > 0 and self.operation in ("", operation) and self.mailbox in ("", mailbox.lower())
                and self.caller in ("", caller.lower()))

    def error(self) -> EwsFault:
        if self.code == "ErrorServerBusy":
            return EwsFault("ErrorServerBusy", "The server cannot service this request right now. Try again later.",
                            values={"BackOffMilliseconds": str(self.back_off_ms)})
        return EwsFault(self.code, f"Injected failure {self.code}.", status=self.status)


class Faults:
    def __init__(self) -> None:
        self.rules: list[Fault] = []

    def take(self, operation: str, mailbox: str, caller: str = "") -> EwsFault | None:
        for rule in self.rules:
            if rule.matches(operation, mailbox, caller):
                rule.count -= 1
                return rule.error()
        return None
