"""Finding stored records by identifier, for one record or a whole bundle at once.

A bundle's records are looked up (and on PostgreSQL locked) with one statement per resource
type before any of them is written; the Batch answers each record from that, until a write of
the same bundle touches the record, which is then looked up again after a flush.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row

from canonical import statements
from canonical.errors import IdentifierConflict
from canonical.pending import LOOKUP_CHUNK, chunks
from canonical.records import SourceRecord

Key = tuple[str, str]
TypedKey = tuple[str, str, str]


@dataclass(slots=True)
class Batch:
    """What one lookup found for a whole bundle, and what its writes have touched since."""

    pks: dict[TypedKey, int] = field(default_factory=dict)
    rows: dict[int, Row[Any]] = field(default_factory=dict)
    touched_keys: set[TypedKey] = field(default_factory=set)
    touched_pks: set[int] = field(default_factory=set)

    def find(self, rtype: str, keys: list[Key]) -> tuple[Row[Any] | None, list[Key]] | None:
        """As the repository's ``_find_row`` answers; None when the lookup may be out of date."""
        typed = [(rtype, system, value) for system, value in dict.fromkeys(keys)]
        if any(key in self.touched_keys for key in typed):
            return None
        matches = [(self.pks[key], key[1], key[2]) for key in typed if key in self.pks]
        pk = one_pk(rtype, matches)
        if pk is None:
            return None, []
        if pk in self.touched_pks:
            return None
        return self.rows[pk], [(system, value) for _, system, value in matches]

    def touch(self, rtype: str, keys: Iterable[Key], pk: int | None) -> None:
        self.touched_keys.update((rtype, system, value) for system, value in keys)
        if pk is not None:
            self.touched_pks.add(pk)


def lookup(conn: Connection, records: list[SourceRecord]) -> Batch:
    """The stored records every identifier of ``records`` names, read (and locked) at once."""
    wanted: dict[str, set[Key]] = {}
    for record in records:
        wanted.setdefault(record.resource_type, set()).update(record_keys(record))
    batch = Batch()
    for rtype, keys in wanted.items():
        for m in _rows_by_keys(conn, rtype, sorted(keys)):
            if (m.matched_system, m.matched_value) in keys:
                batch.pks[(rtype, m.matched_system, m.matched_value)] = m.matched_pk
                batch.rows[m.matched_pk] = m
    return batch


def _rows_by_keys(conn: Connection, rtype: str, keys: list[Key]) -> Sequence[Row[Any]]:
    """Stored records by identifier, joined to the matched identifier (see statements)."""
    if conn.dialect.name != "sqlite":
        params = {
            "b_type": rtype,
            "b_systems": [system for system, _ in keys],
            "b_values": [value for _, value in keys],
        }
        return conn.execute(statements.ROWS_BY_IDENTIFIERS_LOCKED, params).all()
    values = sorted({value for _, value in keys})
    return [
        row
        for chunk in chunks(values, LOOKUP_CHUNK)
        for row in conn.execute(
            statements.ROWS_BY_IDENTIFIER_VALUES, {"b_type": rtype, "b_values": chunk}
        ).all()
    ]


def record_keys(record: SourceRecord) -> list[Key]:
    """Every identifier that may name the stored record: the resource's and the source's."""
    keys = identifier_keys(record.resource.get("identifier"))
    return keys + [(i.system, i.value) for i in record.identifiers]


def identifier_keys(items: Iterable[dict[str, Any]] | None) -> list[Key]:
    return [(i.get("system") or "", i["value"]) for i in items or [] if i.get("value")]


def one_pk(rtype: str, matches: list[tuple[int, str, str]]) -> int | None:
    """The one record (pk) the matched identifiers name; IdentifierConflict if several."""
    pks = {pk for pk, _, _ in matches}
    if len(pks) > 1:
        named = ", ".join(sorted(f"{system}|{value}" for _, system, value in matches))
        raise IdentifierConflict(
            f"identifiers {named} name {len(pks)} different {rtype} records; merge them first"
        )
    return pks.pop() if pks else None
