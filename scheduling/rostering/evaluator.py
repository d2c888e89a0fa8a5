"""An independent checker: hard-constraint violations and the objective of a finished roster.

Written apart from the CP-SAT model on purpose (it walks the roster day by day rather than
stating constraints), so a modelling mistake shows up as a disagreement between the two.
Nothing here imports :mod:`scheduling.rostering.model`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from scheduling.rostering.problem import Problem, Staff

DAY_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The verdict on one roster; ``objective`` is meaningful whatever the violations."""

    violations: tuple[str, ...]
    cover_penalty: int
    request_penalty: int
    fairness_penalty: int

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def objective(self) -> int:
        return self.cover_penalty + self.request_penalty + self.fairness_penalty


def _runs(worked: list[bool]) -> list[tuple[bool, int, int]]:
    """Maximal runs as (working?, first day, length)."""
    runs: list[tuple[bool, int, int]] = []
    for day, on in enumerate(worked):
        if runs and runs[-1][0] == on:
            kind, first, length = runs[-1]
            runs[-1] = (kind, first, length + 1)
        else:
            runs.append((on, day, 1))
    return runs


class _Checker:
    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.shifts = {s.id: s for s in problem.shift_types}
        self.violations: list[str] = []

    def fail(self, message: str) -> None:
        self.violations.append(message)

    def person(self, staff: Staff, mine: dict[int, str]) -> None:
        """Every per-person rule, reading the person's days in order."""
        p = self.problem
        for day, shift in sorted(mine.items()):
            if day in staff.days_off:
                self.fail(f"{staff.id} works {shift} on day {day}, a fixed day off")
            if staff.eligible is not None and shift not in staff.eligible:
                self.fail(f"{staff.id} is not eligible for {shift} (day {day})")
            following = mine.get(day + 1)
            if following is not None and following in self.shifts[shift].forbidden_next:
                self.fail(f"{staff.id}: {following} on day {day + 1} may not follow {shift}")
        self.rest(staff, mine)

        per_type = Counter(mine.values())
        for shift, limit in staff.max_shifts.items():
            if per_type[shift] > limit:
                self.fail(f"{staff.id} works {per_type[shift]} {shift} shifts, limit {limit}")
        minutes = sum(self.shifts[s].minutes for s in mine.values())
        if minutes < staff.min_minutes:
            self.fail(f"{staff.id} works {minutes} minutes, minimum {staff.min_minutes}")
        if staff.max_minutes is not None and minutes > staff.max_minutes:
            self.fail(f"{staff.id} works {minutes} minutes, maximum {staff.max_minutes}")

        worked = [day in mine for day in range(p.days)]
        for on, first, length in _runs(worked):
            last = first + length - 1
            at_edge = first == 0 or last == p.days - 1
            if on:
                if staff.max_consecutive_work is not None and length > staff.max_consecutive_work:
                    self.fail(f"{staff.id} works {length} days in a row from day {first}")
                if length < staff.min_consecutive_work and not (p.open_edges and at_edge):
                    self.fail(f"{staff.id} works only {length} days in a row from day {first}")
            elif length < staff.min_consecutive_off and not at_edge:
                self.fail(f"{staff.id} has only {length} days off in a row from day {first}")

        if staff.max_weekends is not None:
            weekends = {
                (p.first_weekday + day) // 7
                for day in mine
                if (p.first_weekday + day) % 7 in (5, 6)
            }
            if len(weekends) > staff.max_weekends:
                self.fail(f"{staff.id} works {len(weekends)} weekends, limit {staff.max_weekends}")

    def rest(self, staff: Staff, mine: dict[int, str]) -> None:
        """Minimum rest between the end of one shift and the start of the next."""
        if staff.min_rest_minutes <= 0:
            return
        timed = sorted(
            (day * DAY_MINUTES + start, day * DAY_MINUTES + start + self.shifts[s].minutes, day)
            for day, s in mine.items()
            if (start := self.shifts[s].start_minute) is not None
        )
        for (_, end, day), (begin, _, next_day) in pairwise(timed):
            if begin - end < staff.min_rest_minutes:
                self.fail(
                    f"{staff.id} rests {begin - end} minutes between days {day} and {next_day}"
                )


def evaluate(problem: Problem, roster: Iterable[tuple[str, int, str]]) -> Evaluation:
    """Check ``roster`` ((staff, day, shift) rows) against ``problem`` and price it."""
    checker = _Checker(problem)
    people = {s.id: s for s in problem.staff}
    by_person: dict[str, dict[int, str]] = defaultdict(dict)
    for staff_id, day, shift in roster:
        if staff_id not in people:
            checker.fail(f"unknown staff {staff_id!r}")
        elif shift not in checker.shifts:
            checker.fail(f"unknown shift {shift!r}")
        elif not 0 <= day < problem.days:
            checker.fail(f"day {day} is outside the horizon")
        elif day in by_person[staff_id]:
            checker.fail(f"{staff_id} has more than one shift on day {day}")
        else:
            by_person[staff_id][day] = shift

    for lock in problem.locks:
        actual = by_person[lock.staff].get(lock.day)
        if actual != lock.shift:
            checker.fail(f"{lock.staff} is locked to {lock.shift} on day {lock.day}, has {actual}")
    for staff in problem.staff:
        checker.person(staff, by_person[staff.id])

    staffed = Counter((day, shift) for mine in by_person.values() for day, shift in mine.items())
    cover = 0
    for c in problem.cover:
        have = staffed[c.day, c.shift]
        cover += max(0, c.requirement - have) * c.under_weight
        cover += max(0, have - c.requirement) * c.over_weight

    requests = 0
    for r in problem.requests:
        works_it = by_person[r.staff].get(r.day) == r.shift
        if works_it != r.on:
            requests += r.weight

    fairness = 0
    for goal in problem.fairness:
        loads = [
            sum(1 for shift in by_person[s].values() if shift in goal.shifts) for s in goal.staff
        ]
        if loads:
            fairness += goal.weight * (max(loads) - min(loads))

    return Evaluation(tuple(checker.violations), cover, requests, fairness)
