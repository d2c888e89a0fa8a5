"""What other systems hear about roster changes, and the port that queues it.

A change to a published roster names the shifts it touched with a trigger (``S12`` new,
``S13`` retimed, ``S14`` changed hands or dropped, ``S15`` deleted: see
``adapters.gmed.roster``) and hands ``(trigger, ShiftSnapshot)`` pairs to the
``RosterOutbox`` of its ``SchedulingContext``, inside its own transaction. The outbox stores
the outbound messages and returns their ids; the caller publishes them after the commit.
scheduling speaks no HL7: the hub builds and stores the messages (``hub.roster_outbound``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row, select

from scheduling.records import shifts_with_types
from scheduling.tables import physicians, rosters, shifts
from scheduling.times import as_utc


@dataclass(frozen=True, slots=True)
class ShiftSnapshot:
    """One shift as it is now, as other systems are told about it."""

    shift_id: int
    roster_name: str
    type_code: str
    type_name: str
    start: datetime
    end: datetime
    timezone: str
    service: str
    location: str
    physician_id: int | None
    """Who works it; None when it is open."""
    physician_name: str | None


class RosterOutbox(Protocol):
    def __call__(
        self, conn: Connection, items: Sequence[tuple[str, ShiftSnapshot]], reason: str, /
    ) -> list[int]:
        """Store one outbound message per (trigger, shift) in ``conn``'s transaction;
        returns their ids (none when nobody is to be told)."""
        ...


def snapshot(conn: Connection, shift_id: int) -> ShiftSnapshot:
    """The shift as it is now (read it before deleting the row)."""
    row: Row[Any] = conn.execute(shifts_with_types().where(shifts.c.id == shift_id)).one()
    roster_name = conn.execute(
        select(rosters.c.name).where(rosters.c.id == row.roster_id)
    ).scalar_one()
    name = None
    if row.physician_id is not None and row.status == "assigned":
        name = conn.execute(
            select(physicians.c.name).where(physicians.c.id == row.physician_id)
        ).scalar_one()
    return ShiftSnapshot(
        shift_id=row.id,
        roster_name=roster_name,
        type_code=row.type_code,
        type_name=row.type_name,
        start=as_utc(row.start),
        end=as_utc(row.end),
        timezone=row.type_timezone,
        service=row.service,
        location=row.location,
        physician_id=row.physician_id if name is not None else None,
        physician_name=name,
    )
