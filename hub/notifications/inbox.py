"""A user's side of notifications: the in-app list, read marks, and their push devices.

The ``notification`` table is the source of truth for the list and for the SSE stream, so
every API process sees what any dispatcher wrote. Only the dispatcher inserts notifications,
and it does so one transaction at a time (it holds the cursor row), so ids become visible in
increasing order and "everything after id N" never skips a late commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select, update

from hub.db import write_turn
from hub.message_store import as_utc, utcnow
from hub.notifications.outbox import insert_ignoring_duplicates
from hub.notifications.tables import device_tokens, notifications


def _json(row: Any) -> dict[str, Any]:
    def stamp(value: datetime | None) -> str | None:
        return None if value is None else as_utc(value).isoformat()

    return {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "body": row.body,
        "data": row.data,
        "event_id": row.event_id,
        "created_at": stamp(row.created_at),
        "read_at": stamp(row.read_at),
        "read": row.read_at is not None,
    }


def list_for(
    engine: Engine,
    user_id: int,
    *,
    unread_only: bool = False,
    before: int | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Newest first; ``before`` pages back through older ones."""
    query = select(notifications).where(notifications.c.user_id == user_id)
    if unread_only:
        query = query.where(notifications.c.read_at.is_(None))
    if before is not None:
        query = query.where(notifications.c.id < before)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(notifications.c.id.desc()).limit(limit)).all()
    return [_json(r) for r in rows]


def since(engine: Engine, user_id: int, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The user's notifications newer than ``after_id``, oldest first (what a stream sends)."""
    query = (
        select(notifications)
        .where(notifications.c.user_id == user_id, notifications.c.id > after_id)
        .order_by(notifications.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [_json(r) for r in conn.execute(query).all()]


def latest_id(engine: Engine, user_id: int | None = None) -> int:
    """The newest notification id (of one user, or of anyone); 0 when there is none."""
    query = select(func.max(notifications.c.id))
    if user_id is not None:
        query = query.where(notifications.c.user_id == user_id)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def unread_count(engine: Engine, user_id: int) -> int:
    query = select(func.count()).where(
        notifications.c.user_id == user_id, notifications.c.read_at.is_(None)
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def mark_read(engine: Engine, user_id: int, ids: list[int] | None = None) -> int:
    """Mark some (or, with None, all) of the user's unread notifications read; how many."""
    statement = (
        update(notifications)
        .where(notifications.c.user_id == user_id, notifications.c.read_at.is_(None))
        .values(read_at=utcnow())
    )
    if ids is not None:
        statement = statement.where(notifications.c.id.in_(ids))
    with write_turn(engine), engine.begin() as conn:
        return int(conn.execute(statement).rowcount)


def owns(engine: Engine, user_id: int, notification_id: int) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            select(notifications.c.id).where(
                notifications.c.id == notification_id, notifications.c.user_id == user_id
            )
        ).first()
    return found is not None


def register_device(engine: Engine, user_id: int, token: str, platform: str | None) -> None:
    """Remember a device token for the user; a token seen before moves to this user (a phone
    changes hands, or someone else signs in on it)."""
    now = utcnow()
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            insert_ignoring_duplicates(conn, device_tokens, ("token",)),
            {
                "user_id": user_id,
                "token": token,
                "platform": platform,
                "created_at": now,
                "updated_at": now,
            },
        )
        conn.execute(
            update(device_tokens)
            .where(device_tokens.c.token == token)
            .values(user_id=user_id, platform=platform, updated_at=now)
        )


def unregister_device(engine: Engine, user_id: int, token: str) -> bool:
    with write_turn(engine), engine.begin() as conn:
        gone = conn.execute(
            delete(device_tokens).where(
                device_tokens.c.token == token, device_tokens.c.user_id == user_id
            )
        ).rowcount
    return bool(gone)


def devices(engine: Engine, user_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(device_tokens)
            .where(device_tokens.c.user_id == user_id)
            .order_by(device_tokens.c.id)
        ).all()
    return [
        {"token": r.token, "platform": r.platform, "created_at": as_utc(r.created_at).isoformat()}
        for r in rows
    ]
