"""Which mail folders an email round reads (SYNC_MAIL_FOLDERS), including mail filed by server rules.

Server-side rules file mail straight into folders other than the Inbox (most often folders under
it: "Customers/Fabrikam"), and a sync that reads only the Inbox never sees it. So:

- `inbox_tree` (default): Inbox, every folder under it (at any depth) and Sent Items;
- `all`: every mail folder of the mailbox except those that never hold correspondence to sync
  (Deleted Items, Junk Email, Drafts, Outbox, Conversation History, Sync Issues and their subtrees);
- `inbox`: Inbox and Sent Items only (what Pega's own connector reads).

The folder list is discovered with documented calls (`mailFolders/{id}/childFolders`, well-known
names for the exclusions) and kept per mailbox for DISCOVERY_TTL in the instance, so a round costs
no extra request most of the time; a folder created by a new rule is picked up within that time.
Push covers every folder at once: the email subscription watches `/users/{id}/messages` (all of the
mailbox) unless the mode is `inbox`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

INBOX = "inbox"
SENT = "sentitems"
EXCLUDED = ("deleteditems", "junkemail", "drafts", "outbox", "conversationhistory", "syncissues")
DISCOVERY_TTL = 300.0
MAX_FOLDERS = 200  # a bound on what one round reads; deeper/wider trees keep the first ones found

_cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}

Lister = Callable[[str], Awaitable[list[dict[str, Any]]]]  # folder (id or well-known name) -> its child folders
Resolver = Callable[[str], Awaitable[str]]  # well-known name -> folder id ("" if none)


async def _tree(root: str, children: Lister, skip: set[str]) -> list[str]:
    out: list[str] = []
    todo = [root]
    while todo and len(out) < MAX_FOLDERS:
        for f in await children(todo.pop(0)):
            fid = str(f.get("id") or "")
            if not fid or fid in skip:
                continue
            out.append(fid)
            if int(f.get("childFolderCount") or 0) > 0:
                todo.append(fid)
    return out[:MAX_FOLDERS]


async def mail_folders(mailbox: str, mode: str, *, children: Lister, top_level: Callable[[], Awaitable[list[dict[str, Any]]]],
                       resolve: Resolver) -> tuple[str, ...]:
    """The folders (cursor keys: well-known names for Inbox and Sent Items, ids for the rest)."""
    if mode == "inbox":
        return (INBOX, SENT)
    key = (mailbox.lower(), mode)
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < DISCOVERY_TTL:
        return hit[1]
    if mode == "all":
        skip = {i for i in [await resolve(name) for name in (*EXCLUDED, INBOX, SENT)] if i}
        inbox_id, sent_id = await resolve(INBOX), await resolve(SENT)
        found: list[str] = []
        for f in await top_level():
            fid = str(f.get("id") or "")
            if not fid or fid in skip:
                continue
            found.append(fid)
            if int(f.get("childFolderCount") or 0) > 0:
                found += await _tree(fid, children, skip)
        found += await _tree(INBOX, children, skip)
        found += await _tree(SENT, children, skip)
        folders = (INBOX, SENT, *dict.fromkeys(f for f in found if f not in (inbox_id, sent_id)))
    else:
        folders = (INBOX, SENT, *await _tree(INBOX, children, set()))
    _cache[key] = (time.monotonic(), folders)
    return folders


def forget(mailbox: str) -> None:
    """A folder vanished (its delta answered 404): discover again on the next round."""
    for k in [k for k in _cache if k[0] == mailbox.lower()]:
        _cache.pop(k, None)
