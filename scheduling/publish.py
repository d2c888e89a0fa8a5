"""Publishing a roster, and telling the canonical store and the outbox about published changes.

Publish validates the whole draft with the conflict checker (every conflict listed, nothing
changed), marks it published, writes its canonical records (PractitionerRole, Schedule,
Slot: see ``canonical_roster``) and queues an ``S12`` per shift in the context's outbox (an
SIU to GMED in a hub), all in one transaction with the ``publish`` event. Later changes to a
published roster (edits, moves, deletes, drops, approved pickups and swaps) go through
``announce``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session

from scheduling.canonical_roster import sync_shifts
from scheduling.conflicts import check, planned_from_row
from scheduling.context import SchedulingContext
from scheduling.errors import RuleConflict, StaleVersion, StateConflict
from scheduling.outbox import snapshot
from scheduling.outcome import Outcome
from scheduling.records import (
    Actor,
    lock_physicians,
    roster_json,
    roster_of,
    shifts_with_types,
    versioned_update,
)
from scheduling.roster_events import write_event
from scheduling.rules import load_rules
from scheduling.tables import rosters, shifts
from scheduling.times import utcnow

LIVE = ("assigned", "open")


def is_published(conn: Connection, roster_id: int) -> bool:
    return roster_of(conn, roster_id).status == "published"


def announce(
    session: Session, context: SchedulingContext, items: Sequence[tuple[str, int]], reason: str
) -> list[int]:
    """Canonical Slots and the outbox for changed shifts of a published roster: (trigger,
    shift id) pairs, triggers as in ``scheduling.outbox``. Returns outbound message ids."""
    if not items:
        return []
    sync_shifts(session, context.record_changes, [shift_id for _, shift_id in items])
    conn = session.connection()
    return context.outbox(conn, [(t, snapshot(conn, sid)) for t, sid in items], reason)


def publish_roster(
    engine: Engine,
    context: SchedulingContext,
    actor: Actor,
    roster_id: int,
    expected_version: int,
) -> Outcome:
    """Publish a draft; RuleConflict lists every conflict of the draft if there is any."""
    actor.require_admin()
    with Session(engine) as session, session.begin():
        conn = session.connection()
        roster = roster_of(conn, roster_id)
        if roster.status != "draft":
            raise StateConflict(f"roster {roster_id} is already {roster.status}")
        if roster.version != expected_version:
            raise StaleVersion(
                f"roster {roster_id} is at version {roster.version}, not {expected_version}"
            )
        rows = conn.execute(
            shifts_with_types()
            .where(shifts.c.roster_id == roster_id, shifts.c.status.in_(LIVE))
            .order_by(shifts.c.start, shifts.c.id)
        ).all()
        assigned = [r for r in rows if r.status == "assigned"]
        lock_physicians(conn, {r.physician_id for r in assigned})
        conflicts = check(
            conn, load_rules(conn, context.default_rules), [planned_from_row(r) for r in assigned]
        )
        if conflicts:
            raise RuleConflict(conflicts)
        published = versioned_update(
            conn,
            rosters,
            roster_id,
            expected_version,
            "roster",
            status="published",
            published_at=utcnow(),
        )
        outbound = announce(
            session, context, [("S12", r.id) for r in rows], f"published {roster.name}"
        )
        data = roster_json(published)
        write_event(
            conn,
            "publish",
            actor=actor.name,
            roster_id=roster_id,
            shift_ids=[r.id for r in rows],
            physician_ids=[r.physician_id for r in assigned],
            detail={
                "summary": f"{actor.name} published roster {roster.name} ({len(rows)} shifts)",
                "roster": data,
                "shift_count": len(rows),
                "outbound_message_ids": outbound,
            },
        )
    return Outcome(data, outbound)


def roster_shift_ids(conn: Connection, roster_id: int) -> list[int]:
    return list(
        conn.execute(
            select(shifts.c.id).where(shifts.c.roster_id == roster_id, shifts.c.status.in_(LIVE))
        ).scalars()
    )
