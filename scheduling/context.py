"""What scheduling needs from the process it runs in, handed over explicitly.

scheduling reads and writes its own tables and canonical records; three things come from
outside, and every operation that needs them takes a ``SchedulingContext``:

- the default conflict rules (an admin's stored overrides go on top: ``rules.load_rules``);
- the outbox that queues roster changes for other systems (``outbox.RosterOutbox``);
- how canonical writes become domain events (``CanonicalChanges``).

``hub.scheduling_context.scheduling_context(settings)`` builds the one a hub process uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection

from canonical.repository import UpsertResult
from scheduling.outbox import RosterOutbox
from scheduling.rules import RosterRules


class CanonicalChanges(Protocol):
    def __call__(
        self, conn: Connection, results: Sequence[UpsertResult], source_system: str, /
    ) -> None:
        """Record what these canonical writes changed (domain events) in ``conn``'s
        transaction."""
        ...


@dataclass(frozen=True, slots=True)
class SchedulingContext:
    default_rules: RosterRules
    """The conflict rules before any admin override."""
    outbox: RosterOutbox
    record_changes: CanonicalChanges
