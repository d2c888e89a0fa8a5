"""Engines and sessions for every process; SQLite file by default, PostgreSQL in production."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def all_metadata() -> list[MetaData]:
    """Every table Harmony owns, for migrations and for test schemas."""
    from canonical.tables import metadata as canonical_metadata
    from hub.tables import metadata as hub_metadata
    from mappings.tables import metadata as mappings_metadata

    return [canonical_metadata, mappings_metadata, hub_metadata]


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs; we issue BEGIN ourselves (below).
    dbapi_connection.isolation_level = None
    # WAL lets readers run beside the single writer; NORMAL is durable across process crashes
    # (a power cut may lose the last commits, which the sender then resends un-ACKed).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(conn: Any) -> None:
    # Take the write lock up front: a deferred transaction that reads and then writes fails
    # at once with "database is locked" when another writer got there first, while an
    # IMMEDIATE one simply waits its turn (busy_timeout).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the per-dialect settings Harmony relies on."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


def create_all(engine: Engine) -> None:
    """Create tables directly (tests); deployments use ``harmony db upgrade``."""
    for metadata in all_metadata():
        metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
