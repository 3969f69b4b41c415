"""The Exchange ⇄ Pega field mapping shared by both sync directions.

- :mod:`fields` — the mapped field set per kind, normalization, snapshot form, content hash;
- :mod:`exchange` — Graph records → mapped fields;
- :mod:`pega` — mapped fields ⇄ shared.pega neutral records (property names come from the
  Pega mapping configuration, never from here);
- :mod:`merge` — the field-by-field three-way merge against the last synced snapshot.
"""

from shared.sync.mapping.exchange import map_contact, map_event, map_message
from shared.sync.mapping.fields import (
    BODY_HTML,
    FIELDS,
    LINK_KIND,
    META_BY,
    META_ORIGINAL_START,
    META_PEGA_DECIDED,
    META_SERIES,
    Mapped,
    content_hash,
    fields_of,
    meta_of,
    snap_value,
    snapshot,
)
from shared.sync.mapping.merge import Conflict, MergeResult, three_way, winner_by_policy
from shared.sync.mapping.pega import mapped_from_pega, photo_digest, to_pega_data

__all__ = [
    "BODY_HTML", "FIELDS", "LINK_KIND", "META_BY", "META_ORIGINAL_START", "META_PEGA_DECIDED", "META_SERIES", "Conflict", "Mapped", "MergeResult",
    "content_hash", "fields_of", "map_contact", "map_event", "map_message", "mapped_from_pega", "meta_of",
    "photo_digest", "snap_value", "snapshot", "three_way", "to_pega_data", "winner_by_policy",
]
