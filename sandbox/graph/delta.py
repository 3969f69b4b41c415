"""Delta queries: messages and contacts per folder, events per calendarView window.

Sync state lives server-side, as in Exchange: a round diffs the folder (or the expanded window)
against what the client last saw and pages through the differences. Tokens are opaque references
to that state; the state encodes the original query ($select, $expand, $filter, changeType, window),
so every later page and round has the shape of the first call whatever the later URL says.

Tokens are positions, not one-shot cursors: a skip token names (round, offset), so fetching the
same nextLink twice returns the same page (a client that crashed after reading a page replays it),
and the last page always hands out the same deltaLink. A deltaLink names a completed round's state
and can be fetched any number of times; each fetch returns the changes since that state. States
are evicted from a size-limited cache, and /_sim/ can expire them on demand (410
SyncStateNotFound) or make the next round replay the previous one.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from sandbox.graph.calendar import end_utc, instances, render_event, start_utc, window
from sandbox.graph.clock import iso, parse_iso
from sandbox.graph.contacts import render_contact
from sandbox.graph.errors import GraphError
from sandbox.graph.items import View, view_of
from sandbox.graph.mail import render_message
from sandbox.graph.model import Item, User
from sandbox.graph.odata import graph_json, parse_expand, parse_select, q
from sandbox.graph.odata_filter import parse_filter
from sandbox.graph.router import Router

DEFAULT_PAGE = 10
MAX_STATES = 20_000
MAX_FILTERED = 5_000  # a $filter=receivedDateTime ge|gt round returns at most this many messages
ODATA_TYPES = {"message": "#microsoft.graph.message", "contact": "#microsoft.graph.contact",
               "event": "#microsoft.graph.event"}


@dataclass(frozen=True)
class DeltaQuery:
    kind: str  # message | contact | event
    user: str
    folder: str | None = None
    select: tuple[str, ...] | None = None
    start: str | None = None
    end: str | None = None
    change_types: tuple[str, ...] | None = None
    expand: str | None = None  # the first call's $expand, applied to every page of every round
    received_op: str | None = None  # "ge" | "gt": message delta $filter=receivedDateTime <op> <value>
    received_since: datetime | None = None
    top: str | None = None  # carried like the rest of the query; it does not set the page size (graph.md §2)
    newest_first: bool = False  # $orderby=receivedDateTime desc, the only order message delta takes


@dataclass
class Entry:
    key: str  # uid, or uid.OCCKEY for an instance
    rest_key: str
    change_key: str


@dataclass
class SyncState:
    """What the client has seen after a completed round (behind a deltaLink)."""

    query: DeltaQuery
    known: dict[str, tuple[str, str]]  # key -> (changeKey, rest key)
    prev_known: dict[str, tuple[str, str]] | None
    gen: int
    floor: datetime | None = None  # oldest receivedDateTime kept when the 5,000 cap cut the first round


@dataclass
class Round:
    """A round in progress (behind a nextLink): the frozen list of differences and the next snapshot."""

    query: DeltaQuery
    upserts: list[Entry]
    removed: list[tuple[str, str]]  # (key, rest key)
    snapshot: dict[str, tuple[str, str]]
    previous: dict[str, tuple[str, str]]
    gen: int
    floor: datetime | None = None
    page_size: int | None = None  # remembered from the round's first request
    delta_sid: str | None = None  # the state behind this round's deltaLink, once its last page was served


@dataclass
class DeltaEngine:
    sim: Any
    states: OrderedDict[str, SyncState | Round] = field(default_factory=OrderedDict)
    generation: dict[str, int] = field(default_factory=dict)
    replay_next: set[str] = field(default_factory=set)

    def reset(self) -> None:
        self.states.clear()
        self.generation.clear()
        self.replay_next.clear()

    def expire(self, user_id: str | None = None) -> int:
        """Invalidate every outstanding token (of one mailbox, or all). Returns how many were live."""
        n = 0
        for key, st in list(self.states.items()):
            if user_id is None or st.query.user == user_id:
                del self.states[key]
                n += 1
        targets = [user_id] if user_id else list(self.sim.store.users)
        for u in targets:
            self.generation[u] = self.generation.get(u, 0) + 1
        return n

    def _put(self, value: SyncState | Round) -> str:
        sid = secrets.token_urlsafe(18)
        self.states[sid] = value
        while len(self.states) > MAX_STATES:
            self.states.popitem(last=False)
        return sid

    # ---- snapshots -------------------------------------------------------------------------

    def _current(self, query: DeltaQuery) -> tuple[list[Entry], dict[str, Item]]:
        store = self.sim.store
        user = store.users.get(query.user)
        if user is None:
            raise GraphError(404, "ErrorInvalidUser", "The mailbox no longer exists.")
        entries: list[Entry] = []
        items: dict[str, Item] = {}
        if query.kind in ("message", "contact"):
            folder = store.mailboxes[user.id].folders.get(query.folder or "")
            if folder is None:
                raise GraphError(404, "ErrorItemNotFound", "The specified folder could not be found in the store.")
            found = store.items_in(folder, query.kind)
            if query.received_op:
                found = [i for i in found if _received_ok(query, i)]
            found.sort(key=lambda i: (i.modified, i.created))
            if query.newest_first:
                found.sort(key=_received, reverse=True)
            for i in found:
                entries.append(Entry(i.uid, i.rest_id, i.change_key))
                items[i.uid] = i
            return entries, items
        assert query.start and query.end
        ws, we = parse_iso(query.start), parse_iso(query.end)
        for i in sorted(store.items_of(user, "event"), key=lambda x: x.created):
            if i.data.get("recurrence"):
                insts = instances(i, we, ws)
                if not insts:
                    continue
                entries.append(Entry(i.uid, i.rest_id, i.change_key))
                items[i.uid] = i
                for inst in insts:
                    ck = inst.exception.change_key if inst.exception else i.change_key
                    entries.append(Entry(f"{i.uid}.{inst.key}", f"{i.rest_id}.{inst.key}", ck))
            elif start_utc(i) < we and end_utc(i) > ws:
                entries.append(Entry(i.uid, i.rest_id, i.change_key))
                items[i.uid] = i
        return entries, items

    def start_round(self, query: DeltaQuery, known: dict[str, tuple[str, str]], gen: int,
                    floor: datetime | None = None) -> Round:
        entries, items = self._current(query)
        if query.received_op:
            entries, floor = _cap(entries, items, known, floor)
        snapshot = {e.key: (e.change_key, e.rest_key) for e in entries}
        upserts = [e for e in entries if known.get(e.key, ("",))[0] != e.change_key]
        removed = []
        store = self.sim.store
        for key, (_, rest) in known.items():
            if key in snapshot:
                continue
            uid, _, occ = key.partition(".")
            master = store.items.get(uid)
            if occ and master is not None and occ in master.cancelled:
                continue  # a deleted occurrence leaves no trace: clients read cancelledOccurrences
            removed.append((key, rest))
        if query.change_types:
            ct = set(query.change_types)
            if "deleted" not in ct:
                removed = []
            upserts = [e for e in upserts if ("created" in ct and e.key not in known)
                       or ("updated" in ct and e.key in known)]
        return Round(query, upserts, removed, snapshot, known, gen, floor)

    # ---- pages -----------------------------------------------------------------------------

    def _render(self, rnd: Round, key: str, view: View) -> dict[str, Any] | None:
        store = self.sim.store
        uid, _, occ = key.partition(".")
        item = store.items.get(uid)
        if item is None:
            return None
        q_ = rnd.query
        if q_.kind == "message":
            if item.folder_id != q_.folder:
                return None
            return render_message(store, item, view)
        if q_.kind == "contact":
            if item.folder_id != q_.folder:
                return None
            return render_contact(item, view)
        if not occ:
            return render_event(item, view)
        assert q_.start and q_.end
        for inst in instances(item, parse_iso(q_.end), parse_iso(q_.start)):
            if inst.key == occ:
                return render_event(item, view, inst=inst, sparse=True)
        return None

    def page(self, request: web.Request, rnd_id: str, rnd: Round, pos: int) -> web.Response:
        """The page of ``rnd`` starting at ``pos``: the same request gives the same page (and the same links)."""
        prefer = request["prefer"]
        if prefer.maxpagesize:
            rnd.page_size = prefer.maxpagesize
        size = rnd.page_size or DEFAULT_PAGE
        base_view = view_of(request, allow_select=False)
        view = View(immutable=base_view.immutable, tz=base_view.tz, select=rnd.query.select,
                    expand=parse_expand(rnd.query.expand), graph_base=base_view.graph_base,
                    body_type=base_view.body_type, allow_unsafe_html=base_view.allow_unsafe_html)
        otype = ODATA_TYPES[rnd.query.kind]
        values: list[dict[str, Any]] = []
        total = len(rnd.removed) + len(rnd.upserts)
        end = min(total, pos + size)
        for i in range(pos, end):
            if i < len(rnd.removed):
                key, rest = rnd.removed[i]
                values.append({"@odata.type": otype, "id": key if view.immutable else rest,
                               "@removed": {"reason": "deleted"}})
            else:
                e = rnd.upserts[i - len(rnd.removed)]
                obj = self._render(rnd, e.key, view)
                if obj is None:
                    values.append({"@odata.type": otype, "id": e.key if view.immutable else e.rest_key,
                                   "@removed": {"reason": "deleted"}})
                else:
                    values.append(obj)
        body: dict[str, Any] = {"@odata.context": f"{request['graph_base']}/$metadata#Collection({rnd.query.kind})"}
        link_base = request["public_url"]
        if end < total:
            body["@odata.nextLink"] = str(link_base.with_query({"$skiptoken": _token(rnd_id, rnd.gen, end)}))
        else:
            if rnd.delta_sid is None or rnd.delta_sid not in self.states:
                rnd.delta_sid = self._put(SyncState(rnd.query, rnd.snapshot, rnd.previous, rnd.gen, rnd.floor))
            body["@odata.deltaLink"] = str(link_base.with_query({"$deltatoken": _token(rnd.delta_sid, rnd.gen)}))
        body["value"] = values
        return graph_json(request, body)

    async def handle(self, request: web.Request, query: DeltaQuery) -> web.Response:
        """Serve one delta request: a first call (query), a nextLink or a deltaLink."""
        gen = self.generation.get(query.user, 0)
        skip, dtok = q(request, "skiptoken"), q(request, "deltatoken")
        if skip or dtok:
            sid, tgen, pos = _untoken(skip or dtok or "")
            state = self.states.get(sid)
            if tgen != gen or state is None or state.query.user != query.user:
                raise GraphError(410, "SyncStateNotFound",
                                 f"The sync state generation is not found; generation={tgen};[highest={gen}].")
            if skip:
                if not isinstance(state, Round):
                    raise GraphError(400, "SyncStateInvalid", "The skip token is not valid.")
                return self.page(request, sid, state, pos)
            if not isinstance(state, SyncState):
                raise GraphError(400, "SyncStateInvalid", "The delta token is not valid.")
            known = state.known
            if query.user in self.replay_next:
                self.replay_next.discard(query.user)
                known = state.prev_known or {}
            rnd = self.start_round(state.query, known, gen, state.floor)
        else:
            rnd = self.start_round(query, {}, gen)
        rid = self._put(rnd)
        return self.page(request, rid, rnd, 0)


def _token(sid: str, gen: int, pos: int = 0) -> str:
    """Deterministic: the same state and position always give the same token text."""
    raw = json.dumps({"s": sid, "g": gen, "p": pos}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _untoken(token: str) -> tuple[str, int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        pos = int(data.get("p", 0))
        if pos < 0:
            raise ValueError(pos)
        return str(data["s"]), int(data["g"]), pos
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphError(400, "SyncStateInvalid", "The delta or skip token is malformed.") from exc


def _received(item: Item) -> datetime:
    raw = item.data.get("receivedDateTime")
    return parse_iso(raw) if isinstance(raw, str) else item.created


def _received_ok(query: DeltaQuery, item: Item) -> bool:
    assert query.received_since is not None
    r = _received(item)
    return r >= query.received_since if query.received_op == "ge" else r > query.received_since


def _cap(entries: list[Entry], items: dict[str, Item], known: dict[str, tuple[str, str]],
         floor: datetime | None) -> tuple[list[Entry], datetime | None]:
    """A filtered message round covers at most 5,000 messages: the most recently received ones.

    The cut made by the first round is kept (``floor``) so later rounds neither report the messages
    beyond it as new nor the known ones as removed when newer mail arrives.
    """
    if floor is not None:
        return [e for e in entries if e.key in known or _received(items[e.key]) >= floor], floor
    if known or len(entries) <= MAX_FILTERED:
        return entries, floor
    newest = sorted(entries, key=lambda e: _received(items[e.key]), reverse=True)[:MAX_FILTERED]
    keep = {e.key for e in newest}
    return [e for e in entries if e.key in keep], _received(items[newest[-1].key])


_FILTER_UNSUPPORTED = ("The '$filter' parameter value is not supported for 'Messages' resource; "
                       "only a value of 'receivedDateTime ge value' is supported.")


def _received_filter(text: str | None) -> tuple[str | None, datetime | None]:
    """Message delta takes only ``receivedDateTime ge|gt {DateTimeOffset}`` (graph.md §2); anything else is
    the 400 Graph returns (msgraph-sdk-dotnet#1512, microsoft-graph-docs#18636)."""
    if not text:
        return None, None
    try:
        node = parse_filter(text)
    except GraphError as exc:
        raise GraphError(400, "ErrorInvalidUrlQuery", _FILTER_UNSUPPORTED) from exc
    if (len(node) == 4 and node[0] == "cmp" and node[1] in ("ge", "gt") and node[2][0] == "path"
            and str(node[2][1]).lower() == "receiveddatetime" and node[3][0] == "lit"
            and isinstance(node[3][1], datetime)):
        return str(node[1]), node[3][1]
    raise GraphError(400, "ErrorInvalidUrlQuery", _FILTER_UNSUPPORTED)


def _sim(request: web.Request) -> Any:
    return request.app["sim"]


def _user(request: web.Request, p: dict[str, str]) -> User:
    return _sim(request).store.users[p["user"]]


async def message_delta(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    folder = sim.store.folder(user, "mail", p["folder"])
    if q(request, "skiptoken") or q(request, "deltatoken"):
        # the token carries the original query; options on a later URL are ignored, as in Graph
        return await sim.delta.handle(request, DeltaQuery("message", user.id, folder.id))
    if q(request, "search"):
        raise GraphError(400, "ErrorInvalidUrlQuery", "The query parameter '$search' is not supported with delta.")
    ct = q(request, "changeType")
    sel = parse_select(request)
    expand = q(request, "expand")
    parse_expand(expand)  # a bad $expand fails the first call, not a later page
    op, since = _received_filter(q(request, "filter"))
    order = q(request, "orderby")
    if order is not None and " ".join(order.split()).lower() != "receiveddatetime desc":
        # message-delta.md: "$orderby ... only receivedDateTime desc"
        raise GraphError(400, "ErrorInvalidUrlQuery", "The '$orderby' parameter value is not supported for "
                                                       "delta; only 'receivedDateTime desc' is supported.")
    query = DeltaQuery("message", user.id, folder.id, tuple(sel) if sel else None,
                       change_types=tuple(x.strip() for x in ct.split(",")) if ct else None,
                       expand=expand or None, received_op=op, received_since=since, top=q(request, "top"),
                       newest_first=order is not None)
    return await sim.delta.handle(request, query)


async def contact_delta(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    folder = sim.store.folder(user, "contacts", p["folder"]) if "folder" in p else \
        sim.store.default_folder(user, "contacts")
    if q(request, "skiptoken") or q(request, "deltatoken"):
        return await sim.delta.handle(request, DeltaQuery("contact", user.id, folder.id))
    # contact-delta (v1.0) documents $select only: the simulator refuses the rest instead of ignoring it
    for option in ("expand", "filter", "orderby", "search"):
        if q(request, option) is not None:
            raise GraphError(400, "ErrorInvalidUrlQuery",
                             f"The query parameter '${option}' is not supported with contact delta.")
    sel = parse_select(request)
    return await sim.delta.handle(request, DeltaQuery("contact", user.id, folder.id, tuple(sel) if sel else None,
                                                      top=q(request, "top")))


async def calendar_view_delta(request: web.Request, p: dict[str, str]) -> web.Response:
    sim = _sim(request)
    user = _user(request, p)
    # event-delta (v1.0) documents no support for these; the simulator rejects them instead of ignoring them
    for option in ("select", "expand", "filter", "orderby", "search"):
        if q(request, option) is not None:
            raise GraphError(400, "ErrorInvalidUrlQuery",
                             f"The query parameter '${option}' is not supported with calendarView delta.")
    if q(request, "skiptoken") or q(request, "deltatoken"):
        return await sim.delta.handle(request, DeltaQuery("event", user.id))
    ws, we = window(request)
    return await sim.delta.handle(request, DeltaQuery("event", user.id, start=iso(ws), end=iso(we)))


def register_mail(router: Router) -> None:
    router.add("GET", "users/{user}/mailFolders/{folder}/messages/delta", message_delta, "mail")


def register_contacts(router: Router) -> None:
    router.add("GET", "users/{user}/contacts/delta", contact_delta, "contacts")
    router.add("GET", "users/{user}/contactFolders/{folder}/contacts/delta", contact_delta, "contacts")


def register_calendar(router: Router) -> None:
    router.add("GET", "users/{user}/calendarView/delta", calendar_view_delta, "calendar")
    router.add("GET", "users/{user}/calendar/calendarView/delta", calendar_view_delta, "calendar")
