"""The pass that notices freed slots, whatever freed them, and hands them to the waitlist.

Every canonical change records a ``domain_event``; a Slot whose status became free (an SIU
S15, an Epic or athena cancel synced in, an API cancel) is the trigger. A slot created free
is new availability, not a freed slot, and is left to ordinary search (a sync page of 500
new slots must not send 500 offers). The pass reads the
events after its high-water mark (``waitlist_cursor``) and moves the mark on afterwards.

Events younger than ``GRACE`` are left for the next pass: on PostgreSQL a lower event id
can commit after a higher one, and a mark moved past it would skip it for good. Reading an
event twice is harmless (a slot with an open offer is not offered again), so two processes
running the pass at once cost work, not correctness; the mark only moves forward.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from hub.db import write_turn
from hub.message_store import utcnow
from hub.notifications.outbox import Channels, insert_ignoring_duplicates
from hub.settings import Settings
from hub.tables import domain_events
from hub.waitlist import WaitlistPolicy, on_slot_freed
from hub.waitlist_tables import waitlist_cursor

log = logging.getLogger(__name__)

CURSOR = "slot-freed"
GRACE = timedelta(seconds=5)
BATCH = 500


def watch_freed_slots(
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    *,
    policy: WaitlistPolicy | None = None,
    channels: Channels | None = None,
    batch: int = BATCH,
    grace: timedelta = GRACE,
) -> list[int]:
    """One pass over new domain events; the ids of the offers it made."""
    now = now or utcnow()
    mark = read_mark(engine)
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                domain_events.c.id,
                domain_events.c.resource_type,
                domain_events.c.resource_id,
                domain_events.c.detail,
            )
            .where(domain_events.c.id > mark, domain_events.c.created_at <= utcnow() - grace)
            .order_by(domain_events.c.id)
            .limit(batch)
        ).all()
    offers: list[int] = []
    freed = list(dict.fromkeys(r.resource_id for r in rows if _freed_slot(r)))
    for slot_id in freed:
        try:
            offer = on_slot_freed(engine, settings, slot_id, now, policy=policy, channels=channels)
        except Exception as exc:  # one slot must not hold back the others
            log.warning("waitlist offer for freed Slot/%s failed: %s", slot_id, exc)
            continue
        if offer is not None:
            offers.append(offer)
    if rows:
        _move_mark(engine, rows[-1].id)
    return offers


def read_mark(engine: Engine) -> int:
    with engine.connect() as conn:
        found = conn.execute(
            select(waitlist_cursor.c.last_event_id).where(waitlist_cursor.c.name == CURSOR)
        ).scalar()
    return int(found or 0)


def _freed_slot(row: Any) -> bool:
    detail = row.detail or {}
    return (
        row.resource_type == "Slot"
        and detail.get("status") == "free"
        and detail.get("previous_status") not in (None, "free")
    )


def _move_mark(engine: Engine, to: int) -> None:
    now = utcnow()
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            insert_ignoring_duplicates(conn, waitlist_cursor, ("name",)),
            {"name": CURSOR, "last_event_id": 0, "updated_at": now},
        )
        conn.execute(
            update(waitlist_cursor)
            .where(waitlist_cursor.c.name == CURSOR, waitlist_cursor.c.last_event_id < to)
            .values(last_event_id=to, updated_at=now)
        )
