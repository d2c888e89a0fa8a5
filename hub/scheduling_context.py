"""The ``SchedulingContext`` of a hub process, from its Settings.

Default conflict rules from HARMONY_ROSTER_*, roster changes queued for GMED
(``hub.roster_outbound``), and canonical writes recorded as domain events (``hub.events``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from canonical.repository import UpsertResult
from hub.events import events_from_results, record_events
from hub.roster_outbound import GmedRosterOutbox
from hub.settings import Settings
from scheduling.context import SchedulingContext
from scheduling.rules import ForbiddenSequence, RosterRules


def default_rules(settings: Settings) -> RosterRules:
    return RosterRules(
        timezone=settings.roster_timezone,
        min_rest_hours=settings.roster_min_rest_hours,
        weekly_max_hours=settings.roster_weekly_max_hours,
        weekly_max_shifts=settings.roster_weekly_max_shifts,
        forbidden_sequences=tuple(
            ForbiddenSequence.parse(t) for t in settings.roster_forbidden_sequences
        ),
        swap_lead_days=settings.roster_swap_lead_days,
    )


def record_canonical_changes(
    conn: Connection, results: Sequence[UpsertResult], source_system: str, /
) -> None:
    """Domain events for the canonical records scheduling wrote (no message caused them)."""
    record_events(conn, events_from_results(results, "", source_system, message_id=None))


def scheduling_context(settings: Settings) -> SchedulingContext:
    return SchedulingContext(
        default_rules=default_rules(settings),
        outbox=GmedRosterOutbox(settings),
        record_changes=record_canonical_changes,
    )
