"""The CP-SAT model: tiny problems whose optimum is known by hand (one rule each), agreement
with the independent evaluator, Instance1's proven optimum, stopping a solve, and hints."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from scheduling.rostering.curtois import read_curtois
from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.greedy import greedy_roster
from scheduling.rostering.model import Progress, RosterModel, SolverSettings, solve
from scheduling.rostering.problem import (
    Cover,
    Fairness,
    Lock,
    Problem,
    Request,
    ShiftType,
    Staff,
)

FIXTURES = Path("/work/shared/fixtures/rostering")
D = ShiftType("D", 480)


def _cover(*day_shift_need: tuple[int, str, int]) -> tuple[Cover, ...]:
    """Each person short costs 10, each extra 1."""
    return tuple(Cover(day, shift, need, 10, 1) for day, shift, need in day_shift_need)


def _every_day(days: int, need: int = 1) -> tuple[Cover, ...]:
    return _cover(*((day, "D", need) for day in range(days)))


TINY = {
    # 3 days of one person, at most 2 in a row: one day goes uncovered.
    "max consecutive": (
        Problem(3, (D,), (Staff("A", max_consecutive_work=2),), _every_day(3)),
        10,
    ),
    # L then E is forbidden, and that is exactly what the cover asks for.
    "succession": (
        Problem(
            2,
            (ShiftType("E", 480), ShiftType("L", 480, frozenset({"E"}))),
            (Staff("A"),),
            _cover((0, "L", 1), (1, "E", 1)),
        ),
        10,
    ),
    # a night ending 06:00 leaves 1 h before a 07:00 early: below 11 h of rest.
    "minimum rest": (
        Problem(
            2,
            (ShiftType("N", 480, start_minute=22 * 60), ShiftType("E", 480, start_minute=7 * 60)),
            (Staff("A", min_rest_minutes=11 * 60),),
            _cover((0, "N", 1), (1, "E", 1)),
        ),
        10,
    ),
    # both Saturdays wanted, one weekend allowed.
    "weekends": (
        Problem(14, (D,), (Staff("A", max_weekends=1),), _cover((5, "D", 1), (12, "D", 1))),
        10,
    ),
    # locked off on the only day anybody is needed.
    "lock": (
        Problem(1, (D,), (Staff("A"),), _every_day(1), locks=(Lock("A", 0, None),)),
        10,
    ),
    # one more D than allowed.
    "max shifts per type": (
        Problem(3, (D,), (Staff("A", max_shifts={"D": 2}),), _every_day(3)),
        10,
    ),
    # 3 days needed, 2 shifts' worth of minutes.
    "max minutes": (
        Problem(3, (D,), (Staff("A", max_minutes=960),), _every_day(3)),
        10,
    ),
    # must work 2 shifts, only 1 needed: one extra.
    "min minutes": (
        Problem(
            3, (D,), (Staff("A", min_minutes=960),), _cover((0, "D", 1), (1, "D", 0), (2, "D", 0))
        ),
        1,
    ),
    # day 0 alone is a run touching the start, free with open edges ...
    "min consecutive, open edge": (
        Problem(3, (D,), (Staff("A", min_consecutive_work=2),), _cover((0, "D", 1))),
        0,
    ),
    # ... but with closed edges it needs day 1 too: one extra.
    "min consecutive, closed edge": (
        Problem(
            3,
            (D,),
            (Staff("A", min_consecutive_work=2),),
            _cover((0, "D", 1), (1, "D", 0)),
            open_edges=False,
        ),
        1,
    ),
    # days 1 and 3 wanted, 2 days off in a row required: work day 2 too (1) or drop one (10).
    "min consecutive off": (
        Problem(
            5,
            (D,),
            (Staff("A", min_consecutive_off=2),),
            _cover((1, "D", 1), (2, "D", 0), (3, "D", 1)),
        ),
        1,
    ),
    # A's day off and B's eligibility leave day 0's E uncovered (10); B cannot have the E
    # she asks for (3); A takes day 1's E despite her off-request (2, cheaper than 10).
    "days off, eligibility, requests": (
        Problem(
            2,
            (ShiftType("E", 480), ShiftType("L", 480)),
            (
                Staff("A", days_off=frozenset({0})),
                Staff("B", eligible=frozenset({"L"})),
            ),
            _cover((0, "E", 1), (1, "E", 1)),
            requests=(Request("B", 1, "E", 3, on=True), Request("A", 1, "E", 2, on=False)),
        ),
        10 + 3 + 2,
    ),
    # A can only take day 3; leaving days to B costs 3 x (3 - 1) in fairness, less than
    # leaving a day uncovered (10).
    "fairness": (
        Problem(
            4,
            (D,),
            (Staff("A", days_off=frozenset({0, 1, 2})), Staff("B")),
            _every_day(4),
            fairness=(Fairness(("A", "B"), frozenset({"D"}), 3),),
        ),
        6,
    ),
}


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_optimum(name: str) -> None:
    problem, optimum = TINY[name]
    result = solve(problem, time_limit=20)
    assert result.status == "OPTIMAL"
    assert result.objective == optimum
    verdict = evaluate(problem, result.roster)
    assert verdict.violations == ()
    assert verdict.objective == optimum


def test_locked_shift_is_kept_even_when_it_costs() -> None:
    problem = Problem(
        2, (D,), (Staff("A"),), _cover((0, "D", 0), (1, "D", 0)), locks=(Lock("A", 1, "D"),)
    )
    result = solve(problem, time_limit=20)
    assert result.roster == [("A", 1, "D")]
    assert result.objective == 1


def test_instance1_reaches_its_proven_optimum() -> None:
    """607 (Curtois & Qu). The limit is generous on purpose: it is measured in about a
    second, and the assertion is on the objective, not the time."""
    problem = read_curtois(FIXTURES / "Instance1.txt")
    result = solve(problem, time_limit=60)
    assert result.objective == 607
    assert result.bound == 607
    assert result.first_feasible_seconds is not None
    verdict = evaluate(problem, result.roster)
    assert verdict.feasible and verdict.objective == 607


def test_stop_from_another_thread_keeps_the_incumbent() -> None:
    problem = read_curtois(FIXTURES / "Instance2.txt")
    model = RosterModel(problem)
    seen = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.objective is not None:
            seen.set()

    stopper = threading.Thread(target=lambda: seen.wait(60) and model.stop())
    stopper.start()
    result = model.solve(600, on_progress=on_progress)
    stopper.join()
    assert result.objective is not None
    assert result.wall_seconds < 300
    assert evaluate(problem, result.roster).objective == result.objective


def test_stop_before_solving_returns_at_once() -> None:
    model = RosterModel(read_curtois(FIXTURES / "Instance2.txt"))
    model.stop()
    result = model.solve(600)
    assert result.status in ("UNKNOWN", "FEASIBLE")
    assert result.wall_seconds < 60


def test_hint_of_a_known_roster_is_accepted() -> None:
    problem = read_curtois(FIXTURES / "Instance1.txt")
    first = solve(problem, time_limit=60)
    model = RosterModel(replace(problem))
    model.hint(first.roster)
    again = model.solve(60)
    assert again.objective == 607


def _first_objective(model: RosterModel, settings: SolverSettings | None = None) -> float:
    seen: list[float] = []

    def on_progress(progress: Progress) -> None:
        if progress.objective is not None:
            seen.append(progress.objective)

    model.solve(20, settings, on_progress)
    return seen[0]


def test_a_complete_feasible_hint_is_the_first_incumbent() -> None:
    """hint() values every auxiliary variable too (cover slacks, fairness extremes), so
    CP-SAT starts from the roster itself: B on all four days, 4 x 3 in fairness."""
    problem, optimum = TINY["fairness"]
    model = RosterModel(problem)
    model.hint([("B", day, "D") for day in range(4)])
    assert _first_objective(model) == 12
    assert model.solve(20).objective == optimum


def test_a_later_hint_replaces_the_earlier_one() -> None:
    problem, _ = TINY["fairness"]
    model = RosterModel(problem)
    model.hint([("B", day, "D") for day in range(4)])
    model.hint([("B", 0, "D"), ("B", 1, "D"), ("B", 2, "D"), ("A", 3, "D")])
    assert _first_objective(model) == 6


def test_the_greedy_roster_is_the_default_start() -> None:
    """Without a hint the solve starts from the greedy roster, which here is feasible but
    grants one off-request fewer than the optimum; ``greedy_hint=False`` does without."""
    problem = Problem(
        4,
        (D,),
        (Staff("A"), Staff("B")),
        _every_day(4),
        requests=(Request("A", 0, "D", 5, on=False), Request("B", 3, "D", 5, on=False)),
        fairness=(Fairness(("A", "B"), frozenset({"D"}), 3),),
    )
    greedy = evaluate(problem, greedy_roster(problem).roster)
    assert greedy.feasible and greedy.objective == 5
    assert _first_objective(RosterModel(problem)) == 5
    assert RosterModel(problem).solve(20).objective == 0
    assert RosterModel(problem).solve(20, SolverSettings(greedy_hint=False)).objective == 0
