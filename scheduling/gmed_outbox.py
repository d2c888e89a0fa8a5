"""Queue roster changes for GMED in the outbox, inside the change's own transaction.

The SIU is built by ``adapters.gmed.roster`` (scheduling speaks no HL7) and stored in the
message store as an outbound ``gmed-out`` message; the caller publishes the returned ids on
the bus after the commit and ``hub.outbound.OutboundSender`` sends and retries them. As for
appointment changes, nothing is queued when no GMED destination is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, select

from adapters.gmed.roster import RosterShift, build_roster_siu
from hub import message_store
from hub.message_store import OUTBOUND, NewMessage
from hub.outbound import GMED_OUT
from hub.settings import Settings
from scheduling.records import shifts_with_types
from scheduling.tables import physicians, rosters, shifts
from scheduling.times import as_utc


def snapshot(conn: Connection, shift_id: int) -> RosterShift:
    """What GMED is told about a shift as it is now (read it before deleting the row)."""
    row: Row[Any] = conn.execute(shifts_with_types().where(shifts.c.id == shift_id)).one()
    roster_name = conn.execute(
        select(rosters.c.name).where(rosters.c.id == row.roster_id)
    ).scalar_one()
    name = None
    if row.physician_id is not None and row.status == "assigned":
        name = conn.execute(
            select(physicians.c.name).where(physicians.c.id == row.physician_id)
        ).scalar_one()
    return RosterShift(
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


def queue(
    conn: Connection,
    settings: Settings,
    items: Sequence[tuple[str, RosterShift]],
    reason: str = "",
) -> list[int]:
    """Store one SIU per (trigger, shift); returns the outbound message ids."""
    if not settings.gmed_outbound_host:
        return []
    ids = []
    for trigger, shift in items:
        raw = build_roster_siu(
            shift,
            trigger,
            receiving_application=settings.gmed_receiving_application,
            receiving_facility=settings.gmed_receiving_facility,
            reason=reason,
        )
        stored = message_store.store_in(
            conn,
            NewMessage(
                channel=GMED_OUT, direction=OUTBOUND, raw=raw, message_type=f"SIU^{trigger}"
            ),
        )
        ids.append(stored.id)
    return ids
