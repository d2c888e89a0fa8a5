"""Roster changes for GMED: the scheduling outbox, as SIU messages in the message store.

scheduling hands over ``(trigger, ShiftSnapshot)`` pairs inside the change's own
transaction; each becomes one SIU built by ``adapters.gmed.roster`` and stored as an
outbound ``gmed-out`` message. The caller publishes the returned ids on the bus after the
commit and ``hub.outbound.OutboundSender`` sends and retries them. As for appointment
changes, nothing is queued when no GMED destination is configured.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from adapters.gmed.roster import RosterShift, build_roster_siu
from hub import message_store
from hub.message_store import OUTBOUND, NewMessage
from hub.outbound import GMED_OUT
from hub.settings import Settings
from scheduling.outbox import ShiftSnapshot


class GmedRosterOutbox:
    """A ``scheduling.outbox.RosterOutbox`` that queues SIU messages for GMED."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(
        self, conn: Connection, items: Sequence[tuple[str, ShiftSnapshot]], reason: str, /
    ) -> list[int]:
        """Store one SIU per (trigger, shift); returns the outbound message ids."""
        if not self.settings.gmed_outbound_host:
            return []
        ids = []
        for trigger, shift in items:
            raw = build_roster_siu(
                _roster_shift(shift),
                trigger,
                receiving_application=self.settings.gmed_receiving_application,
                receiving_facility=self.settings.gmed_receiving_facility,
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


def _roster_shift(shift: ShiftSnapshot) -> RosterShift:
    return RosterShift(
        shift_id=shift.shift_id,
        roster_name=shift.roster_name,
        type_code=shift.type_code,
        type_name=shift.type_name,
        start=shift.start,
        end=shift.end,
        timezone=shift.timezone,
        service=shift.service,
        location=shift.location,
        physician_id=shift.physician_id,
        physician_name=shift.physician_name,
    )
