"""The notification outbox: in-app rows, delivery rows, and their life until sent or parked.

Rows are written in the dispatcher's transaction, keyed so a second write of the same
(event, user, kind) is a no-op; the dispatcher can therefore repeat work after a crash and
nothing is doubled. Deliveries are claimed with a lease (attempts counted at the claim), so
a process that dies mid-send leaves a row that becomes due again when the lease ends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from hub.db import write_turn
from hub.message_store import backoff_seconds, utcnow
from hub.notifications.routing import Message
from hub.notifications.tables import deliveries, device_tokens, notifications
from hub.users import users

DUE = ("pending", "retrying", "sending")
FINISHED = ("sent", "parked", "dropped")


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    """How patiently a delivery is retried before it is parked for an operator."""

    max_attempts: int = 8
    base_seconds: float = 5.0
    max_seconds: float = 3600.0
    lease_seconds: float = 120.0
    """A claimed delivery is due again after this long if its sender never reports back."""


@dataclass(frozen=True, slots=True)
class Channels:
    """Which outbound channels this hub delivers on (in-app is always on)."""

    email: bool = False
    push: bool = False


def insert_ignoring_duplicates(conn: Connection, table: Table, conflict: Sequence[str]) -> Insert:
    """``INSERT .. ON CONFLICT DO NOTHING`` for the dialect at hand (PostgreSQL or SQLite)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))


def store(
    conn: Connection, event_id: int, messages: Iterable[Message], channels: Channels
) -> list[int]:
    """Write the notifications of one event and their deliveries; the ids that are new."""
    now = utcnow()
    created: list[int] = []
    for message in messages:
        statement = insert_ignoring_duplicates(
            conn, notifications, ("event_id", "user_id", "kind")
        ).returning(notifications.c.id)
        new_id = conn.execute(
            statement,
            {
                "user_id": message.user_id,
                "event_id": event_id,
                "kind": message.kind,
                "title": message.title,
                "body": message.body,
                "data": message.data,
                "created_at": now,
            },
        ).scalar()
        if new_id is None:
            continue  # already written before a crash or by another dispatcher
        created.append(int(new_id))
        for channel, target in _targets(conn, message.user_id, channels):
            conn.execute(
                insert_ignoring_duplicates(
                    conn, deliveries, ("notification_id", "channel", "target")
                ),
                {
                    "notification_id": new_id,
                    "channel": channel,
                    "target": target,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                },
            )
    return created


def _targets(conn: Connection, user_id: int, channels: Channels) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if channels.email:
        email = conn.execute(select(users.c.email).where(users.c.id == user_id)).scalar()
        if email:
            out.append(("email", str(email)))
    if channels.push:
        tokens = conn.execute(
            select(device_tokens.c.token)
            .where(device_tokens.c.user_id == user_id)
            .order_by(device_tokens.c.id)
        )
        out.extend(("push", str(t.token)) for t in tokens)
    return out


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed delivery with what it has to say."""

    id: int
    channel: str
    target: str
    attempts: int
    title: str
    body: str
    data: dict[str, Any]
    notification_id: int


def claim_due(engine: Engine, policy: OutboxPolicy, *, limit: int = 50) -> list[Due]:
    """Take the deliveries that are due, counting an attempt and leasing them to this caller."""
    now = utcnow()
    query = (
        select(deliveries, notifications.c.title, notifications.c.body, notifications.c.data)
        .join(notifications, notifications.c.id == deliveries.c.notification_id)
        .where(deliveries.c.status.in_(DUE), deliveries.c.next_attempt_at <= now)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit)
    )
    with write_turn(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=deliveries)
        rows = conn.execute(query).all()
        if not rows:
            return []
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id.in_([r.id for r in rows]))
            .values(
                status="sending",
                attempts=deliveries.c.attempts + 1,
                next_attempt_at=now + timedelta(seconds=policy.lease_seconds),
                updated_at=now,
            )
        )
    return [
        Due(
            id=r.id,
            channel=r.channel,
            target=r.target,
            attempts=r.attempts + 1,
            title=r.title,
            body=r.body,
            data=dict(r.data or {}),
            notification_id=r.notification_id,
        )
        for r in rows
    ]


def mark_sent(engine: Engine, delivery_id: int) -> None:
    now = utcnow()
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == delivery_id)
            .values(status="sent", next_attempt_at=None, updated_at=now, finished_at=now)
        )


def mark_failed(
    engine: Engine,
    due: Due,
    error: str,
    policy: OutboxPolicy,
    *,
    permanent: bool = False,
    retry_after: float | None = None,
) -> str:
    """Retry later (backoff, or the server's Retry-After if longer) or park; the new status."""
    now = utcnow()
    if permanent or due.attempts >= policy.max_attempts:
        status, next_at, finished = "parked", None, now
    else:
        delay = backoff_seconds(due.attempts, policy.base_seconds, policy.max_seconds)
        delay = max(delay, retry_after or 0.0)
        status, next_at, finished = "retrying", now + timedelta(seconds=delay), None
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == due.id)
            .values(
                status=status,
                last_error=error[:2000],
                next_attempt_at=next_at,
                updated_at=now,
                finished_at=finished,
            )
        )
    return status


def mark_target_gone(engine: Engine, due: Due, error: str) -> None:
    """The device token is dead: this delivery is dropped and the token forgotten."""
    now = utcnow()
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            update(deliveries)
            .where(deliveries.c.id == due.id)
            .values(
                status="dropped",
                last_error=error[:2000],
                next_attempt_at=None,
                updated_at=now,
                finished_at=now,
            )
        )
        if due.channel == "push":
            conn.execute(delete(device_tokens).where(device_tokens.c.token == due.target))
            # Other deliveries still waiting for the same dead token would only fail the same way.
            conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.channel == "push",
                    deliveries.c.target == due.target,
                    deliveries.c.status.in_(("pending", "retrying")),
                )
                .values(
                    status="dropped",
                    last_error="device token unregistered",
                    next_attempt_at=None,
                    updated_at=now,
                    finished_at=now,
                )
            )


def retry_now(engine: Engine, delivery_ids: Iterable[int]) -> list[int]:
    """Operators: send parked (or waiting) deliveries again, with a fresh attempt budget."""
    ids = list(delivery_ids)
    now = utcnow()
    with write_turn(engine), engine.begin() as conn:
        found = conn.execute(
            select(deliveries.c.id).where(
                deliveries.c.id.in_(ids), deliveries.c.status.in_(("parked", "retrying"))
            )
        ).all()
        chosen = [int(r.id) for r in found]
        if chosen:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(chosen))
                .values(status="pending", attempts=0, next_attempt_at=now, updated_at=now)
            )
    return chosen


def list_deliveries(
    engine: Engine, *, status: str | None = None, channel: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Deliveries newest first, for the operator's view."""
    query = select(deliveries, notifications.c.user_id, notifications.c.kind).join(
        notifications, notifications.c.id == deliveries.c.notification_id
    )
    if status:
        query = query.where(deliveries.c.status == status)
    if channel:
        query = query.where(deliveries.c.channel == channel)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(deliveries.c.id.desc()).limit(limit)).all()
    return [_delivery_json(r) for r in rows]


def delivery_counts(engine: Engine) -> dict[str, int]:
    """How many deliveries are in each status (health at a glance)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        ).all()
    return {str(status): int(count) for status, count in rows}


def _delivery_json(row: Any) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    target = row.target if row.channel == "email" else f"...{row.target[-8:]}"
    return {
        "id": row.id,
        "notification_id": row.notification_id,
        "user_id": row.user_id,
        "kind": row.kind,
        "channel": row.channel,
        "target": target,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "next_attempt_at": stamp(row.next_attempt_at),
        "created_at": stamp(row.created_at),
        "finished_at": stamp(row.finished_at),
    }
