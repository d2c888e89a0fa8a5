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
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from hub.tables import messages

INBOUND, OUTBOUND = "inbound", "outbound"
WAITING = {INBOUND: "received", OUTBOUND: "queued"}
FINISHED = ("processed", "sent", "filtered", "rejected")
UNFINISHED = ("received", "queued", "retrying")


def utcnow() -> datetime:
    return datetime.now(UTC)


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


def _row(message: NewMessage, body_sha: str, now: datetime) -> dict[str, Any]:
    rejected = message.rejection is not None
    return {
        "channel": message.channel,
        "direction": message.direction,
        "dedupe_key": message.key(body_sha),
        "body_sha256": body_sha,
        "raw": message.raw,
        "message_type": message.message_type,
        "control_id": message.control_id,
        "sender": message.sender,
        "peer": message.peer,
        "status": "rejected" if rejected else WAITING[message.direction],
        "attempts": 0,
        "last_error": message.rejection,
        "ack": message.ack,
        "received_at": now,
        "updated_at": now,
        "finished_at": now if rejected else None,
    }


def store_batch(engine: Engine, batch: Sequence[NewMessage]) -> list[Stored]:
    """Store many messages in one transaction (group commit); resends get their first ACK."""
    now = utcnow()
    shas = [m.body_sha256() for m in batch]
    keys = [m.key(sha) for m, sha in zip(batch, shas, strict=True)]
    try:
        with engine.begin() as conn:
            return _store_in(conn, batch, shas, keys, now)
    except IntegrityError:
        # Another process stored one of these keys between our look-up and insert: go one by
        # one so that each message still ends stored exactly once.
        out: list[Stored] = []
        for message in batch:
            with engine.begin() as conn:
                sha = message.body_sha256()
                out.extend(_store_in(conn, [message], [sha], [message.key(sha)], now))
        return out


def _store_in(
    conn: Connection,
    batch: Sequence[NewMessage],
    shas: Sequence[str],
    keys: Sequence[str | None],
    now: datetime,
) -> list[Stored]:
    wanted = [k for k in keys if k is not None]
    existing: dict[str, Stored] = {}
    if wanted:
        found = conn.execute(
            select(messages.c.id, messages.c.dedupe_key, messages.c.ack, messages.c.status).where(
                messages.c.dedupe_key.in_(wanted)
            )
        )
        for row in found:
            existing[row.dedupe_key] = Stored(row.id, True, row.ack, row.status)
    fresh_rows: list[dict[str, Any]] = []
    fresh_index: list[int] = []
    out: list[Stored | None] = [None] * len(batch)
    pending: dict[str, int] = {}
    for i, (message, sha, key) in enumerate(zip(batch, shas, keys, strict=True)):
        if key is not None and key in existing:
            out[i] = existing[key]
            continue
        if key is not None and key in pending:
            out[i] = Stored(-1, True, message.ack, "")  # resolved below once ids exist
            continue
        if key is not None:
            pending[key] = i
        fresh_rows.append(_row(message, sha, now))
        fresh_index.append(i)
    if fresh_rows:
        ids = conn.execute(insert(messages).returning(messages.c.id), fresh_rows).scalars().all()
        for i, new_id, row in zip(fresh_index, ids, fresh_rows, strict=True):
            out[i] = Stored(new_id, False, row["ack"], row["status"])
    for i, key in enumerate(keys):
        current = out[i]
        if current is not None and current.id == -1 and key is not None:
            first = out[pending[key]]
            assert first is not None
            out[i] = Stored(first.id, True, first.ack, first.status)
    return [s for s in out if s is not None]


def store_in(conn: Connection, message: NewMessage) -> Stored:
    """Store one message inside the caller's transaction (the outbox for outbound traffic)."""
    sha = message.body_sha256()
    return _store_in(conn, [message], [sha], [message.key(sha)], utcnow())[0]


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


def fail(
    engine: Engine,
    message_id: int,
    error: str,
    *,
    permanent: bool,
    max_attempts: int,
    base_seconds: float,
    max_seconds: float,
) -> str:
    """Record a failure in its own transaction: retry later with backoff, or park."""
    with engine.begin() as conn:
        row = get(conn, message_id)
        if row is None:
            return "missing"
        attempts = row.attempts + 1  # the failed claim's own increment was rolled back
        now = utcnow()
        if permanent or attempts >= max_attempts:
            status, next_at, finished = "parked", None, now
        else:
            delay = backoff_seconds(attempts, base_seconds, max_seconds)
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
