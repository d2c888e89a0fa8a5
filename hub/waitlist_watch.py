"""The pass that notices freed slots, whatever freed them, and hands them to the waitlist.

Every canonical change records a ``domain_event``; a Slot whose status became free (an SIU
S15, an Epic or athena cancel synced in, an API cancel) is the trigger. A slot created free
is new availability, not a freed slot, and is left to ordinary search (a sync page of 500
new slots must not send 500 offers). The pass reads the
events after its high-water mark (``waitlist_cursor``) and moves the mark on afterwards.

Every new event is acted on at once, but the mark moves only past events older than
``GRACE``: on PostgreSQL a lower event id can commit after a higher one, and a mark moved
past it would skip it for good, so the young tail is read again until it is that old (a
transaction holding an event uncommitted for longer than GRACE could still be missed).
Reading an event twice is harmless (a slot with an open offer, or offered before to every
patient it fits, is not offered again), so re-reads and two processes running the pass at
once cost work, not correctness; the mark only moves forward.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from hub.db import write_turn
from hub.message_store import as_utc, utcnow
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
                domain_events.c.created_at,
            )
            .where(domain_events.c.id > mark)
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
    settled = _settled_up_to(rows, utcnow() - grace)
    if settled is not None:
        _move_mark(engine, settled)
    return offers


def _settled_up_to(rows: Sequence[Any], before: datetime) -> int | None:
    """The last id of the leading run of events created before ``before``: the mark may
    pass them, but not a younger one nor anything after it (a lower id may yet commit)."""
    last = None
    for row in rows:
        if as_utc(row.created_at) > before:
            break
        last = int(row.id)
    return last


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
