"""Alembic migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from hub.db import all_metadata, make_engine
from hub.migrate import upgrade


def test_upgrade_matches_the_tables_in_code(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # idempotent: a second start finds nothing to do
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), all_metadata())
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"message", "domain_event", "canonical_resources", "mapping_version"} <= tables
