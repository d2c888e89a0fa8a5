"""The message store: every message that enters or leaves is written here before anything else.

Statuses: ``received`` (inbound, waiting for a worker), ``queued`` (outbound, waiting to be
sent), ``retrying`` (failed, due again at ``next_attempt_at``), ``processed`` / ``sent``
(finished), ``filtered`` (stored, nothing to do, reason in ``last_error``), ``rejected``
(refused by the listener, reason in ``last_error``), ``parked`` (gave up, needs a person).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, or_, select, update

from hub.tables import messages

INBOUND, OUTBOUND = "inbound", "outbound"
WAITING = {INBOUND: "received", OUTBOUND: "queued"}
FINISHED = ("processed", "sent", "filtered", "rejected")
UNFINISHED = ("received", "queued", "retrying")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every one we write is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def utc_text(value: datetime) -> str:
    """An instant as the API and FHIR write it: ISO 8601 in UTC with ``Z``."""
    return as_utc(value).isoformat().replace("+00:00", "Z")


def dedupe_key(channel: str, sender: str, control_id: str, body_sha256: str) -> str:
    """Same channel, sender, control id and bytes: a resend, not a new message."""
    material = "\x1f".join((channel, sender, control_id, body_sha256)).encode()
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True)
class NewMessage:
    channel: str
    direction: str
    raw: bytes
    message_type: str | None = None
    control_id: str | None = None
    sender: str | None = None
    peer: str | None = None
    ack: bytes | None = None
    rejection: str | None = None
    """Why the listener refused it; such a message is stored as ``rejected``."""

    def body_sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def key(self, body_sha: str) -> str | None:
        if self.control_id is None or self.rejection is not None:
            return None
        return dedupe_key(self.channel, self.sender or "", self.control_id, body_sha)


@dataclass(frozen=True, slots=True)
class Stored:
    """The outcome of storing one message: its id, and the original ACK if it was a resend."""

    id: int
    duplicate: bool
    ack: bytes | None
    status: str


_COLUMNS = (
    "channel",
    "direction",
    "dedupe_key",
    "body_sha256",
    "raw",
    "message_type",
    "control_id",
    "sender",
    "peer",
    "status",
    "attempts",
    "last_error",
    "ack",
    "received_at",
    "updated_at",
    "finished_at",
)


@lru_cache(maxsize=128)
def _insert_sql(mark: str, rows: int) -> str:
    one = "(" + ", ".join([mark] * len(_COLUMNS)) + ")"
    return (
        f"INSERT INTO {messages.name} ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * rows)} "
        "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, dedupe_key"
    )


def _row(message: NewMessage, sha: str, key: str | None, when: Any) -> tuple[Any, ...]:
    rejected = message.rejection is not None
    return (
        message.channel,
        message.direction,
        key,
        sha,
        message.raw,
        message.message_type,
        message.control_id,
        message.sender,
        message.peer,
        "rejected" if rejected else WAITING[message.direction],
        0,
        message.rejection,
        message.ack,
        when,
        when,
        when if rejected else None,
    )


def store_batch(engine: Engine, batch: Sequence[NewMessage]) -> list[Stored]:
    """Store many messages in one transaction (group commit); resends get their first ACK."""
    with engine.begin() as conn:
        return _store_in(conn, batch, utcnow())


def _store_in(conn: Connection, batch: Sequence[NewMessage], now: datetime) -> list[Stored]:
    """One multi-row INSERT ... ON CONFLICT DO NOTHING; the hot path of MLLP ingest.

    Written at the driver level because SQLAlchemy's per-row processing cost more than the
    commit itself (measured with bench/bench_mllp.py). A key that conflicts is a resend: it
    gets the stored message's id and ACK. Concurrent inserts of one key wait on each other in
    the database, so a resend racing its original still ends as one row.
    """
    to_db = _datetime_to_db(conn)
    when = to_db(now) if to_db else now
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    out: list[Stored | None] = [None] * len(batch)
    first_of: dict[str, int] = {}
    keyed: list[tuple[int, tuple[Any, ...]]] = []
    for i, message in enumerate(batch):
        sha = message.body_sha256()
        key = message.key(sha)
        if key is None:
            # Keyless rows (refused by the listener) go one by one: RETURNING order is not
            # guaranteed, and only the key tells rows apart.
            row = _row(message, sha, None, when)
            new_id = _driver_rows(conn, _insert_sql(mark, 1), row)[0][0]
            out[i] = Stored(new_id, False, message.ack, row[9])
        elif key in first_of:
            continue  # the same bytes twice in one batch: resolved from the first below
        else:
            first_of[key] = i
            keyed.append((i, _row(message, sha, key, when)))
    inserted: dict[str, int] = {}
    if keyed:
        params = tuple(value for _, row in keyed for value in row)
        result = _driver_rows(conn, _insert_sql(mark, len(keyed)), params)
        inserted = {key: new_id for new_id, key in result}
    for i, row in keyed:
        if row[2] in inserted:
            out[i] = Stored(inserted[row[2]], False, row[12], row[9])
    conflicted = [row[2] for i, row in keyed if out[i] is None]
    if conflicted:
        found = conn.execute(
            select(messages.c.id, messages.c.dedupe_key, messages.c.ack, messages.c.status).where(
                messages.c.dedupe_key.in_(conflicted)
            )
        )
        existing = {r.dedupe_key: Stored(r.id, True, r.ack, r.status) for r in found}
        for i, row in keyed:
            if out[i] is None:
                out[i] = existing[row[2]]
    for i, message in enumerate(batch):
        if out[i] is None:
            first = out[first_of[message.key(message.body_sha256()) or ""]]
            assert first is not None
            out[i] = Stored(first.id, True, first.ack, first.status)
    return [s for s in out if s is not None]


def _driver_rows(conn: Connection, sql: str, params: tuple[Any, ...]) -> list[Any]:
    """Run on the DBAPI cursor, inside the Connection's transaction: no SQLAlchemy layers."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _datetime_to_db(conn: Connection) -> Any:
    """The dialect's own datetime conversion (SQLite stores text), so reads stay identical."""
    return messages.c.received_at.type._cached_bind_processor(conn.dialect)


def store_in(conn: Connection, message: NewMessage) -> Stored:
    """Store one message inside the caller's transaction (the outbox for outbound traffic)."""
    return _store_in(conn, [message], utcnow())[0]


def get(conn: Connection, message_id: int) -> Any:
    return conn.execute(select(messages).where(messages.c.id == message_id)).one_or_none()


def claim(conn: Connection, message_id: int) -> Any:
    """Take a waiting message for this transaction; None if another worker has or had it.

    The UPDATE is the lock: on PostgreSQL a second worker blocks on the row until we commit
    and then sees it finished; on SQLite the write lock serialises workers anyway.
    """
    waiting = (*WAITING.values(), "retrying")
    result = conn.execute(
        update(messages)
        .where(messages.c.id == message_id, messages.c.status.in_(waiting))
        .values(attempts=messages.c.attempts + 1, updated_at=utcnow())
    )
    if result.rowcount != 1:
        return None
    return get(conn, message_id)


def finish(
    conn: Connection,
    message_id: int,
    status: str,
    *,
    error: str | None = None,
    mapping_version: str | None = None,
    ack: bytes | None = None,
) -> None:
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "last_error": error,
        "updated_at": now,
        "finished_at": now,
        "next_attempt_at": None,
    }
    if mapping_version is not None:
        values["mapping_version"] = mapping_version
    if ack is not None:
        values["ack"] = ack
    conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def backoff_seconds(attempts: int, base: float, ceiling: float) -> float:
    return float(min(ceiling, base * (2 ** max(0, attempts - 1))))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing message is tried before it is parked."""

    max_attempts: int = 5
    base_seconds: float = 2.0
    max_seconds: float = 300.0


def fail(
    engine: Engine, message_id: int, error: str, *, permanent: bool, policy: RetryPolicy
) -> str:
    """Record a failure in its own transaction: retry later with backoff, or park."""
    with engine.begin() as conn:
        row = get(conn, message_id)
        if row is None:
            return "missing"
        attempts = row.attempts + 1  # the failed claim's own increment was rolled back
        now = utcnow()
        if permanent or attempts >= policy.max_attempts:
            status, next_at, finished = "parked", None, now
        else:
            delay = backoff_seconds(attempts, policy.base_seconds, policy.max_seconds)
            status, next_at, finished = "retrying", now + timedelta(seconds=delay), None
        conn.execute(
            update(messages)
            .where(messages.c.id == message_id)
            .values(
                status=status,
                attempts=attempts,
                last_error=error[:4000],
                updated_at=now,
                next_attempt_at=next_at,
                finished_at=finished,
            )
        )
        return status


def due_retries(engine: Engine, limit: int = 1000) -> list[tuple[int, str]]:
    """Move retries whose time has come back to waiting; returns (id, direction) to publish."""
    now = utcnow()
    with engine.begin() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.direction)
            .where(messages.c.status == "retrying", messages.c.next_attempt_at <= now)
            .order_by(messages.c.id)
            .limit(limit)
        ).all()
        for direction in (INBOUND, OUTBOUND):
            ids = [r.id for r in rows if r.direction == direction]
            if ids:
                conn.execute(
                    update(messages)
                    .where(messages.c.id.in_(ids), messages.c.status == "retrying")
                    .values(status=WAITING[direction], updated_at=now)
                )
    return [(r.id, r.direction) for r in rows]


def waiting_ids(
    engine: Engine, *, older_than: datetime | None = None, after_id: int = 0, limit: int = 5000
) -> list[tuple[int, str]]:
    """Unfinished messages in id order, for re-queueing on start and for the stale sweep."""
    conditions = [
        messages.c.id > after_id,
        or_(
            messages.c.status.in_(tuple(WAITING.values())),
            and_(messages.c.status == "retrying", messages.c.next_attempt_at.is_(None)),
        ),
    ]
    if older_than is not None:
        conditions.append(messages.c.updated_at < older_than)
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.direction)
            .where(*conditions)
            .order_by(messages.c.id)
            .limit(limit)
        ).all()
    return [(r.id, r.direction) for r in rows]


@dataclass(frozen=True, slots=True)
class MessageFilter:
    status: str | None = None
    channel: str | None = None
    direction: str | None = None
    message_type: str | None = None
    error_contains: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def clauses(self) -> list[Any]:
        c = messages.c
        out: list[Any] = []
        if self.status:
            out.append(c.status == self.status)
        if self.channel:
            out.append(c.channel == self.channel)
        if self.direction:
            out.append(c.direction == self.direction)
        if self.message_type:
            out.append(c.message_type == self.message_type)
        if self.error_contains:
            out.append(c.last_error.contains(self.error_contains, autoescape=True))
        if self.since:
            out.append(c.received_at >= self.since)
        if self.until:
            out.append(c.received_at < self.until)
        return out


SUMMARY_COLUMNS = [
    c for c in messages.c if c.name not in ("raw", "ack", "dedupe_key", "body_sha256")
]


def list_messages(
    engine: Engine, flt: MessageFilter, *, limit: int = 100, offset: int = 0
) -> tuple[int, list[dict[str, Any]]]:
    with engine.connect() as conn:
        total = conn.execute(
            select(func.count()).select_from(messages).where(*flt.clauses())
        ).scalar_one()
        rows = conn.execute(
            select(*SUMMARY_COLUMNS)
            .where(*flt.clauses())
            .order_by(messages.c.id.desc())
            .limit(limit)
            .offset(offset)
        ).all()
    return total, [dict(r._mapping) for r in rows]


def replay(engine: Engine, ids: Iterable[int]) -> list[tuple[int, str]]:
    """Put parked, failed or finished messages back in line; attempts start again."""
    wanted = list(ids)
    if not wanted:
        return []
    now = utcnow()
    out: list[tuple[int, str]] = []
    with engine.begin() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.direction, messages.c.status).where(
                messages.c.id.in_(wanted)
            )
        ).all()
        for row in rows:
            if row.status == "rejected":
                continue  # the listener refused it; the sender must send it again
            conn.execute(
                update(messages)
                .where(messages.c.id == row.id)
                .values(
                    status=WAITING[row.direction],
                    attempts=0,
                    updated_at=now,
                    next_attempt_at=None,
                    finished_at=None,
                )
            )
            out.append((row.id, row.direction))
    return out


def matching_ids(engine: Engine, flt: MessageFilter, limit: int = 100_000) -> list[int]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(messages.c.id).where(*flt.clauses()).order_by(messages.c.id).limit(limit)
            ).scalars()
        )


def prune(engine: Engine, older_than: datetime) -> int:
    """Delete finished messages older than the retention cut-off; parked ones stay."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(messages).where(
                messages.c.status.in_(FINISHED), messages.c.finished_at < older_than
            )
        )
    return int(result.rowcount or 0)


def counts_by_status(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.status, func.count()).group_by(messages.c.status)
        ).all()
    return {status: count for status, count in rows}
