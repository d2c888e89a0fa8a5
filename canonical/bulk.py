"""Many rows into one table in one driver call, for the write path's big inserts.

SQLAlchemy's executemany processes every row's parameters in Python (compiled parameters,
type processors), which cost more than the database work for a 500-record bundle, and on
PostgreSQL psycopg's executemany pipeline still exchanged a message per row. Here SQLite gets
the DBAPI executemany of plain tuples, and PostgreSQL one ``INSERT ... SELECT FROM unnest()``
with an array per column. Rows stay identical to SQLAlchemy's: JSON goes in as text made by
the engine's own serializer (``json_serializer``), and datetimes through the dialect's own bind
processor (SQLite stores text). ``Connection.exec_driver_sql`` keeps the transaction, the
events and the wrapping of driver errors (IntegrityError) as they are.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, Table

Row = Mapping[str, Any]


def json_serializer(dialect: Dialect) -> Callable[[Any], str]:
    """What turns a value into the text a JSON column of this engine stores."""
    serializer: Callable[[Any], str] = getattr(dialect, "_json_serializer", None) or json.dumps
    return serializer


@lru_cache(maxsize=64)
def columns_of(table: Table) -> tuple[str, ...]:
    """Every column but the generated primary key."""
    return tuple(c.name for c in table.c if not (c.primary_key and c.autoincrement))


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Row]
) -> None:
    """INSERT ``rows``: dicts holding at least ``columns``, JSON values already serialized."""
    if not rows:
        return
    names = tuple(columns)
    get = itemgetter(*names)
    values = [get(row) for row in rows] if len(names) > 1 else [(get(row),) for row in rows]
    if conn.dialect.name == "sqlite":
        params = _sqlite_values(_sqlite_processors(table, names, conn.dialect), values)
        conn.exec_driver_sql(_sqlite_insert(table, names, conn.dialect), params)
        return
    arrays = tuple(list(column) for column in zip(*values, strict=True))
    conn.exec_driver_sql(_unnest_insert(table, names, conn.dialect), arrays)


@lru_cache(maxsize=64)
def _sqlite_insert(table: Table, names: tuple[str, ...], dialect: Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    marks = ", ".join("?" for _ in names)
    return f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) VALUES ({marks})"


Values = list[tuple[Any, ...]]


def _sqlite_values(processors: tuple[Any, ...], values: Values) -> Values:
    """Apply the dialect's bind processors (datetimes to text), JSON columns excepted.

    A flush repeats the same datetime in many rows (received_at, created_at): each distinct
    value is converted once.
    """
    converting: list[tuple[int, Any, dict[Any, Any]]] = [
        (i, p, {}) for i, p in enumerate(processors) if p is not None
    ]
    if not converting:
        return values
    out = []
    for row in values:
        changed = list(row)
        for i, process, done in converting:
            value = changed[i]
            if value is not None:
                text = done.get(value)
                if text is None:
                    text = done[value] = process(value)
                changed[i] = text
        out.append(tuple(changed))
    return out


@lru_cache(maxsize=64)
def _sqlite_processors(table: Table, names: tuple[str, ...], dialect: Dialect) -> tuple[Any, ...]:
    return tuple(
        None
        if isinstance(table.c[name].type, JSON)
        else table.c[name].type._cached_bind_processor(dialect)
        for name in names
    )


@lru_cache(maxsize=64)
def _unnest_insert(table: Table, names: tuple[str, ...], dialect: Dialect) -> str:
    """One array per column (JSON ones as text, cast back per value), one query text.

    ``%b`` sends the arrays in binary: psycopg's text array dumper escapes every element with
    a regex, 16 times slower for a page of resources.
    """
    quote = dialect.identifier_preparer.quote
    arrays, picked = [], []
    for i, name in enumerate(names):
        column_type = table.c[name].type
        if isinstance(column_type, JSON):
            arrays.append("%b::TEXT[]")
            picked.append(f"v.c{i}::{column_type.compile(dialect=dialect)}")
        else:
            arrays.append(f"%b::{column_type.compile(dialect=dialect)}[]")
            picked.append(f"v.c{i}")
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    return (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) "
        f"SELECT {', '.join(picked)} FROM unnest({', '.join(arrays)}) AS v({aliases})"
    )
