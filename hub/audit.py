"""The audit log: who read or wrote patient or schedule data, when, what and from where.

Requests must not wait for it, so events go into a buffer that a background thread writes
in batches (every ``interval`` seconds, or sooner when it fills). ``close()`` writes what
is left; it runs on the app's shutdown and, as a last resort, when the process exits
normally, so a normal stop loses nothing. A failing database keeps events in the buffer
(up to ``max_buffer``) and retries on the next round.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import threading
import weakref
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    func,
    insert,
    select,
)
from sqlalchemy.exc import SQLAlchemyError

from canonical.tables import AUTO_ID
from hub.db import write_turn
from hub.message_store import as_utc
from hub.users import metadata

log = logging.getLogger(__name__)

READ, WRITE = "read", "write"

audit_events = Table(
    "audit_event",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("subject", String(255), nullable=True, comment="None: no acceptable credentials"),
    Column("roles", JSON, nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(2048), nullable=False, comment="with the query string"),
    Column("resource_type", String(64), nullable=True),
    Column("resource_id", String(128), nullable=True),
    Column("action", String(8), nullable=False, comment="read | write"),
    Column("status", Integer, nullable=False),
    Column("client", String(64), nullable=True, comment="caller's address"),
    Column("via", String(64), nullable=True, comment="trusted proxy that forwarded it"),
    Index("ix_audit_event_at", "at"),
    Index("ix_audit_event_subject_at", "subject", "at"),
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    at: datetime
    subject: str | None
    roles: list[str]
    method: str
    path: str
    resource_type: str | None
    resource_id: str | None
    action: str
    status: int
    client: str | None
    via: str | None = None


def action_for(method: str) -> str:
    return READ if method.upper() in ("GET", "HEAD", "OPTIONS") else WRITE


class TrustedProxies:
    """Decides the caller's address: the peer, or what a trusted proxy says it forwarded."""

    def __init__(self, entries: list[str]) -> None:
        self._networks = [ipaddress.ip_network(e, strict=False) for e in entries]

    def trusts(self, address: str | None) -> bool:
        if not address or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> tuple[str | None, str | None]:
        """(client address, proxy it came through or None). Walks X-Forwarded-For from the
        right, past trusted proxies, so a client cannot forge the address by sending the
        header itself."""
        if not forwarded_for or not self.trusts(peer):
            return peer, None
        hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
        while hops and self.trusts(hops[-1]):
            hops.pop()
        return (hops[-1] if hops else peer), peer


class AuditWriter:
    """Buffered, batched writes of audit events from a daemon thread."""

    def __init__(self, engine: Engine, interval: float = 1.0, max_buffer: int = 50_000) -> None:
        self._engine = engine
        self._interval = interval
        self._max_buffer = max_buffer
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0
        _LIVE.add(self)

    def record(self, event: AuditEvent) -> None:
        """Queue one event; never blocks on the database."""
        with self._lock:
            if len(self._buffer) >= self._max_buffer:
                self._buffer.pop(0)
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.error("audit buffer full; %d events dropped so far", self.dropped)
            self._buffer.append(asdict(event))
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="harmony-audit", daemon=True
                )
                self._thread.start()
            if len(self._buffer) >= 500:
                self._wake.set()

    def flush(self) -> int:
        """Write everything queued now; returns how many events were written."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer = self._buffer, []
            if not batch:
                return 0
            try:
                with write_turn(self._engine), self._engine.begin() as conn:
                    conn.execute(insert(audit_events), batch)
            except SQLAlchemyError as exc:
                first_line = str(exc).splitlines()[0][:200]
                log.error("writing %d audit events failed, kept: %s", len(batch), first_line)
                with self._lock:
                    self._buffer[:0] = batch[-self._max_buffer :]
                return 0
            return len(batch)

    def close(self) -> None:
        """Stop the thread and write what is left. Idempotent; an event recorded later (the
        app served again) starts a new thread."""
        with self._lock:
            thread, stop, self._thread = self._thread, self._stop, None
        if thread is not None:
            stop.set()
            self._wake.set()
            if thread is not threading.current_thread():
                thread.join(timeout=10)
        self.flush()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            self.flush()


_LIVE: weakref.WeakSet[AuditWriter] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for writer in list(_LIVE):
        writer.close()


@dataclass(frozen=True, slots=True)
class AuditQuery:
    subject: str | None = None
    path_prefix: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    action: str | None = None
    limit: int = 100
    offset: int = 0


def query_audit(engine: Engine, q: AuditQuery) -> tuple[list[dict[str, Any]], int]:
    """A page of events, newest first, and how many match in all."""
    conditions = []
    if q.subject is not None:
        conditions.append(audit_events.c.subject == q.subject)
    if q.path_prefix:
        escaped = q.path_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(audit_events.c.path.like(escaped + "%", escape="\\"))
    if q.since is not None:
        conditions.append(audit_events.c.at >= _utc(q.since))
    if q.until is not None:
        conditions.append(audit_events.c.at < _utc(q.until))
    if q.action is not None:
        conditions.append(audit_events.c.action == q.action)
    page = (
        select(audit_events)
        .where(*conditions)
        .order_by(audit_events.c.id.desc())
        .limit(q.limit)
        .offset(q.offset)
    )
    counted = select(func.count()).select_from(audit_events).where(*conditions)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(page)]
        total = int(conn.execute(counted).scalar_one())
    for row in rows:
        row["at"] = as_utc(row["at"])
    return rows, total


def _utc(moment: datetime) -> datetime:
    """A naive time means UTC; SQLite compares the stored UTC text, so convert first."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
