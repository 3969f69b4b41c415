"""No address, token or secret in any log line of the process, whoever logs it.

Why a log-record factory and not a filter: a `logging.Filter` on a logger only sees records
logged through that very logger (not those propagated from its children), and a filter on a
handler only sees that handler — while records here come from our modules, httpx (request URLs
with `/users/{upn}/`), aiohttp, the Azure SDK and Kiota, and go to handlers that others add at
any time (the Functions worker's host-log handler, the local host's stream handler, the Azure
Monitor distro's OpenTelemetry handler). The factory runs once for every record that passes its
logger's level, before any handler sees it, so one installation covers them all: the message is
formatted and scrubbed (addresses become their pseudonymous `mbx-…` id, bearer tokens, JWTs and
`code=`/`sig=`/`client_secret=`-style secrets are redacted) and the exception text is formatted
and scrubbed the same way. Subjects and bodies cannot be recognised in free text; the rule for
those is that code never logs them, and tests/security/test_log_privacy.py greps a full run.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from shared.ops.privacy import scrub_text

_LIMIT = 64_000
_lock = threading.Lock()
_MARK = "_pes_scrubbing"


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Scrub one record in place: message (args merged in), exception and stack text."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: keep the template, drop the arguments
        message = str(record.msg)
    record.msg = scrub_text(message, elide_quoted=False, limit=_LIMIT)
    record.args = None
    if record.exc_info and not record.exc_text:
        try:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        except Exception:
            text = repr(record.exc_info[1])
        record.exc_text = scrub_text(text, elide_quoted=False, limit=_LIMIT)
    if record.stack_info:
        record.stack_info = scrub_text(record.stack_info, elide_quoted=False, limit=_LIMIT)
    return record


def install() -> bool:
    """Scrub every log record this process creates from now on (idempotent). True if installed now."""
    with _lock:
        base = logging.getLogRecordFactory()
        if getattr(base, _MARK, False):
            return False

        def scrubbing_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = base(*args, **kwargs)
            try:
                return scrub_record(record)
            except Exception:  # never lose a log line (or break the caller) over scrubbing
                record.msg, record.args = "<log line withheld: it could not be scrubbed>", None
                return record

        setattr(scrubbing_factory, _MARK, True)
        logging.setLogRecordFactory(scrubbing_factory)
        return True


def installed() -> bool:
    return bool(getattr(logging.getLogRecordFactory(), _MARK, False))
