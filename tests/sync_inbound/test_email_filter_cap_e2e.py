"""Email backfill of a folder with more mail in its window than Graph's filtered delta returns.

Message delta with `$filter=receivedDateTime ge …` returns at most FILTERED_DELTA_CAP (5,000)
messages, the newest (graph.md §2; the Graph simulator reproduces it). A first round that sees the
cap starts the folder over without the filter, so the older in-window mail is not lost.

Real Graph simulator and Pega simulator over HTTP, state in Azurite. The bulk of the mail comes from
an unknown sender (skipped as no_association: no Pega write), so the test stays fast.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from shared.sync.source import FILTERED_DELTA_CAP

DANA = {"address": "dana@fabrikam.example", "name": "Dana (Fabrikam)"}
STRANGER = {"address": "someone@unknown-co.example", "name": "Someone"}
BATCH = 1000  # page size: few pages for ~5,300 mails


def _iso(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def _seed(inbound: Any, subject: str, count: int, sender: dict[str, str], received: dt.datetime) -> list[str]:
    made = await inbound.graph.control.inbound_mail(inbound.upn, subject=subject, body="About our order.",
                                                    count=count, receivedDateTime=_iso(received), **{"from": sender})
    return [m["immutableId"] for m in made["value"]]


async def test_a_window_beyond_the_filtered_cap_is_backfilled_completely_once(inbound) -> None:
    tag = uuid.uuid4().hex[:8]
    now = dt.datetime.now(dt.UTC)
    await inbound.onboard(past_days=30, batch_size=BATCH)
    # oldest first: out of the window, then in-window mail Graph's filtered round would cut (older than
    # the newest 5,000), then the newest 5,000 (unknown sender) and a few newest from a known contact
    old = await _seed(inbound, f"{tag} old", 40, DANA, now - dt.timedelta(days=45))
    cut = await _seed(inbound, f"{tag} cut", 150, DANA, now - dt.timedelta(days=10))
    bulk = await _seed(inbound, f"{tag} bulk", FILTERED_DELTA_CAP - 50, STRANGER, now - dt.timedelta(days=2))
    newest = await _seed(inbound, f"{tag} newest", 50, DANA, now - dt.timedelta(hours=1))

    reports = [await inbound.run("email", reason="onboard", enqueue_continuation=False)]
    while not reports[-1].completed:
        assert len(reports) < 5, [r.as_dict() for r in reports]
        reports.append(await inbound.run("email", reason="onboard", enqueue_continuation=False))

    restarts = [f for r in reports for f in r.unfiltered_restarts]
    reread = sum(r.reread_items for r in reports)
    assert restarts == ["inbox"], [r.as_dict() for r in reports]
    assert reread == FILTERED_DELTA_CAP, "the filtered round saw exactly the cap (the newest 5,000) before"

    outcomes: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for r in reports:
        for k, v in r.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + v
        for k, v in r.skipped.items():
            skipped[k] = skipped.get(k, 0) + v
    # the unfiltered round reads the whole folder once; the filtered one's 5,000 come again as no-ops/skips
    assert sum(outcomes.values()) - reread == len(old) + len(cut) + len(bulk) + len(newest), outcomes
    assert outcomes.get("created") == len(cut) + len(newest), (outcomes, skipped)
    assert skipped.get("outside_window") == len(old), skipped
    assert skipped.get("unchanged") == len(newest), "the newest known mails were created once, then no-ops"
    assert skipped.get("no_association") == 2 * len(bulk), "skipped in both reads, never written"

    # every in-window mail of a known sender is one Pega case, linked; nothing out of the window reached Pega
    wanted = set(cut) | set(newest)
    links = await inbound.links("email")
    assert {lk.graph_id for lk in links} == wanted and len(links) == len(wanted)
    cases = [r for r in await inbound.pega_records("email") if str(r["content"].get("Subject", "")).startswith(tag)]
    ids = [r["content"].get("ExchangeID") for r in cases]
    assert len(ids) == len(set(ids)) == len(wanted) and set(ids) == wanted, "each mail exactly one Pega case"
    assert {lk.pega_id for lk in links} == {r["id"] for r in cases}

    # the folder is remembered as unfiltered: a full resync (expired token) reads the whole folder at once
    cursor = await inbound.services.state.cursors.get(inbound.upn, "email", "inbox")
    assert cursor is not None and cursor.unfiltered and cursor.delta_link
    await inbound.graph.control.expire_delta_tokens(inbound.upn)
    resync = await inbound.run("email", max_pages=100)
    assert resync.completed and resync.full_resync and not resync.unfiltered_restarts, resync.as_dict()
    assert resync.items == len(old) + len(cut) + len(bulk) + len(newest), "the whole folder, not the newest 5,000"
    assert not (resync.outcomes["created"] or resync.outcomes["updated"]), resync.as_dict()
    assert len(await inbound.links("email")) == len(wanted)


async def test_a_normal_mailbox_keeps_the_filtered_read(inbound) -> None:
    await inbound.onboard(past_days=7)
    now = dt.datetime.now(dt.UTC)
    await _seed(inbound, "old", 3, DANA, now - dt.timedelta(days=30))
    await _seed(inbound, "new", 2, DANA, now - dt.timedelta(hours=1))
    report = await inbound.run("email")
    assert report.completed and not report.unfiltered_restarts and report.items == 2, report.as_dict()
    cursor = await inbound.services.state.cursors.get(inbound.upn, "email", "inbox")
    assert cursor is not None and not cursor.unfiltered and cursor.initial_items == 0
