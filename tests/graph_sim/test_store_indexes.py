"""Issue 16: the Graph simulator's item and user lookups go through indexes kept by every write
(create, move, delete, forget, rename) — they must give what a scan of the store gives."""

from __future__ import annotations

from sandbox.graph.clock import SimClock
from sandbox.graph.store import Store


def _scan_in(store: Store, folder_id: str) -> list[str]:
    return [i.uid for i in store.items.values() if i.folder_id == folder_id]


def test_indexes_follow_creates_moves_deletes_forgets_and_renames():
    store = Store(SimClock())
    a = store.add_user("a@contoso.example")
    b = store.add_user("b@contoso.example")
    inbox, archive = store.default_folder(a, "mail"), store.add_folder(a, "mail", "Projects X")
    made = [store.create(a, "message", inbox, {"subject": str(i)}) for i in range(6)]
    store.create(b, "message", store.default_folder(b, "mail"), {"subject": "b"})
    store.move(made[1], archive)
    store.delete(made[2])
    store.forget(made[3])
    store.move(made[1], inbox)  # back: its place follows creation order, as in the scan
    for folder in (inbox, archive):
        assert [i.uid for i in store.items_in(folder)] == _scan_in(store, folder.id)
    assert [i.uid for i in store.items_of(a, "message")] == [
        i.uid for i in store.items.values() if i.owner == a.id and i.kind == "message"]
    store.rename_user(a, "A2@contoso.example")
    assert store.find_user("a2@contoso.example") is a and store.find_user("a@contoso.example") is None
    assert store.find_user(a.id.upper()) is a and store.find_user("nobody@contoso.example") is None
