"""The repository's deferred writes: rows collected while records are upserted, sent at once.

No read before the next flush depends on these rows, so each table gets one bulk statement
(canonical/bulk.py) per flush instead of one per record. A new resource's pk is taken before
its INSERT (SQLite: after the highest pk, under the write lock the writer holds; PostgreSQL:
from the column's sequence), so the rows that point at it need no lookup afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, text

from canonical import bulk, statements
from canonical.tables import identifiers, provenance, resource_versions, resources, search_index

LOOKUP_CHUNK = 1000  # values per IN list, well inside every driver's bind limit

_RESOURCE_COLUMNS = ("pk", *bulk.columns_of(resources))
_MAX_PK = select(func.coalesce(func.max(resources.c.pk), 0))
_NEXT_PKS = text(
    "SELECT nextval(pg_get_serial_sequence('canonical_resources', 'pk')) "
    "FROM generate_series(1, :n)"
)


@dataclass(eq=False, slots=True)
class NewRow:
    """A resource INSERT deferred to the next flush; its ``pk`` is set by that flush."""

    values: dict[str, Any]
    pk: int | None = None


@dataclass(slots=True)
class Pending:
    """Writes waiting for the next flush.

    ``resource_pk`` of a dependent row may be a NewRow, replaced by its pk at the flush.
    """

    inserts: list[NewRow] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    seqs: dict[int, int] = field(default_factory=dict)
    cleared: list[int] = field(default_factory=list)
    identifiers: list[dict[str, Any]] = field(default_factory=list)
    unsure_identifiers: list[dict[str, Any]] = field(default_factory=list)
    """Of updated records: inserted unless the record has them already."""
    search: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    provenance: list[dict[str, Any]] = field(default_factory=list)


def flush(conn: Connection, pending: Pending) -> None:
    """Send every pending row; runs inside the SAVEPOINT of the writes that made them."""
    if pending.inserts:
        _insert_resources(conn, pending.inserts)
    seqs = [{"b_pk": pk, "b_seq": seq} for pk, seq in pending.seqs.items()]
    for statement, rows in (
        (statements.UPDATE_RESOURCE, pending.updates),
        (statements.UPDATE_MESSAGE_SEQ, seqs),
        (statements.DELETE_SEARCH_ENTRIES, [{"b_pk": pk} for pk in pending.cleared]),
    ):
        if rows:
            conn.execute(statement, rows)
    identifier_rows = pending.identifiers + _unrecorded(conn, pending.unsure_identifiers)
    for table, rows in (
        (identifiers, identifier_rows),
        (search_index, pending.search),
        (resource_versions, pending.versions),
        (provenance, pending.provenance),
    ):
        bulk.insert_rows(conn, table, bulk.columns_of(table), _with_pks(rows))


def _insert_resources(conn: Connection, rows: list[NewRow]) -> None:
    """One bulk INSERT of every new resource, with the pks taken for them first."""
    for new, pk in zip(rows, _new_pks(conn, len(rows)), strict=True):
        new.pk = new.values["pk"] = pk
    bulk.insert_rows(conn, resources, _RESOURCE_COLUMNS, [new.values for new in rows])


def _new_pks(conn: Connection, count: int) -> Iterable[int]:
    if conn.dialect.name == "sqlite":
        # The writer holds SQLite's write lock (see the repository), so no one else inserts
        # before we commit: the pks after the highest are ours, as SQLite would choose them.
        highest = int(conn.execute(_MAX_PK).scalar_one())
        return range(highest + 1, highest + 1 + count)
    return [int(pk) for (pk,) in conn.execute(_NEXT_PKS, {"n": count})]


def _unrecorded(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The identifier rows of updated records that their records do not have yet."""
    if not rows:
        return []
    pks = sorted({row["resource_pk"] for row in rows})
    existing = {
        (r.resource_pk, r.system, r.value)
        for chunk in chunks(pks, LOOKUP_CHUNK)
        for r in conn.execute(statements.IDENTIFIERS_OF_MANY, {"b_pks": chunk})
    }
    return [r for r in rows if (r["resource_pk"], r["system"], r["value"]) not in existing]


def _with_pks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with each deferred resource replaced by the pk its INSERT gave it."""
    for row in rows:
        target = row["resource_pk"]
        if type(target) is NewRow:
            row["resource_pk"] = target.pk
    return rows


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    return (items[i : i + size] for i in range(0, len(items), size))
