"""The write path's SQL, built once at import.

Building ``select(...).where(...)`` per call cost more than running it: SQLAlchemy coerces
every clause and regenerates the cache key each time, while a statement object built once
memoizes its cache key and goes straight to the compiled-SQL cache.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, insert, select, update

from canonical.tables import identifiers, provenance, resource_versions, resources, search_index

# A no-op UPDATE that makes pysqlite BEGIN and SQLite take its write lock.
SQLITE_WRITE_LOCK = update(resources).where(resources.c.pk == -1).values(version_id=0)

# Candidate identifiers by value; the caller keeps the exact (system, value) pairs.
IDENTIFIERS_BY_VALUE = select(
    identifiers.c.resource_pk, identifiers.c.system, identifiers.c.value
).where(
    identifiers.c.resource_type == bindparam("b_type"),
    identifiers.c.value.in_(bindparam("b_values", expanding=True)),
)

IDENTIFIERS_OF = select(identifiers.c.system, identifiers.c.value).where(
    identifiers.c.resource_pk == bindparam("b_pk")
)

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

INSERT_RESOURCE = insert(resources).returning(resources.c.pk)
UPDATE_RESOURCE = update(resources).where(
    resources.c.pk == bindparam("b_pk"), resources.c.version_id == bindparam("b_version")
)
UPDATE_MESSAGE_SEQ = (
    update(resources)
    .where(resources.c.pk == bindparam("b_pk"))
    .values(message_seq=bindparam("b_seq"))
)
DELETE_SEARCH_ENTRIES = delete(search_index).where(search_index.c.resource_pk == bindparam("b_pk"))

INSERT_IDENTIFIERS = insert(identifiers)
INSERT_SEARCH_ENTRIES = insert(search_index)
INSERT_VERSIONS = insert(resource_versions)
INSERT_PROVENANCE = insert(provenance)

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
