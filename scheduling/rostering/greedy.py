"""A fast greedy roster, the CP-SAT search's starting point (a solution hint).

CP-SAT's first incumbents on a month leave most of the cover unmet, and whether its local
search reaches full cover before the time limit decides the result. Filling the cover day by
day, scarcest shift first, with the least loaded person the hard rules allow, gives it a
nearly full roster to start from in milliseconds.

The rules checked here are those cheap to check one assignment at a time: one shift a day,
eligibility, fixed days off, locks, forbidden successions, minimum rest, maxima per type and
in minutes, maximum consecutive working days, minimum consecutive days off and maximum
weekends, plus whatever ``admissible`` adds. Minimum total minutes and minimum consecutive
working days are only aimed at (a top-up pass, a preference to extend short runs): the hint
need not be feasible, CP-SAT repairs what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from scheduling.rostering.problem import Cover, Problem, Staff

#: One assignment: (staff id, day, shift type id).
Assignment = tuple[str, int, str]

#: Extra hard rules: may ``staff`` work ``shift`` on ``day``, given their ``mine`` (day ->
#: shift) so far? Called only once the problem's own rules allow it.
Admissible = Callable[[str, int, str, Mapping[int, str]], bool]

DAY_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class GreedyRoster:
    """The roster, and the (day, shift) cells it leaves short with how many missing."""

    roster: list[Assignment]
    uncovered: dict[tuple[int, str], int]


@dataclass(eq=False, slots=True)
class _Person:
    """One person's rules and what the greedy gave them so far."""

    staff: Staff
    index: int
    mine: dict[int, str] = field(default_factory=dict)
    minutes: int = 0
    per_type: dict[str, int] = field(default_factory=dict)
    weekends: set[int] = field(default_factory=set)
    locked_days: set[int] = field(default_factory=set)


class _Greedy:
    def __init__(self, problem: Problem, admissible: Admissible | None) -> None:
        self.p = problem
        self.admissible = admissible
        self.shifts = {s.id: s for s in problem.shift_types}
        self.people = [_Person(s, i) for i, s in enumerate(problem.staff)]
        self.by_id = {person.staff.id: person for person in self.people}
        self.eligible = {
            t.id: [
                p
                for p in self.people
                if (p.staff.eligible is None or t.id in p.staff.eligible)
                and p.staff.max_shifts.get(t.id, 1) > 0
            ]
            for t in problem.shift_types
        }
        """Who may ever work each shift type: the only people worth asking."""
        self.staffed: dict[tuple[int, str], int] = {}
        self.cover = {(c.day, c.shift): c for c in problem.cover}
        longest = max((s.minutes for s in problem.shift_types), default=0)
        rest = max((s.min_rest_minutes for s in problem.staff), default=0)
        self.reach = 1 + (longest + rest) // DAY_MINUTES
        self.wish: dict[tuple[str, int, str], int] = {}
        for r in problem.requests:
            key = (r.staff, r.day, r.shift)
            self.wish[key] = self.wish.get(key, 0) + (-r.weight if r.on else r.weight)
        self.goals = [
            (goal, {self.by_id[s].index: 0 for s in goal.staff if s in self.by_id})
            for goal in problem.fairness
        ]
        """Per fairness goal, its members' counts of the goal's shifts so far."""

    # --- the state ---------------------------------------------------------------------------

    def weekend(self, day: int) -> int | None:
        """The weekend's number if ``day`` is a Saturday or Sunday."""
        at = self.p.first_weekday + day
        return at // 7 if at % 7 >= 5 else None

    def assign(self, person: _Person, day: int, shift: str) -> None:
        person.mine[day] = shift
        person.minutes += self.shifts[shift].minutes
        person.per_type[shift] = person.per_type.get(shift, 0) + 1
        week = self.weekend(day)
        if week is not None:
            person.weekends.add(week)
        self.staffed[day, shift] = self.staffed.get((day, shift), 0) + 1
        for goal, counts in self.goals:
            if shift in goal.shifts and person.index in counts:
                counts[person.index] += 1

    # --- the rules -------------------------------------------------------------------------

    def allowed(self, person: _Person, day: int, shift: str) -> bool:
        """Whether one more assignment keeps every rule this module checks."""
        staff, mine = person.staff, person.mine
        if day in mine or day in staff.days_off or day in person.locked_days:
            return False
        if staff.eligible is not None and shift not in staff.eligible:
            return False
        limit = staff.max_shifts.get(shift)
        if limit is not None and person.per_type.get(shift, 0) >= limit:
            return False
        minutes = self.shifts[shift].minutes
        if staff.max_minutes is not None and person.minutes + minutes > staff.max_minutes:
            return False
        before, after = mine.get(day - 1), mine.get(day + 1)
        if before is not None and shift in self.shifts[before].forbidden_next:
            return False
        if after is not None and after in self.shifts[shift].forbidden_next:
            return False
        if not self._rested(person, day, shift):
            return False
        if not self._runs_fit(person, day):
            return False
        week = self.weekend(day)
        if (
            week is not None
            and staff.max_weekends is not None
            and week not in person.weekends
            and len(person.weekends) >= staff.max_weekends
        ):
            return False
        return self.admissible is None or self.admissible(staff.id, day, shift, mine)

    def _rested(self, person: _Person, day: int, shift: str) -> bool:
        """Minimum rest against the shifts already given within reach of ``day``."""
        rest = person.staff.min_rest_minutes
        start = self.shifts[shift].start_minute
        if rest <= 0 or start is None:
            return True
        begin = day * DAY_MINUTES + start
        end = begin + self.shifts[shift].minutes
        for other in range(day - self.reach, day + self.reach + 1):
            code = person.mine.get(other)
            if code is None or other == day:
                continue
            other_start = self.shifts[code].start_minute
            if other_start is None:
                continue
            other_begin = other * DAY_MINUTES + other_start
            other_end = other_begin + self.shifts[code].minutes
            gap = other_begin - end if other > day else begin - other_end
            if gap < rest:
                return False
        return True

    def _runs_fit(self, person: _Person, day: int) -> bool:
        """Maximum consecutive working days, and minimum days off on either side."""
        staff, mine, days = person.staff, person.mine, self.p.days
        back = 0
        while day - back - 1 in mine:
            back += 1
        ahead = 0
        while day + ahead + 1 in mine:
            ahead += 1
        most = staff.max_consecutive_work
        if most is not None and back + ahead + 1 > most:
            return False
        need = staff.min_consecutive_off
        if need <= 1:
            return True
        off = 0  # days off just before `day` (up to `need`): too few if a worked day ends them
        while off < need and day - off - 1 >= 0 and day - off - 1 not in mine:
            off += 1
        if 0 < off < need and day - off - 1 >= 0:
            return False
        off = 0
        while off < need and day + off + 1 < days and day + off + 1 not in mine:
            off += 1
        return not (0 < off < need and day + off + 1 < days)

    # --- choosing --------------------------------------------------------------------------

    def preference(self, person: _Person, day: int, shift: str) -> tuple[int, float, int]:
        """Smaller is better: extend a run still shorter than the minimum; then what this
        assignment adds to the objective's requests and fairness; then the lowest load
        relative to the person's maximum (or the most short of their minimum)."""
        staff = person.staff
        short_run = 0
        if staff.min_consecutive_work > 1 and day - 1 in person.mine:
            run = 1
            while day - run - 1 in person.mine:
                run += 1
            short_run = -1 if run < staff.min_consecutive_work else 0
        cost = self.wish.get((staff.id, day, shift), 0)
        for goal, counts in self.goals:
            if shift in goal.shifts and person.index in counts:
                cost += goal.weight * _spread_increase(counts, person.index)
        ceiling = staff.max_minutes or self.p.days * DAY_MINUTES
        deficit = max(0, staff.min_minutes - person.minutes)
        load = (person.minutes - deficit) / max(1, ceiling)
        return short_run, cost + load, person.index

    def fill_day(self, day: int, covers: list[Cover]) -> None:
        """One slot at a time, always on the shift with the fewest candidates per slot.

        Whether a person may work a shift today depends on their own roster only, so each
        shift's candidates are found once per day; whoever is chosen leaves every list."""
        candidates = {
            c.shift: [p for p in self.eligible[c.shift] if self.allowed(p, day, c.shift)]
            for c in covers
        }
        while True:
            best: tuple[float, Cover] | None = None
            for c in covers:
                missing = c.requirement - self.staffed.get((day, c.shift), 0)
                if missing <= 0 or not candidates[c.shift]:
                    continue
                scarcity = len(candidates[c.shift]) / missing - c.under_weight / 1e6
                if best is None or scarcity < best[0]:
                    best = (scarcity, c)
            if best is None:
                return
            shift = best[1].shift
            chosen = min(candidates[shift], key=lambda p: self.preference(p, day, shift))
            self.assign(chosen, day, shift)
            for people in candidates.values():
                if chosen in people:
                    people.remove(chosen)

    def top_up(self) -> None:
        """Give people still short of their minimum minutes extra shifts, cheapest excess
        first (one sorted pass per person: a rescan per shift is too slow on a year)."""
        for person in self.people:
            if person.minutes >= person.staff.min_minutes:
                continue
            types = [t for t, people in self.eligible.items() if person in people]
            free = [d for d in range(self.p.days) if d not in person.mine]
            options = sorted(
                (self._extra_cost(person, day, shift), day, shift)
                for day in free
                if day not in person.staff.days_off
                for shift in types
            )
            for _, day, shift in options:
                if person.minutes >= person.staff.min_minutes:
                    break
                if self.allowed(person, day, shift):
                    self.assign(person, day, shift)

    def _extra_cost(self, person: _Person, day: int, shift: str) -> int:
        """What one more (day, shift) costs: the excess if covered, else nothing; plus wishes."""
        wish = self.wish.get((person.staff.id, day, shift), 0)
        c = self.cover.get((day, shift))
        if c is None:
            return wish
        if self.staffed.get((day, shift), 0) < c.requirement:
            return wish - c.under_weight
        return wish + c.over_weight

    def run(self) -> GreedyRoster:
        for lock in self.p.locks:
            person = self.by_id.get(lock.staff)
            if person is None:
                continue
            if lock.shift is not None:
                self.assign(person, lock.day, lock.shift)
            person.locked_days.add(lock.day)
        per_day: dict[int, list[Cover]] = {}
        for c in self.p.cover:
            if c.requirement > 0:
                per_day.setdefault(c.day, []).append(c)
        for day in range(self.p.days):
            self.fill_day(day, per_day.get(day, []))
        self.top_up()
        roster = sorted(
            (person.staff.id, day, shift)
            for person in self.people
            for day, shift in person.mine.items()
        )
        uncovered = {
            (c.day, c.shift): c.requirement - self.staffed.get((c.day, c.shift), 0)
            for c in self.p.cover
            if self.staffed.get((c.day, c.shift), 0) < c.requirement
        }
        return GreedyRoster(roster, uncovered)


def _spread_increase(counts: Mapping[int, int], member: int) -> int:
    """How much most - least grows when ``member`` gets one more (-1, 0 or 1)."""
    mine, values = counts[member], counts.values()
    most, least = max(values), min(values)
    grows = 1 if mine == most else 0
    if mine == least and sum(1 for v in values if v == least) == 1:
        grows -= 1
    return grows


def greedy_roster(problem: Problem, admissible: Admissible | None = None) -> GreedyRoster:
    """A roster built day by day in one pass (plus a top-up for minimum minutes); fast
    enough to run before every solve. ``admissible`` adds hard rules the problem does not
    state (Harmony's conflict checker verdicts)."""
    return _Greedy(problem, admissible).run()
