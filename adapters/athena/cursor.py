"""Where an athena sync stands: which list it is reading and from which offset.

A run is a fixed list of steps, computed from the cursor alone so a resumed run reads the
same lists in the same order. A full run reads departments, providers, then the open and
the booked appointments of every department; an incremental run reads the changed feed, then
the open appointments again (so slots freed by a cancellation appear). The cursor carries
the run's date window and the departments (with their time zones) the run found, so nothing
read before a failure is read again.

The changed feed marks what it hands out as processed, so a page lost between athena's answer
and the hub's store would be lost for good. The cursor therefore records ``changed_at``: the
moment (UTC, the client's clock, taken after athena answered) the changed feed was last read
in a page stored with that cursor (for a full run: when the run began, since it reads
everything). An incremental run first re-reads what athena handed out since a little before
that moment (``showprocessedstartdatetime``/``showprocessedenddatetime``, a window fixed in the
cursor as ``replay_start``/``replay_end`` so paging through it resumes), then the new changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from adapters.contract import SourceError

FULL, CHANGED = "full", "changed"


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    """The envelope kind and list: departments, providers, appointments-open ..."""
    path: str
    departmentid: str | None = None
    replay: bool = False
    """The changed feed's already processed changes in the run's replay window."""


@dataclass(frozen=True, slots=True)
class Position:
    mode: str = FULL
    step: int = 0
    offset: int = 0
    startdate: str | None = None
    enddate: str | None = None
    departments: dict[str, str] = field(default_factory=dict)
    """Every department seen, id -> IANA time zone name ('' when athena gave none)."""
    changed_at: str | None = None
    """When the changed feed was last read and stored (ISO 8601, UTC); None: never known."""
    replay_start: str | None = None
    """The run's replay window, athena's 'MM/DD/YYYY HH24:MI:SS' (Eastern); None: no replay."""
    replay_end: str | None = None

    @classmethod
    def from_cursor(cls, cursor: dict[str, Any] | None) -> Position:
        if cursor is None:
            return cls()
        try:
            position = cls(
                mode=str(cursor["mode"]),
                step=int(cursor["step"]),
                offset=int(cursor["offset"]),
                startdate=cursor.get("startdate"),
                enddate=cursor.get("enddate"),
                departments={str(k): str(v) for k, v in (cursor.get("departments") or {}).items()},
                changed_at=_optional(cursor.get("changed_at")),
                replay_start=_optional(cursor.get("replay_start")),
                replay_end=_optional(cursor.get("replay_end")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(
                f"athena sync cursor {cursor!r} is unreadable", retryable=False
            ) from exc
        if position.mode not in (FULL, CHANGED):
            raise SourceError(
                f"athena sync cursor mode {position.mode!r} is unknown", retryable=False
            )
        return position

    def to_cursor(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "step": self.step,
            "offset": self.offset,
            "startdate": self.startdate,
            "enddate": self.enddate,
            "departments": dict(self.departments),
            "changed_at": self.changed_at,
            "replay_start": self.replay_start,
            "replay_end": self.replay_end,
        }

    def with_window(self, today: date, days_ahead: int) -> Position:
        """The run's date window, fixed when the run starts and kept when it resumes."""
        if self.startdate and self.enddate:
            return self
        return replace(
            self,
            startdate=today.strftime("%m/%d/%Y"),
            enddate=(today + timedelta(days=days_ahead)).strftime("%m/%d/%Y"),
        )

    def next_run(self) -> Position:
        """The start of the incremental run after this one."""
        return Position(
            mode=CHANGED, departments=dict(self.departments), changed_at=self.changed_at
        )

    @property
    def live_step(self) -> int:
        """The index of the step that reads new changes (incremental runs only)."""
        return 1 if self.replay_start else 0


def steps(position: Position, departmentids: list[str] | None) -> list[Step]:
    """The run's steps. Departments come from the option, else from what the run found."""
    chosen = departmentids or sorted(position.departments, key=_numeric)
    opened = [Step("appointments-open", "appointments/open", d) for d in chosen]
    if position.mode == CHANGED:
        changed = [Step("appointments-changed", "appointments/changed")]
        if position.replay_start:
            changed.insert(0, Step("appointments-changed", "appointments/changed", replay=True))
        return [*changed, *opened]
    booked = [Step("appointments-booked", "appointments/booked", d) for d in chosen]
    return [Step("departments", "departments"), Step("providers", "providers"), *opened, *booked]


def _optional(value: Any) -> str | None:
    return str(value) if value else None


def _numeric(value: str) -> tuple[int, str]:
    return (int(value), value) if value.isdigit() else (1 << 62, value)
