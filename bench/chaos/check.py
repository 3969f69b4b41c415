"""The check: the ground truth the harness recorded against both sides after the settle.

Counts, one verdict per item (an item missing and invisible counts in both lost and stuck):
- lost: it should be on the other side and is not;
- duplicated: more than one record / event / message / contact for one item;
- wrong: it is there once but its final content differs (subject, times, attendees, recipients,
  cancelled / closed state, the ids written back), or it is there and should not be (a private or
  unassociated item synced, a ghost meeting live after it was cancelled);
- echo: writes beyond what the changes justify, from the simulators' request logs: any write of the
  sync service while nothing changes (the quiet window after convergence), plus writes to one item
  beyond a generous bound of its changes;
- stuck: work neither done nor visible: a missing item that the admin health API does not show (no
  dead letter, no failing kind for its mailbox, no failed operation naming it), or an operation of
  the Pega-facing API still accepted / running after the settle.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bench.chaos.actors import Actors, HarnessError
from bench.chaos.onprem import ONPREM, OnPremOutlook
from bench.chaos.workload import CATEGORY, Item, Truth
from sandbox.settings import SYNC_APP_ID

CANCELLED = "resolved-cancelled"
COUNTS = ("lost", "duplicated", "wrong", "echo", "stuck")
WRITE_METHODS = {"POST", "PATCH", "PUT", "DELETE"}


def _t(value: Any) -> dt.datetime | None:
    if not value:
        return None
    s = str(value).replace("Z", "+00:00")
    if "." in s:  # Graph: up to 7 fractional digits
        head, _, tail = s.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        rest = tail[len(digits):]
        s = f"{head}.{digits[:6].ljust(6, '0')}{rest}"
    t = dt.datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def graph_time(value: dict[str, Any] | None) -> dt.datetime | None:
    """A stored Graph dateTimeTimeZone (Windows or IANA zone name) as UTC, by the simulator's own table."""
    if not value or not value.get("dateTime"):
        return None
    from sandbox.graph.timezones import to_utc

    return to_utc({"dateTime": str(value["dateTime"]), "timeZone": str(value.get("timeZone") or "UTC")})


@dataclass
class Verdict:
    key: str
    kind: str
    verdict: str  # ok | lost | duplicated | wrong
    detail: str = ""
    visible: bool | None = None  # for a missing item: shown by the admin health API?


@dataclass
class Result:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    verdicts: list[Verdict] = field(default_factory=list)
    echo: list[dict[str, Any]] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)

    def add(self, v: Verdict) -> None:
        self.verdicts.append(v)
        if v.verdict != "ok":
            self.counts[v.verdict] += 1
        if v.verdict == "lost" and v.visible is False:
            self.counts["stuck"] += 1
            self.stuck.append({"item": v.key, "why": "missing and not visible in the admin health API"})

    @property
    def clean(self) -> bool:
        return not any(self.counts.values())


@dataclass
class World:
    """Both sides' final state, read once."""

    pega: list[dict[str, Any]]
    graph_items: list[dict[str, Any]]
    folders: dict[str, dict[str, Any]]
    users: dict[str, str]  # graph user id -> upn
    health: dict[str, Any]
    mailbox_health: dict[str, Any]
    deadletters: Any
    outbound: list[dict[str, Any]]
    ews: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # the on-premises mailbox (onprem.py)

    @classmethod
    async def read(cls, a: Actors, onprem: OnPremOutlook | None = None) -> World:
        state = await a.gsim("GET", "state")
        users = {u["id"]: u["userPrincipalName"].lower() for u in state["users"]}
        folders = {f["id"]: f for f in state["folders"]}
        health = await a.admin("GET", "health")
        per = {}
        for upn in ("alex@contoso.example", "blair@contoso.example", *((ONPREM,) if onprem else ())):
            per[upn] = await a.admin("GET", f"mailboxes/{upn}/health")
        dl = await a.admin("GET", "deadletters")
        ews: dict[str, list[dict[str, Any]]] = {}
        if onprem is not None:
            try:
                ews = await onprem.world()
            except Exception as exc:  # the harness could not read it back: no verdict this time
                raise HarnessError(f"reading the on-premises mailbox: {type(exc).__name__}: {exc}") from exc
        return cls(await a.pega_records(), state["items"], folders, users, health, per, dl,
                   (await a.psim("GET", "outbound"))["calls"], ews)

    def pega_of(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.pega if r["kind"] == kind]

    def outlook(self, upn: str, kind: str) -> list[dict[str, Any]]:
        return [i for i in self.graph_items if i["kind"] == kind and self.users.get(i["owner"], "") == upn.lower()]

    def folder_name(self, item: dict[str, Any]) -> str:
        f = self.folders.get(item.get("folderId", ""), {})
        return str(f.get("wellKnownName") or f.get("displayName") or "").lower()

    def visible(self, item: Item, *, extra: tuple[str, ...] = ()) -> bool:
        """Does the admin health API show a failure this item's work belongs to?"""
        kind = {"email": "email", "event": "calendar", "contact": "contacts"}.get(item.kind)
        text = json.dumps(self.deadletters) + json.dumps(self.health)
        if any(x and x in text for x in extra):
            return True
        mailboxes = ["alex@contoso.example", "blair@contoso.example"] if item.mailbox == "both" else [item.mailbox]
        for upn in mailboxes:
            detail = self.mailbox_health.get(upn) or {}
            for row in detail.get("kinds", []):
                if kind and row.get("kind") != kind:
                    continue
                if (row.get("state") in ("failing", "incident") or (row.get("backlog") or {}).get("dead_letters")
                        or row.get("failures_open")):  # a failed operation or item, listed until retried
                    return True
        return False


def _graph_ids(item: Item) -> set[str]:
    """The item's Outlook ids (one per mailbox that holds it); never None (unlinked records have no id)."""
    ids = {item.ids.get("graph_id"), *item.ids.get("graph_ids", [])}
    return {str(i) for i in ids if i}


def _missing(res: Result, w: World, item: Item, detail: str, *, extra: tuple[str, ...] = ()) -> None:
    ids = ", ".join(f"{k}={v}" for k, v in sorted(item.ids.items()))  # to find it in the logs of a replay
    res.add(Verdict(item.key, item.kind, "lost", f"{detail} [{item.mailbox}; {ids}]",
                    visible=w.visible(item, extra=extra)))


def _differences(item: Item, got: dict[str, Any]) -> list[str]:
    """Compare expected fields (harness vocabulary) with what is there (same vocabulary)."""
    wanted = dict(item.fields)
    if item.alternatives:
        diffs_per = [_diff({**wanted, **alt}, got) for alt in item.alternatives]
        return min(diffs_per, key=len)
    return _diff(wanted, got)


def _diff(wanted: dict[str, Any], got: dict[str, Any]) -> list[str]:
    out = []
    for k, v in wanted.items():
        g = got.get(k)
        if isinstance(v, dt.datetime):
            if g is None or abs((g - v).total_seconds()) > 1:
                out.append(f"{k}: want {v.isoformat()} got {g.isoformat() if g else None}")
        elif isinstance(v, set):
            if {x.lower() for x in v} != {x.lower() for x in (g or set())}:
                out.append(f"{k}: want {sorted(v)} got {sorted(g or [])}")
        elif k == "BodyContains":
            if v not in str(g or ""):
                out.append("body lacks the rep's text")
        elif str(v) != str(g if g is not None else ""):
            out.append(f"{k}: want {v!r} got {g!r}")
    return out


def _pega_appt_fields(rec: dict[str, Any], owner: str) -> dict[str, Any]:
    c = rec["content"]
    attendees = {str(x.get("Email", "")).lower() for x in c.get("Attendees") or [] if x.get("Email")}
    attendees.discard(owner.lower())
    return {"Subject": c.get("Subject"), "StartTime": _t(c.get("StartTime")), "EndTime": _t(c.get("EndTime")),
            "Attendees": attendees}


def _outlook_event_fields(ev: dict[str, Any]) -> dict[str, Any]:
    d = ev["data"]
    return {"Subject": d.get("subject"), "StartTime": graph_time(d.get("start")), "EndTime": graph_time(d.get("end")),
            "Attendees": {str(x["emailAddress"]["address"]).lower() for x in d.get("attendees") or []}}


def _cancelled(rec: dict[str, Any]) -> bool:
    return str(rec["content"].get("pyStatusWork", "")).lower() == CANCELLED


def _closed_contact(rec: dict[str, Any]) -> bool:
    return str(rec["content"].get("pyStatusWork", "")).lower() in ("closed", "resolved-closed", "inactive")


# ---------------------------------------------------------------- per kind


def check_email(res: Result, w: World, item: Item) -> None:
    imid = item.ids["internet_message_id"]
    recs = [r for r in w.pega_of("email") if str(r["content"].get("InternetMessageID", "")) == imid
            or r["content"].get("ExchangeID") in _graph_ids(item)]
    recs = list({r["id"]: r for r in recs}.values())
    if item.present is False:
        res.add(Verdict(item.key, item.kind, "wrong" if recs else "ok",
                        f"synced but should not be ({item.notes})" if recs else ""))
        return
    if not recs:
        return _missing(res, w, item, "no email case")
    if len(recs) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(recs)} email cases: " + "; ".join(
            f"{r['id']} by {r.get('createdBy')} ExchangeID={str(r['content'].get('ExchangeID'))[-12:]}"
            for r in recs)))
    diffs = _differences(item, {"Subject": recs[0]["content"].get("Subject")})
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def check_event(res: Result, w: World, item: Item) -> None:
    gid = item.ids["graph_id"]
    recs = [r for r in w.pega_of("appointment") if r["content"].get("ExchangeID") == gid]
    if item.present is False:
        live = [r for r in recs if not _cancelled(r)]
        res.add(Verdict(item.key, item.kind, "wrong" if live else "ok",
                        f"synced but should not be ({item.notes})" if live else ""))
        return
    if not recs:
        if item.present is None:
            return res.add(Verdict(item.key, item.kind, "ok", "gone before it synced"))
        return _missing(res, w, item, "no appointment")
    if len(recs) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(recs)} appointments: " + "; ".join(
            f"{r['id']} by {r.get('createdBy')}" for r in recs)))
    rec = recs[0]
    if item.closed:
        ok = _cancelled(rec)
        return res.add(Verdict(item.key, item.kind, "ok" if ok else "wrong",
                               "" if ok else f"still live in Pega after it was cancelled/deleted in Outlook "
                                             f"(event {gid}, record {rec['id']}, {'; '.join(item.notes)})"))
    if _cancelled(rec):
        return res.add(Verdict(item.key, item.kind, "wrong", "cancelled in Pega, live in Outlook"))
    diffs = _differences(item, _pega_appt_fields(rec, item.mailbox))
    if item.alternatives:  # both sides edited: they must agree
        ev = next((i for i in w.graph_items if i["immutableId"] == gid), None)
        if ev is not None and ev["data"].get("subject") != rec["content"].get("Subject"):
            diffs.append(f"sides disagree: Outlook {ev['data'].get('subject')!r}, Pega {rec['content'].get('Subject')!r}")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def check_contact(res: Result, w: World, item: Item) -> None:
    address = item.ids["email"].lower()
    gids = _graph_ids(item)
    recs = [r for r in w.pega_of("contact") if r["content"].get("ExchangeID") in gids
            or str(r["content"].get("WorkEmail", "")).lower() == address]
    active = [r for r in recs if not _closed_contact(r)]
    if item.present is False:
        res.add(Verdict(item.key, item.kind, "wrong" if active else "ok",
                        f"synced but should not be ({item.notes})" if active else ""))
        return
    if item.closed:
        if active:
            return res.add(Verdict(item.key, item.kind, "wrong", "still active in Pega after it left scope in Outlook"))
        if not recs and item.present:
            return _missing(res, w, item, "never reached Pega (it synced before it left scope)")
        return res.add(Verdict(item.key, item.kind, "ok"))
    if not recs:
        return _missing(res, w, item, "no Pega contact")
    if len(active) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(active)} active Pega contacts: " + "; ".join(
            f"{r['id']} by {r.get('createdBy')} ExchangeID={str(r['content'].get('ExchangeID'))[-12:]}"
            for r in active)))
    if not active:
        return res.add(Verdict(item.key, item.kind, "wrong", "closed in Pega, categorized in Outlook"))
    c = active[0]["content"]
    diffs = _differences(item, {"FirstName": c.get("FirstName"), "LastName": c.get("LastName"),
                                "Email": str(c.get("WorkEmail", "")).lower()})
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def _pega_record(w: World, pega_id: str) -> dict[str, Any] | None:
    return next((r for r in w.pega if r["id"] == pega_id), None)


def _op_ids(w: World, pega_id: str) -> tuple[str, ...]:
    out = []
    for call in w.outbound:
        if call.get("record_id") == pega_id:
            resp = call.get("response") or {}
            out += [str(v) for k, v in resp.items() if "id" in k.lower() and isinstance(v, str)]
    return tuple(out)


def check_rep_appointment(res: Result, w: World, item: Item) -> None:
    evs = [e for e in w.outlook(item.mailbox, "event") if item.tag in str(e["data"].get("subject", ""))
           and e["data"].get("type", "singleInstance") in ("singleInstance", "seriesMaster", None)]
    rec = _pega_record(w, item.ids["pega_id"])
    live = [e for e in evs if not e["data"].get("isCancelled")]
    ops = _op_ids(w, item.ids["pega_id"])
    if item.closed:
        if live:
            return res.add(Verdict(item.key, item.kind, "wrong", f"{len(live)} live Outlook event(s) for an "
                                                                 "appointment cancelled in Pega"))
        return res.add(Verdict(item.key, item.kind, "ok"))
    if not live:
        return _missing(res, w, item, "no live Outlook event", extra=ops)
    if len(live) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(live)} Outlook events"))
    ev = live[0]
    diffs = _differences(item, _outlook_event_fields(ev))
    xid = (rec or {}).get("content", {}).get("ExchangeID")
    if xid != ev["immutableId"]:
        diffs.append(f"ExchangeID in Pega is {xid!r}, not the event's id")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def check_rep_email(res: Result, w: World, item: Item) -> None:
    msgs = [m for m in w.outlook(item.mailbox, "message") if item.tag in str(m["data"].get("subject", ""))]
    sent = [m for m in msgs if w.folder_name(m) == "sentitems"]
    drafts = [m for m in msgs if m["data"].get("isDraft")]
    ops = _op_ids(w, item.ids["pega_id"])
    if not sent:
        return _missing(res, w, item, f"not in Sent Items ({len(drafts)} draft(s))", extra=ops)
    if len(sent) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"sent {len(sent)} times"))
    to = {str(r["emailAddress"]["address"]).lower() for r in sent[0]["data"].get("toRecipients") or []}
    diffs = _differences(item, {"Subject": sent[0]["data"].get("subject"), "To": to})
    if drafts:
        diffs.append(f"{len(drafts)} stray draft(s) left")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def check_rep_reply(res: Result, w: World, item: Item) -> None:
    if "pega_id" not in item.ids:
        return res.add(Verdict(item.key, item.kind, "ok", "no reply made"))
    conv = item.ids["conversation_id"]
    msgs = [m for m in w.outlook(item.mailbox, "message") if m["data"].get("conversationId") == conv]
    sent = [m for m in msgs if w.folder_name(m) == "sentitems"]
    drafts = [m for m in msgs if m["data"].get("isDraft")]
    ops = _op_ids(w, item.ids["pega_id"])
    if not sent:
        return _missing(res, w, item, f"no reply in Sent Items ({len(drafts)} draft(s))", extra=ops)
    if len(sent) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(sent)} replies sent"))
    body = str((sent[0]["data"].get("body") or {}).get("content", ""))
    diffs = _differences(item, {"BodyContains": body})
    if drafts:
        diffs.append(f"{len(drafts)} stray draft(s) left")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def check_rep_contact(res: Result, w: World, item: Item) -> None:
    address = item.ids["email"].lower()
    cs = [c for c in w.outlook(item.mailbox, "contact")
          if address in json.dumps(c["data"].get("emailAddresses") or []).lower()]
    rec = _pega_record(w, item.ids["pega_id"])
    ops = _op_ids(w, item.ids["pega_id"])
    if not cs:
        if item.closed:
            return res.add(Verdict(item.key, item.kind, "ok", "closed before it reached Outlook"))
        return _missing(res, w, item, "no Outlook contact", extra=ops)
    if len(cs) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(cs)} Outlook contacts"))
    d = cs[0]["data"]
    tagged = CATEGORY.lower() in (x.lower() for x in d.get("categories") or [])
    if item.closed:
        return res.add(Verdict(item.key, item.kind, "wrong" if tagged else "ok",
                               "still categorized after it was closed in Pega" if tagged else ""))
    diffs = _differences(item, {"FirstName": d.get("givenName"), "LastName": d.get("surname"), "Email": address})
    if not tagged:
        diffs.append("not categorized (it would not flow back)")
    xid = (rec or {}).get("content", {}).get("ExchangeID")
    if xid != cs[0]["immutableId"]:
        diffs.append(f"ExchangeID in Pega is {xid!r}, not the contact's id")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def _ews_time(value: Any) -> dt.datetime | None:
    # exchangelib's EWSDateTime converts only to its own zones: go through the POSIX instant
    return dt.datetime.fromtimestamp(value.timestamp(), dt.UTC) if isinstance(value, dt.datetime) else None


def check_onprem_rep_appointment(res: Result, w: World, item: Item) -> None:
    evs = [e for e in w.ews.get("events", []) if item.tag in str(e.get("subject") or "")]
    live = [e for e in evs if not e["cancelled"]]
    ops = _op_ids(w, item.ids["pega_id"])
    if item.closed:
        if live:
            return res.add(Verdict(item.key, item.kind, "wrong", f"{len(live)} live on-premises event(s) for an "
                                                                 "appointment cancelled in Pega"))
        return res.add(Verdict(item.key, item.kind, "ok"))
    if not live:
        return _missing(res, w, item, "no live on-premises event", extra=ops)
    if len(live) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(live)} on-premises events"))
    ev = live[0]
    diffs = _differences(item, {"Subject": ev["subject"], "StartTime": _ews_time(ev["start"]),
                                "EndTime": _ews_time(ev["end"]), "Attendees": ev["attendees"]})
    rec = _pega_record(w, item.ids["pega_id"])
    xid = (rec or {}).get("content", {}).get("ExchangeID")
    if xid != ev["id"]:
        diffs.append(f"ExchangeID in Pega is {xid!r}, not the event's id")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def check_onprem_rep_email(res: Result, w: World, item: Item) -> None:
    sent = [m for m in w.ews.get("sent", []) if item.tag in str(m.get("subject") or "")]
    drafts = [m for m in w.ews.get("drafts", []) if item.tag in str(m.get("subject") or "")]
    if not sent:
        return _missing(res, w, item, f"not in Sent Items ({len(drafts)} draft(s))",
                        extra=_op_ids(w, item.ids["pega_id"]))
    if len(sent) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"sent {len(sent)} times"))
    diffs = _differences(item, {"Subject": sent[0]["subject"], "To": sent[0]["to"]})
    if drafts:
        diffs.append(f"{len(drafts)} stray draft(s) left")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


def check_onprem_rep_contact(res: Result, w: World, item: Item) -> None:
    address = item.ids["email"].lower()
    cs = [c for c in w.ews.get("contacts", []) if address in c["emails"]]
    if not cs:
        return _missing(res, w, item, "no on-premises contact", extra=_op_ids(w, item.ids["pega_id"]))
    if len(cs) > 1:
        return res.add(Verdict(item.key, item.kind, "duplicated", f"{len(cs)} on-premises contacts"))
    c = cs[0]
    diffs = _differences(item, {"FirstName": c["given"], "LastName": c["surname"], "Email": address})
    if CATEGORY.lower() not in (x.lower() for x in c["categories"]):
        diffs.append("not categorized (it would not flow back)")
    rec = _pega_record(w, item.ids["pega_id"])
    xid = (rec or {}).get("content", {}).get("ExchangeID")
    if xid != c["id"]:
        diffs.append(f"ExchangeID in Pega is {xid!r}, not the contact's id")
    res.add(Verdict(item.key, item.kind, "wrong" if diffs else "ok", "; ".join(diffs)))


ONPREM_CHECKS = {"rep_appointment": check_onprem_rep_appointment, "rep_email": check_onprem_rep_email,
                 "rep_contact": check_onprem_rep_contact}

CHECKS = {"email": check_email, "event": check_event, "contact": check_contact,
          "rep_appointment": check_rep_appointment, "rep_email": check_rep_email, "rep_reply": check_rep_reply,
          "rep_contact": check_rep_contact}


# ---------------------------------------------------------------- echo and stuck operations


def is_read_by_post(path: str) -> bool:
    """Reads that travel as POST: a DX v2 data view query (the query is the body) and a Graph JSON
    batch (the product batches GETs only). Counting them as writes made quiet-window lookups echoes."""
    p = path.lower()
    return "/data_views/" in p or p.rstrip("/").endswith("$batch")


def is_write(entry: dict[str, Any]) -> bool:
    return (str(entry.get("method", "")).upper() in WRITE_METHODS and int(entry.get("status") or 0) < 300
            and not is_read_by_post(str(entry.get("path", ""))))


def sync_graph_writes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Writes of the sync service to mailboxes (subscription upkeep and failure notices are not item writes)."""
    return [e for e in entries if e.get("app") == SYNC_APP_ID and is_write(e)
            and not str(e.get("path", "")).lower().startswith("subscriptions")
            and "sync-notices@" not in str(e.get("mailbox", "")).lower()]


def pega_writes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if is_write(e) and "/oauth2/" not in str(e.get("path", ""))]


def echo_findings(truth: Truth, *, quiet_graph: list[dict[str, Any]], quiet_pega: list[dict[str, Any]],
                  all_pega: list[dict[str, Any]], world: World) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for e in sync_graph_writes(quiet_graph):
        found.append({"where": "graph", "when": "quiet window", "method": e["method"], "path": e["path"]})
    for e in pega_writes(quiet_pega):
        found.append({"where": "pega", "when": "quiet window", "method": e["method"], "path": e["path"]})
    # per Pega record: writes beyond what its item's changes justify (generous: retries, id reports)
    writes = pega_writes(all_pega)
    for item in truth.items:
        rec_ids = set()
        if item.kind in ("event",):
            rec_ids |= {r["id"] for r in world.pega_of("appointment")
                        if r["content"].get("ExchangeID") == item.ids.get("graph_id")}
        elif item.kind == "contact":
            gids = _graph_ids(item)
            rec_ids |= {r["id"] for r in world.pega_of("contact") if r["content"].get("ExchangeID") in gids}
        elif item.ids.get("pega_id"):
            rec_ids.add(item.ids["pega_id"])
        for rid in rec_ids:
            n = sum(1 for e in writes if quote(rid, safe="") in e["path"] or rid in e["path"])
            bound = 3 * (item.changes + 1) + 2
            if n > bound:
                found.append({"where": "pega", "when": "whole run", "item": item.key, "record": rid, "writes": n,
                              "bound": bound})
    return found


async def operations(a: Actors, world: World) -> list[dict[str, Any]]:
    """Every operation of the Pega-facing API that Pega's calls started, with its final status."""
    out = []
    for call in world.outbound:
        resp = call.get("response") or {}
        url = resp.get("statusUrl") or resp.get("status_url")
        if not url and resp.get("operationId"):
            url = f"pega/v1/operations/{resp['operationId']}"
        if not url:
            continue
        op = await a.operation(str(url))
        out.append({"operation": resp.get("operationId") or url, "status": str((op or {}).get("status", "unknown")),
                    "record": call.get("record_id"), "path": call.get("path"), "error": (op or {}).get("error")})
    return out


PENDING = ("accepted", "running", "pending")


def settled(ops: list[dict[str, Any]]) -> bool:
    """Has every operation Pega started ended? Convergence needs it as much as matching items: an
    operation still waiting (behind its create, say) may yet write, and judged now it would be stuck."""
    return not any(op["status"].lower() in PENDING for op in ops)


def judge_operations(res: Result, truth: Truth, ops: list[dict[str, Any]], world: World) -> None:
    """Operations still accepted/running after the settle are stuck; an operation reported failed
    although its item is right on the other side is wrong (Pega would offer a resend); a failed one
    whose item is missing is stuck too unless the admin health API shows it."""
    by_record = {item.ids.get("pega_id"): item for item in truth.items if item.ids.get("pega_id")}
    verdicts = {v.key: v for v in res.verdicts}
    for op in ops:
        status = op["status"].lower()
        item = by_record.get(op["record"])
        if status in PENDING:
            res.stuck.append({"operation": op, "why": "still accepted/running after the settle"})
            res.counts["stuck"] += 1
        elif status == "failed" and item is not None:
            v = verdicts.get(item.key)
            if v is not None and v.verdict == "ok":
                res.add(Verdict(item.key, item.kind, "wrong", f"operation {op['operation']} ({op['path']}) "
                                                              f"reported failed, but its write is done"))


def check(truth: Truth, world: World) -> Result:
    res = Result()
    for item in truth.items:
        if item.mailbox == ONPREM and item.kind in ONPREM_CHECKS:
            ONPREM_CHECKS[item.kind](res, world, item)
        else:
            CHECKS[item.kind](res, world, item)
    return res
