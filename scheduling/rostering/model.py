"""The CP-SAT model over a :class:`Problem`, and a solve with a time limit that can be stopped.

One boolean per (person, day, shift type) that the person may work; everything that cannot
happen (fixed days off, ineligible types, locked days) has no variable at all, which keeps
the larger benchmark instances small. Sequences are clauses over "works on day d" literals,
weekends are auxiliary booleans, cover shortfall and excess are integer slacks.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ortools.sat.python import cp_model

from scheduling.rostering.greedy import Admissible, greedy_roster
from scheduling.rostering.problem import Problem, Staff

#: One assignment: (staff id, day, shift type id).
Assignment = tuple[str, int, str]

#: How an auxiliary variable's value follows from earlier ones (values by variable index).
Derivation = Callable[[Mapping[int, int]], int]


def _total(variables: Sequence[cp_model.IntVar]) -> Derivation:
    indices = [v.index for v in variables]
    return lambda values: sum(values[i] for i in indices)


def _most(variables: Sequence[cp_model.IntVar]) -> Derivation:
    indices = [v.index for v in variables]
    return lambda values: max(values[i] for i in indices)


def _least(variables: Sequence[cp_model.IntVar]) -> Derivation:
    indices = [v.index for v in variables]
    return lambda values: min(values[i] for i in indices)


def _excess(people: Sequence[cp_model.IntVar], requirement: int, sign: int) -> Derivation:
    """Over (sign 1) or under (sign -1) the requirement, never negative."""
    indices = [v.index for v in people]
    return lambda values: max(0, sign * (sum(values[i] for i in indices) - requirement))


@dataclass(frozen=True, slots=True)
class Progress:
    """A new incumbent or bound, as the solve goes."""

    elapsed: float
    objective: float | None
    bound: float


@dataclass(frozen=True, slots=True)
class SolveResult:
    """What a solve found. ``best_found_seconds`` is when the returned roster was found;
    with status OPTIMAL that is the time to the optimum."""

    status: str
    objective: int | None
    bound: float
    first_feasible_seconds: float | None
    best_found_seconds: float | None
    wall_seconds: float
    roster: list[Assignment]

    @property
    def optimal(self) -> bool:
        return self.status == "OPTIMAL"


@dataclass(frozen=True, slots=True)
class SolverSettings:
    """CP-SAT parameters. On few workers the full-problem solvers are chosen by hand: the
    default portfolio's ``default_lp`` leaves sequence and weekend clauses out of the LP and
    its bound stalls near a quarter of the optimum (Instance2: 208 against 828), while
    ``max_lp`` proves Instances 1 to 3 optimal in seconds. One worker is left for the
    interleaved LNS and local-search helpers that find the incumbents."""

    workers: int = 2
    full_solvers: tuple[str, ...] = ("max_lp", "core", "quick_restart")
    log: bool = False
    seed: int | None = None
    """CP-SAT's ``random_seed`` (None: its default); results on a time limit depend on it."""
    greedy_hint: bool = True
    """Start from :func:`~scheduling.rostering.greedy.greedy_roster` unless a hint was
    given: without it the first incumbents leave most of the cover unmet and a month's
    result hinges on whether the local search reaches full cover before the limit."""


class _Recorder(cp_model.CpSolverSolutionCallback):
    """Times the first and the latest incumbent; keeps Python work per solution minimal."""

    def __init__(self, began: float, on_progress: Callable[[Progress], None] | None) -> None:
        super().__init__()
        self.began = began
        self.on_progress = on_progress
        self.first: float | None = None
        self.latest: float | None = None
        self.objective: float | None = None
        self.bound = -math.inf

    def on_solution_callback(self) -> None:
        now = time.perf_counter() - self.began
        if self.first is None:
            self.first = now
        self.latest = now
        self.objective = self.objective_value
        self.bound = self.best_objective_bound
        if self.on_progress is not None:
            self.on_progress(Progress(now, self.objective, self.bound))

    def on_bound(self, bound: float) -> None:
        self.bound = bound
        if self.on_progress is not None:
            self.on_progress(Progress(time.perf_counter() - self.began, self.objective, bound))


def _rest_forbidden(problem: Problem, staff: Staff) -> list[tuple[str, str, int]]:
    """(first, second, gap in days) pairs whose rest in between is below the person's minimum.

    Shifts without a start time cannot be checked and never conflict."""
    if staff.min_rest_minutes <= 0:
        return []
    timed = [s for s in problem.shift_types if s.start_minute is not None]
    pairs = []
    for first in timed:
        assert first.start_minute is not None
        end = first.start_minute + first.minutes
        for second in timed:
            assert second.start_minute is not None
            gap = 1
            while gap * 1440 + second.start_minute - end < staff.min_rest_minutes:
                pairs.append((first.id, second.id, gap))
                gap += 1
    return pairs


class RosterModel:
    """The CP-SAT model of one problem; build once, then :meth:`solve` (and :meth:`stop`)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.model = cp_model.CpModel()
        self.x: dict[tuple[int, int, str], cp_model.IntVar] = {}
        self._objective: list[tuple[cp_model.IntVar, int]] = []
        self._constant = 0
        self._mine: list[list[tuple[int, str, cp_model.IntVar]]] = [[] for _ in problem.staff]
        self._derived: list[tuple[cp_model.IntVar, Derivation]] = []
        """Every auxiliary variable in creation order, so a hint can give them all a value."""
        self._solver: cp_model.CpSolver | None = None
        self._stopped = threading.Event()
        self._hinted = False
        self.extra_rules: Admissible | None = None
        """Hard rules added to :attr:`model` beyond the problem's, for the greedy hint."""
        self._lock = threading.Lock()
        self._build()

    # --- building ---------------------------------------------------------------------------

    def _allowed(self) -> dict[tuple[int, int], list[str]]:
        """The shift types each person may work each day (eligibility, days off, locks)."""
        locks = {(lock.staff, lock.day): lock.shift for lock in self.problem.locks}
        allowed: dict[tuple[int, int], list[str]] = {}
        for si, staff in enumerate(self.problem.staff):
            types = [
                t.id
                for t in self.problem.shift_types
                if (staff.eligible is None or t.id in staff.eligible)
                and staff.max_shifts.get(t.id, 1) > 0
            ]
            for day in range(self.problem.days):
                if day in staff.days_off:
                    continue
                if (staff.id, day) in locks:
                    locked = locks[staff.id, day]
                    allowed[si, day] = [locked] if locked is not None else []
                else:
                    allowed[si, day] = types
        return allowed

    def _build(self) -> None:
        p, m = self.problem, self.model
        locks = {(lock.staff, lock.day): lock.shift for lock in p.locks}
        allowed = self._allowed()
        for (si, day), types in allowed.items():
            for t in types:
                var = m.new_bool_var(f"x[{p.staff[si].id},{day},{t}]")
                self.x[si, day, t] = var
                self._mine[si].append((day, t, var))
        for si, staff in enumerate(p.staff):
            works = self._works(si)
            for day in range(p.days):
                locked = locks.get((staff.id, day), "unlocked")
                if locked not in ("unlocked", None):
                    m.add(self.x[si, day, locked] == 1)
            self._successions(si, staff)
            self._totals(si, staff)
            self._sequences(staff, works)
            self._weekends(staff, works)
        self._cover()
        self._requests()
        self._fairness()
        m.minimize(sum(coefficient * var for var, coefficient in self._objective) + self._constant)

    def _works(self, si: int) -> list[cp_model.IntVar | None]:
        """Per day, the literal "works that day" (None: cannot work); at most one shift."""
        by_day: list[list[cp_model.IntVar]] = [[] for _ in range(self.problem.days)]
        for day, _, var in self._mine[si]:
            by_day[day].append(var)
        works: list[cp_model.IntVar | None] = []
        for day, shifts in enumerate(by_day):
            if not shifts:
                works.append(None)
            elif len(shifts) == 1:
                works.append(shifts[0])
            else:
                work = self.model.new_bool_var(f"w[{si},{day}]")
                self.model.add(sum(shifts) == work)
                self._derived.append((work, _total(shifts)))
                works.append(work)
        return works

    def _successions(self, si: int, staff: Staff) -> None:
        """Forbidden successions and minimum rest: one at-most-one per (day, first shift)
        over it and every shift that may not follow, rather than a clause per pair, which
        is both fewer constraints on 32 shift types and a tighter LP."""
        pairs = [(a.id, b, 1) for a in self.problem.shift_types for b in a.forbidden_next]
        pairs += _rest_forbidden(self.problem, staff)
        banned: dict[tuple[str, int], set[str]] = {}
        for first, second, gap in pairs:
            banned.setdefault((first, gap), set()).add(second)
        for (first, gap), seconds in banned.items():
            for day in range(self.problem.days - gap):
                a = self.x.get((si, day, first))
                if a is None:
                    continue
                after = [self.x.get((si, day + gap, b)) for b in sorted(seconds)]
                followers = [b for b in after if b is not None]
                if followers:
                    self.model.add_at_most_one([a, *followers])

    def _totals(self, si: int, staff: Staff) -> None:
        """Maximum shifts per type and the minimum and maximum total minutes."""
        minutes = {t.id: t.minutes for t in self.problem.shift_types}
        mine = [(v, t) for _, t, v in self._mine[si]]
        for t, limit in staff.max_shifts.items():
            of_type = [v for v, vt in mine if vt == t]
            if 0 < limit < len(of_type):
                self.model.add(sum(of_type) <= limit)
        worked = sum(minutes[t] * v for v, t in mine)
        most = max(minutes.values(), default=0) * self.problem.days
        if staff.max_minutes is not None and staff.max_minutes < most:
            self.model.add(worked <= staff.max_minutes)
        if staff.min_minutes > 0:
            self.model.add(worked >= staff.min_minutes)

    def _sequences(self, staff: Staff, works: Sequence[cp_model.IntVar | None]) -> None:
        """Consecutive working days and days off as sliding-window clauses.

        Runs of days off touching the horizon's ends are never too short (outside is off);
        runs of working days touching them are exempt only with ``Problem.open_edges``."""
        days, m = self.problem.days, self.model
        most = staff.max_consecutive_work
        if most is not None:
            for start in range(days - most):
                window = works[start : start + most + 1]
                if all(w is not None for w in window):
                    m.add(sum(w for w in window if w is not None) <= most)
        open_edges = self.problem.open_edges
        for length in range(1, staff.min_consecutive_work):
            # forbid: off (or outside), `length` days on, off (or outside)
            for start in range(days - length + 1):
                block = works[start : start + length]
                if any(w is None for w in block):
                    continue
                if open_edges and (start == 0 or start + length == days):
                    continue
                clause = [w.Not() for w in block if w is not None]
                for edge in (start - 1, start + length):
                    if 0 <= edge < days and works[edge] is not None:
                        clause.append(works[edge])  # type: ignore[arg-type]
                m.add_bool_or(clause)
        for length in range(1, staff.min_consecutive_off):
            # forbid: on, `length` days off, on (blocks touching the horizon's ends are free)
            for start in range(1, days - length):
                before, after = works[start - 1], works[start + length]
                if before is None or after is None:
                    continue
                clause = [before.Not(), after.Not()]
                clause += [w for w in works[start : start + length] if w is not None]
                m.add_bool_or(clause)

    def _weekends(self, staff: Staff, works: Sequence[cp_model.IntVar | None]) -> None:
        """A weekend is worked if Saturday or Sunday is; at most ``max_weekends`` of them."""
        if staff.max_weekends is None:
            return
        weekends: dict[int, list[cp_model.IntVar]] = {}
        for day, work in enumerate(works):
            weekday = (self.problem.first_weekday + day) % 7
            if weekday >= 5 and work is not None:
                weekends.setdefault((self.problem.first_weekday + day) // 7, []).append(work)
        if len(weekends) <= staff.max_weekends:
            return
        flags = []
        for week, days in weekends.items():
            if len(days) == 1:
                flags.append(days[0])
                continue
            flag = self.model.new_bool_var(f"weekend[{staff.id},{week}]")
            self._derived.append((flag, _most(days)))
            for work in days:
                self.model.add_implication(work, flag)
            # the same, linear, so the LP sees it: presolve keeps implications out of the LP
            self.model.add(sum(days) <= len(days) * flag)
            self.model.add_bool_or([flag.Not(), *days])
            flags.append(flag)
        self.model.add(sum(flags) <= staff.max_weekends)

    def _cover(self) -> None:
        """Shortfall and excess per (day, shift) as integer slacks with linear weights.

        The excess is pinned to max(0, staffed - requirement) so that shortfall and excess are
        never both positive: otherwise an intermediate incumbent's objective overstates its
        roster's true cost (seen on Instance2: 4891 reported for a 3578 roster)."""
        for c in self.problem.cover:
            people = [
                self.x[si, c.day, c.shift]
                for si in range(len(self.problem.staff))
                if (si, c.day, c.shift) in self.x
            ]
            staffed = sum(people)
            under = self.model.new_int_var(0, c.requirement, f"under[{c.day},{c.shift}]")
            over = self.model.new_int_var(
                0, max(0, len(people) - c.requirement), f"over[{c.day},{c.shift}]"
            )
            self.model.add(staffed + under - over == c.requirement)
            self.model.add_max_equality(over, [staffed - c.requirement, 0])
            self._derived += [
                (under, _excess(people, c.requirement, -1)),
                (over, _excess(people, c.requirement, 1)),
            ]
            self._objective += [(under, c.under_weight), (over, c.over_weight)]

    def _requests(self) -> None:
        """On-requests cost their weight unless granted, off-requests if worked."""
        index = {staff.id: si for si, staff in enumerate(self.problem.staff)}
        for r in self.problem.requests:
            var = self.x.get((index.get(r.staff, -1), r.day, r.shift))
            if r.on:
                self._constant += r.weight
                if var is not None:
                    self._objective.append((var, -r.weight))
            elif var is not None:
                self._objective.append((var, r.weight))

    def _fairness(self) -> None:
        """Weight x (most loaded - least loaded) over each fairness group."""
        index = {staff.id: si for si, staff in enumerate(self.problem.staff)}
        for k, goal in enumerate(self.problem.fairness):
            members = [index[s] for s in goal.staff if s in index]
            if len(members) < 2:
                continue
            counts = []
            for si in members:
                count = self.model.new_int_var(0, self.problem.days, f"fair[{k},{si}]")
                mine = [v for _, t, v in self._mine[si] if t in goal.shifts]
                self.model.add(count == sum(mine))
                self._derived.append((count, _total(mine)))
                counts.append(count)
            high = self.model.new_int_var(0, self.problem.days, f"fair_high[{k}]")
            low = self.model.new_int_var(0, self.problem.days, f"fair_low[{k}]")
            self.model.add_max_equality(high, counts)
            self.model.add_min_equality(low, counts)
            self._derived += [(high, _most(counts)), (low, _least(counts))]
            self._objective += [(high, goal.weight), (low, -goal.weight)]

    # --- solving ----------------------------------------------------------------------------

    def hint(self, roster: Sequence[Assignment]) -> None:
        """Start the search from ``roster`` (need not be feasible), replacing any earlier
        hint. Every auxiliary variable is hinted too: CP-SAT takes a complete, feasible hint
        as its first incumbent at once, while a partial one only guides its branching."""
        index = {staff.id: si for si, staff in enumerate(self.problem.staff)}
        given = {(index.get(s, -1), d, t) for s, d, t in roster}
        values = {var.index: int(key in given) for key, var in self.x.items()}
        for var, derive in self._derived:
            values[var.index] = derive(values)
        self.model.clear_hints()
        self._hinted = True
        for var in [*self.x.values(), *(var for var, _ in self._derived)]:
            self.model.add_hint(var, values[var.index])

    def stop(self) -> None:
        """Stop a running solve (thread-safe); it returns the best roster so far."""
        with self._lock:
            self._stopped.set()
            if self._solver is not None:
                self._solver.stop_search()

    def solve(
        self,
        time_limit: float,
        settings: SolverSettings | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> SolveResult:
        """Solve for at most ``time_limit`` seconds of wall time, the greedy hint included."""
        settings = settings or SolverSettings()
        began = time.perf_counter()
        if settings.greedy_hint and not self._hinted:
            self.hint(greedy_roster(self.problem, self.extra_rules).roster)
        solver = cp_model.CpSolver()
        params = solver.parameters
        params.max_time_in_seconds = max(0.0, time_limit - (time.perf_counter() - began))
        params.num_workers = settings.workers
        if settings.workers <= len(settings.full_solvers) + 1:
            params.subsolvers.extend(settings.full_solvers[: max(1, settings.workers - 1)])
        params.log_search_progress = settings.log
        if settings.seed is not None:
            params.random_seed = settings.seed
        # Ctrl-C belongs to Python (the CLI stops the search itself); CP-SAT's own
        # handler would abort the process when the signal reaches Python's main thread.
        params.catch_sigint_signal = False
        recorder = _Recorder(began, on_progress)
        solver.best_bound_callback = recorder.on_bound
        with self._lock:
            if self._stopped.is_set():
                params.max_time_in_seconds = 0.0
            self._solver = solver
        status = solver.solve(self.model, recorder)
        wall = time.perf_counter() - began
        with self._lock:
            self._solver = None
        found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        roster: list[Assignment] = []
        if found:
            values = solver.response_proto.solution
            roster = sorted(
                (self.problem.staff[si].id, day, t)
                for (si, day, t), var in self.x.items()
                if values[var.index]
            )
        return SolveResult(
            status=solver.status_name(status),
            objective=round(solver.objective_value) if found else None,
            bound=solver.best_objective_bound,
            first_feasible_seconds=recorder.first,
            best_found_seconds=recorder.latest,
            wall_seconds=wall,
            roster=roster,
        )


def solve(
    problem: Problem,
    time_limit: float,
    settings: SolverSettings | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> SolveResult:
    """Build the model of ``problem`` and solve it within ``time_limit`` seconds."""
    return RosterModel(problem).solve(time_limit, settings, on_progress)
