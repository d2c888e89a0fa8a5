"""The generic rostering problem: what a roster must respect and what it should prefer.

One description for every source (the Curtois & Qu benchmark reader today, Harmony's own
scheduling data later), so there is one CP-SAT model and one independent evaluator over it.
Days are counted from 0; days before and after the horizon count as days off, except that
with ``open_edges`` a run of working days touching either end may continue beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: A roster: (staff id, day) -> shift type id, one entry per assignment.
Roster = dict[tuple[str, int], str]


@dataclass(frozen=True, slots=True)
class ShiftType:
    """A kind of shift; ``start_minute`` (after midnight) is needed only for minimum rest."""

    id: str
    minutes: int
    forbidden_next: frozenset[str] = frozenset()
    start_minute: int | None = None


@dataclass(frozen=True, slots=True)
class Staff:
    """One person's hard rules. Neutral defaults (1, 0, None) mean "no constraint"."""

    id: str
    max_shifts: Mapping[str, int] = field(default_factory=dict)
    min_minutes: int = 0
    max_minutes: int | None = None
    min_consecutive_work: int = 1
    max_consecutive_work: int | None = None
    min_consecutive_off: int = 1
    max_weekends: int | None = None
    days_off: frozenset[int] = frozenset()
    eligible: frozenset[str] | None = None
    min_rest_minutes: int = 0


@dataclass(frozen=True, slots=True)
class Cover:
    """How many people a (day, shift) wants, and the price of each one short or extra."""

    day: int
    shift: str
    requirement: int
    under_weight: int
    over_weight: int


@dataclass(frozen=True, slots=True)
class Request:
    """A wish to work (``on``) or not to work a shift, costing ``weight`` if not granted."""

    staff: str
    day: int
    shift: str
    weight: int
    on: bool


@dataclass(frozen=True, slots=True)
class Lock:
    """An assignment decided already: ``shift`` on that day, or off when ``shift`` is None."""

    staff: str
    day: int
    shift: str | None


@dataclass(frozen=True, slots=True)
class Fairness:
    """Spread the shifts of ``shifts`` evenly over ``staff``: costs ``weight`` for each shift
    between the most and the least loaded person."""

    staff: tuple[str, ...]
    shifts: frozenset[str]
    weight: int


@dataclass(frozen=True, slots=True)
class Problem:
    """A whole instance. ``first_weekday`` is day 0's weekday (0 Monday ... 6 Sunday).

    ``open_edges`` (the benchmark's rule, needed to reproduce its proven optima): a run of
    working days touching the first or last day may continue outside the horizon, so the
    minimum consecutive working days do not apply to it. Without it, days outside the
    horizon count as off for that rule too. Either way they count as off for everything else.
    """

    days: int
    shift_types: tuple[ShiftType, ...]
    staff: tuple[Staff, ...]
    cover: tuple[Cover, ...] = ()
    requests: tuple[Request, ...] = ()
    locks: tuple[Lock, ...] = ()
    fairness: tuple[Fairness, ...] = ()
    first_weekday: int = 0
    open_edges: bool = True

    def shift(self, shift_id: str) -> ShiftType:
        """The shift type called ``shift_id``."""
        for shift_type in self.shift_types:
            if shift_type.id == shift_id:
                return shift_type
        raise KeyError(shift_id)
