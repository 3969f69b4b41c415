"""Encoding of Table storage keys.

PartitionKey/RowKey may not contain '/', '\\', '#', '?' or control characters, but Graph ids
(base64 with '/' and '+') and Pega ids (with spaces) are what we key by. Percent-style escaping
keeps keys readable in Storage Explorer, is reversible, and preserves equality (case-sensitive,
as immutable ids are).
"""

from __future__ import annotations

_FORBIDDEN = {"/", "\\", "#", "?", "%"}


def encode_key(value: str) -> str:
    if not value:
        raise ValueError("a table key part must not be empty")
    out = []
    for ch in value:
        if ch in _FORBIDDEN or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"%{ord(ch):02X}" if ord(ch) < 0x100 else f"%u{ord(ch):04X}")
        else:
            out.append(ch)
    encoded = "".join(out)
    if len(encoded.encode("utf-8")) > 1024:
        raise ValueError("a table key must be at most 1 KiB")
    return encoded


def decode_key(value: str) -> str:
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "%":
            if value[i + 1] == "u":
                out.append(chr(int(value[i + 2 : i + 6], 16)))
                i += 6
            else:
                out.append(chr(int(value[i + 1 : i + 3], 16)))
                i += 3
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def odata_quote(value: str) -> str:
    """Quote a string literal for an OData $filter (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"
