"""Health summaries for operators: one mailbox in detail, and the whole tenant at a glance.

Everything here is read from the state store and the queues (no Graph or Pega call), so the admin
API and `pes-admin status` stay cheap and work while a remote service is down. Per mailbox and
kind: last successful sync and lag, backlog (a pending coalesced round, a round in progress per
the delta cursors, backfill state, pending dead letters; queue depths are tenant-wide because
Storage queues cannot be counted per mailbox), counters with skip reasons, throttling seen,
subscription state and expiry, and the open incident.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from shared.ops import deadletters as ops_dl
from shared.ops.failures import view as failure_view
from shared.ops.incidents import is_failing
from shared.ops.privacy import sanitize_error
from shared.queues import names
from shared.runtime import Services
from shared.storage.cursors import Cursor
from shared.storage.health import Health
from shared.storage.mailboxes import KINDS, Mailbox
from shared.storage.subscriptions import SubscriptionRecord
from shared.sync.coalesce import pending_key

log = logging.getLogger(__name__)



def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


def backfill_state(backfill: dict[str, str], kind: str) -> str | None:
    """One state per kind; email keeps one entry per folder (`email:inbox`, `email:sentitems`)."""
    per_folder = {k: v for k, v in backfill.items() if k.startswith(f"{kind}:")}
    if not per_folder:
        return backfill.get(kind)
    if all(v == "done" for v in per_folder.values()):
        return "done"
    return ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(per_folder.items()) if v != "done")


def state_of(h: Health | None, *, enabled: bool) -> str:
    """ok | failing | incident | never (no success yet) | disabled."""
    if not enabled:
        return "disabled"
    if h is None:
        return "never"
    if h.incident_open:
        return "incident"
    if is_failing(h):
        return "failing"
    return "ok" if h.last_success_at else "never"


def _current_url_hash(services: Services) -> str:
    from shared.sync.subscriptions import url_hash

    try:
        return url_hash(services.settings)
    except Exception:
        return ""


def _degraded(state: str, failures: int) -> str:
    """A kind that syncs but has items or operations that did not make it is not simply "ok"."""
    return "degraded" if state == "ok" and failures else state


async def queue_depths(services: Services) -> dict[str, int | None]:
    """Approximate message counts of the work queues and their poison twins (None = unreadable)."""
    out: dict[str, int | None] = {}
    for q in (*names.ALL, *(names.poison(n) for n in names.ALL)):
        try:
            props = await services.queues.client(q).get_queue_properties()
            out[q] = int(props.approximate_message_count or 0)
        except Exception as exc:
            out[q] = 0 if type(exc).__name__ == "ResourceNotFoundError" else None
    return out


async def _pending_round(services: Services, mailbox: str, kind: str) -> dt.datetime | None:
    ts = services.state.tables
    e = await ts.table(ts.names.coalesce).get(*pending_key(mailbox, kind))
    return e.get("requested_at") if e else None


def _kind_row(kind: str, *, mailbox: Mailbox, h: Health | None, now: dt.datetime, cursors: list[Cursor],
              subs: list[SubscriptionRecord], letters: int, pending_since: dt.datetime | None,
              failures: int = 0, url_now: str = "") -> dict[str, Any]:
    enabled = mailbox.active and (kind not in KINDS or mailbox.enabled(kind))
    h = h or Health(mailbox=mailbox.key, kind=kind)
    mine = [c for c in cursors if c.kind == kind]
    row: dict[str, Any] = {
        "kind": kind,
        "enabled": enabled,
        "state": _degraded(state_of(h if (h.last_success_at or h.last_failure_at) else None, enabled=enabled),
                           failures),
        "last_success_at": _iso(h.last_success_at),
        "lag_seconds": round((now - h.last_success_at).total_seconds()) if h.last_success_at else None,
        "last_failure_at": _iso(h.last_failure_at),
        "failing_since": _iso(h.failing_since),
        "consecutive_failures": h.consecutive_failures,
        "last_error": sanitize_error(h.last_error),
        "synced": h.synced,
        "skipped": h.skipped,
        "skip_reasons": dict(sorted(h.skip_reasons.items(), key=lambda kv: -kv[1])),
        "failed": h.failed,
        "failures_open": failures,
        "retries": h.retries,
        "throttled": h.throttled,
        "incident": {"open": h.incident_open, "notified_at": _iso(h.incident_notified_at)},
        "backlog": {
            "backfill": backfill_state(mailbox.backfill, kind),
            "round_pending_since": _iso(pending_since),
            "round_in_progress": any(c.next_link for c in mine),
            "last_round_at": _iso(max((c.last_round_at for c in mine if c.last_round_at), default=None)),
            "cursors": len(mine),
            "dead_letters": letters,
        },
    }
    row["subscriptions"] = [{
        "resource": s.resource, "status": s.status, "expires_at": _iso(s.expires_at),
        "expires_in_seconds": round((s.expires_at - now).total_seconds()), "last_error": sanitize_error(s.last_error),
        "notification_url_current": (s.url_hash == url_now) if url_now else None,
    } for s in subs if s.kind == kind]
    return row


async def mailbox_health(services: Services, upn: str, *, now: dt.datetime | None = None,
                         letters: dict[str, int] | None = None, depths: dict[str, int | None] | None = None,
                         all_subs: list[SubscriptionRecord] | None = None) -> dict[str, Any] | None:
    now = now or dt.datetime.now(dt.UTC)
    mailbox = await services.state.mailboxes.get(upn)
    if mailbox is None:
        return None
    health = {h.kind: h for h in await services.state.health.for_mailbox(mailbox.key)}
    cursors = await services.state.cursors.list(mailbox.key)
    subs = ([r for r in all_subs if r.mailbox == mailbox.key] if all_subs is not None
            else await services.state.subscriptions.for_mailbox(mailbox.key))
    if letters is None:
        letters = (await ops_dl.counts(services))["per_mailbox_kind"]
    kinds = list(KINDS) + sorted(k for k in health if k not in KINDS)
    failures = await services.state.failures.for_mailbox(mailbox.key)
    url_now = _current_url_hash(services)
    rows = []
    for kind in kinds:
        pending = await _pending_round(services, mailbox.key, kind) if kind in KINDS else None
        n_letters = letters.get(f"{mailbox.key}|{kind}", 0)
        rows.append(_kind_row(kind, mailbox=mailbox, h=health.get(kind), now=now, cursors=cursors, subs=subs,
                              letters=n_letters, pending_since=pending,
                              failures=sum(1 for f in failures if f.kind == kind), url_now=url_now))
    return {
        "upn": mailbox.upn,
        "id": mailbox.key,
        "pega_operator": mailbox.pega_operator,
        "status": mailbox.status,
        "onboarded_at": _iso(mailbox.onboarded_at),
        "backfill": mailbox.backfill,
        "generated_at": now.isoformat(),
        "kinds": rows,
        # every item and operation that failed and is not resolved yet (retrying, dead-lettered, failed)
        "failures": [failure_view(f) for f in failures],
        "incident_open": any(r["incident"]["open"] for r in rows),
        "queues": depths if depths is not None else await queue_depths(services),
    }


async def tenant_health(services: Services, *, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.UTC)
    depths = await queue_depths(services)
    dl = await ops_dl.counts(services)
    mailboxes = await services.state.mailboxes.list(active_only=False)
    all_subs = await services.state.subscriptions.all()  # one scan, not one query per mailbox
    rows = []
    incidents = []
    totals: dict[str, dict[str, int]] = {}
    expiring = failed_subs = active_subs = 0
    for m in sorted(mailboxes, key=lambda m: m.upn):
        detail = await mailbox_health(services, m.key, now=now, letters=dl["per_mailbox_kind"], depths=depths,
                                      all_subs=all_subs)
        if detail is None:
            continue
        kinds = {}
        for r in detail["kinds"]:
            kinds[r["kind"]] = {k: r[k] for k in ("state", "last_success_at", "lag_seconds", "synced", "skipped",
                                                  "failed", "failures_open", "retries", "throttled",
                                                  "consecutive_failures")}
            kinds[r["kind"]]["dead_letters"] = r["backlog"]["dead_letters"]
            kinds[r["kind"]]["incident_open"] = r["incident"]["open"]
            t = totals.setdefault(r["kind"], {"synced": 0, "skipped": 0, "failed": 0, "throttled": 0})
            for k in t:
                t[k] += int(r[k])
            if r["incident"]["open"]:
                incidents.append({"mailbox": m.upn, "kind": r["kind"], "failing_since": r["failing_since"],
                                  "notified_at": r["incident"]["notified_at"], "last_error": r["last_error"]})
            for s in r.get("subscriptions", []):
                active_subs += s["status"] == "active"
                failed_subs += s["status"] == "failed"
                expiring += s["status"] == "active" and s["expires_in_seconds"] < 24 * 3600
        rows.append({"upn": m.upn, "status": m.status, "pega_operator": m.pega_operator, "kinds": kinds,
                     "failures_open": len(detail["failures"]), "incident_open": detail["incident_open"]})
    return {
        "generated_at": now.isoformat(),
        "mailboxes": {"total": len(mailboxes), "active": sum(m.active for m in mailboxes),
                      "offboarded": sum(not m.active for m in mailboxes)},
        "queues": depths,
        "dead_letters": {"per_queue": dl["per_queue"], "total": sum(dl["per_queue"].values())},
        "incidents_open": incidents,
        "subscriptions": {"active": active_subs, "failed": failed_subs, "expiring_within_24h": expiring},
        "totals_by_kind": totals,
        "mailbox_rows": rows,
    }
