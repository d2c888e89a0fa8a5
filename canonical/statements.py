"""The write path's SQL, built once at import.

Building ``select(...).where(...)`` per call cost more than running it: SQLAlchemy coerces
every clause and regenerates the cache key each time, while a statement object built once
memoizes its cache key and goes straight to the compiled-SQL cache.
"""

from __future__ import annotations

from sqlalchemy import String, bindparam, delete, func, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.selectable import TableValuedAlias

from canonical.tables import identifiers, resources, search_index

# A no-op UPDATE that makes pysqlite BEGIN and SQLite take its write lock.
SQLITE_WRITE_LOCK = update(resources).where(resources.c.pk == -1).values(version_id=0)

# Candidate identifiers by value; the caller keeps the exact (system, value) pairs.
IDENTIFIERS_BY_VALUE = select(
    identifiers.c.resource_pk, identifiers.c.system, identifiers.c.value
).where(
    identifiers.c.resource_type == bindparam("b_type"),
    identifiers.c.value.in_(bindparam("b_values", expanding=True)),
)

# Every identifier the records a flush updates already have.
IDENTIFIERS_OF_MANY = select(
    identifiers.c.resource_pk, identifiers.c.system, identifiers.c.value
).where(identifiers.c.resource_pk.in_(bindparam("b_pks", expanding=True)))

ROW_BY_PK_LOCKED = select(resources).where(resources.c.pk == bindparam("b_pk")).with_for_update()

# The same query find_by_identifier builds with both a system and a type.
REFERENCE_TARGET = (
    select(resources.c.resource_type, resources.c.id)
    .join(identifiers, identifiers.c.resource_pk == resources.c.pk)
    .where(
        identifiers.c.value == bindparam("b_value"),
        identifiers.c.system == bindparam("b_system"),
        identifiers.c.resource_type == bindparam("b_type"),
    )
    .distinct()
)

UPDATE_RESOURCE = update(resources).where(
    resources.c.pk == bindparam("b_pk"), resources.c.version_id == bindparam("b_version")
)
UPDATE_MESSAGE_SEQ = (
    update(resources)
    .where(resources.c.pk == bindparam("b_pk"))
    .values(message_seq=bindparam("b_seq"))
)
DELETE_SEARCH_ENTRIES = delete(search_index).where(search_index.c.resource_pk == bindparam("b_pk"))

# SQLite takes no row locks, so it finds and reads the record in one statement.
ROWS_BY_IDENTIFIER_VALUE = (
    select(
        identifiers.c.resource_pk.label("matched_pk"),
        identifiers.c.system.label("matched_system"),
        identifiers.c.value.label("matched_value"),
        resources,
    )
    .join(resources, resources.c.pk == identifiers.c.resource_pk)
    .where(
        identifiers.c.resource_type == bindparam("b_type"),
        identifiers.c.value.in_(bindparam("b_values", expanding=True)),
    )
)

# A whole bundle's lookups, one statement each. PostgreSQL gets arrays through unnest(): one
# query text whatever their length, so psycopg parses it once and the server caches one plan.
# Each array element probes the unique index in a LATERAL ... LIMIT 1 (at most one row
# matches anyway), so the plan stays a nested loop of index probes even when it is generic
# and the statistics are stale (a fresh table that "has 4 rows"): a 500-value IN list or a
# join there became a scan of every identifier per value, quadratic over an initial sync.
# The rows are locked in pk order so that workers locking overlapping bundles do not deadlock.
ROWS_BY_IDENTIFIER_VALUES = ROWS_BY_IDENTIFIER_VALUE.order_by(resources.c.pk)


def _unnest(**arrays: str) -> TableValuedAlias:
    params = [bindparam(name, type_=ARRAY(String)) for name in arrays.values()]
    return func.unnest(*params).table_valued(*arrays).render_derived(name="wanted")


_WANTED_KEYS = _unnest(system="b_systems", value="b_values")
_FOUND_KEY = (
    select(identifiers.c.resource_pk, identifiers.c.system, identifiers.c.value)
    .where(
        identifiers.c.resource_type == bindparam("b_type"),
        identifiers.c.system == _WANTED_KEYS.c.system,
        identifiers.c.value == _WANTED_KEYS.c.value,
    )
    .limit(1)
    .lateral("found")
)
ROWS_BY_IDENTIFIERS_LOCKED = (
    select(
        _FOUND_KEY.c.resource_pk.label("matched_pk"),
        _FOUND_KEY.c.system.label("matched_system"),
        _FOUND_KEY.c.value.label("matched_value"),
        resources,
    )
    .select_from(_WANTED_KEYS)
    .join(_FOUND_KEY, true())
    .join(resources, resources.c.pk == _FOUND_KEY.c.resource_pk)
    .order_by(resources.c.pk)
    .with_for_update(of=resources)
)
