"""Engines and sessions for every process; SQLite file by default, PostgreSQL in production."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from hub.settings import Settings

log = logging.getLogger(__name__)


def all_metadata() -> list[MetaData]:
    """Every table Harmony owns, for migrations and for test schemas."""
    from canonical.tables import metadata as canonical_metadata
    from hub.audit import audit_events  # noqa: F401  (on the users' metadata)
    from hub.notifications.tables import metadata as notifications_metadata
    from hub.tables import metadata as hub_metadata
    from hub.users import metadata as users_metadata
    from hub.waitlist_tables import waitlist_entries  # noqa: F401  (on the users' metadata)
    from mappings.tables import metadata as mappings_metadata
    from scheduling.tables import metadata as scheduling_metadata

    return [
        canonical_metadata,
        mappings_metadata,
        hub_metadata,
        users_metadata,
        scheduling_metadata,
        notifications_metadata,
    ]


def _sqlite_tuner(synchronous: str) -> Any:
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"SQLite synchronous must be FULL or NORMAL, not {synchronous!r}")

    def tune(dbapi_connection: Any, _record: Any) -> None:
        _tune_sqlite(dbapi_connection, synchronous)

    return tune


def _tune_sqlite(dbapi_connection: Any, synchronous: str) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs; we issue BEGIN ourselves (below).
    dbapi_connection.isolation_level = None
    # WAL lets readers run beside the single writer. FULL fsyncs every commit, so an ACKed
    # message survives a power cut; NORMAL survives a process crash only, and is faster.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA busy_timeout=30000")
    # Checkpoints fsync; left to the committing thread they stall an ACK now and then (p99
    # 12 ms against 4.5 ms, bench_mllp). The hub checkpoints in the background instead
    # (SqliteCheckpointer); this limit only matters for processes that run none.
    cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


AUTOCHECKPOINT_PAGES = 20_000


class WriteGate:
    """One writer at a time on a SQLite file, with MLLP ingest first in line.

    SQLite allows one writer; left to its busy handler, a waiting writer sleeps in steps of
    up to 100 ms, and worker transactions starved ingest down to 88 msg/s with a 1.5 s p99.
    Inside one process this gate hands the file over at once. A worker (not urgent) writes
    only when ingest has been quiet for ``quiet`` seconds, or after waiting ``patience``
    seconds, so ACKs come first and the backlog still drains. PostgreSQL needs no gate.
    """

    def __init__(self, quiet: float = 0.005, patience: float = 0.25) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._urgent = 0
        self._last_urgent = 0.0
        self._quiet = quiet
        self._patience = patience

    @contextmanager
    def hold(self, *, urgent: bool) -> Iterator[None]:
        with self._cond:
            if urgent:
                self._urgent += 1
                while self._busy:
                    self._cond.wait()
                self._urgent -= 1
            else:
                deadline = time.monotonic() + self._patience
                while True:
                    now = time.monotonic()
                    ingest_quiet = not self._urgent and now - self._last_urgent >= self._quiet
                    if not self._busy and (ingest_quiet or now >= deadline):
                        break
                    self._cond.wait(max(0.001, min(self._quiet, deadline - now)))
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                if urgent:
                    self._last_urgent = time.monotonic()
                self._cond.notify_all()


_GATES: dict[str, WriteGate] = {}
_GATES_LOCK = threading.Lock()


@contextmanager
def write_turn(engine: Engine, *, urgent: bool = False) -> Iterator[None]:
    """Wait for this process's turn to write (SQLite only; a no-op elsewhere)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    key = str(engine.url.database)
    with _GATES_LOCK:
        gate = _GATES.setdefault(key, WriteGate())
    with gate.hold(urgent=urgent):
        yield


class SqliteCheckpointer:
    """Copies the WAL into the database file every second, off the commit path."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harmony-checkpoint", daemon=True)

    def start(self) -> SqliteCheckpointer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                raw = self._engine.raw_connection()
                try:
                    raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
                finally:
                    raw.close()
            except Exception as exc:  # a busy database is fine: try again next time
                log.debug("WAL checkpoint skipped: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def _begin_immediate(conn: Any) -> None:
    # Take the write lock up front: a deferred transaction that reads and then writes fails
    # at once with "database is locked" when another writer got there first, while an
    # IMMEDIATE one simply waits its turn (busy_timeout).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def json_dumps(value: Any) -> str:
    """JSON column text by orjson: the stdlib encoder was a tenth of a sync's time.

    Values orjson refuses (integers beyond 64 bits, say) fall back to the stdlib, so nothing
    that stored before fails now; either way the value reads back the same.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, huge integers: text the stdlib wrote or accepts
        return json.loads(text)


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", **kwargs: Any) -> Engine:
    """Create an engine with the per-dialect settings Harmony relies on."""
    kwargs.setdefault("json_serializer", json_dumps)
    kwargs.setdefault("json_deserializer", json_loads)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_tuner(sqlite_synchronous))
        event.listen(engine, "begin", _begin_immediate)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


def engine_for(settings: Settings) -> Engine:
    """The engine a process of the hub uses, with its configured durability."""
    return make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)


def create_all(engine: Engine) -> None:
    """Create tables directly (tests); deployments use ``harmony db upgrade``."""
    for metadata in all_metadata():
        metadata.create_all(engine)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
