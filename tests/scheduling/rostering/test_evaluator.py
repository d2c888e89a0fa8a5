"""The independent evaluator on hand-made rosters: each hard rule broken exactly once, and
each penalty worked out by hand.

The problem: two weeks from a Monday; A may work E (06:00-14:00, never followed by L),
L (14:00-22:00), N (untimed, at most one); not X. A needs 2-4 days in a row, 2 days off in a
row, 960-2400 minutes, 12 h rest, one weekend at most. The base roster (E on days 7-9) is
feasible.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scheduling.rostering.curtois import read_curtois
from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.problem import (
    Cover,
    Fairness,
    Lock,
    Problem,
    Request,
    ShiftType,
    Staff,
)

A = Staff(
    id="A",
    max_shifts={"N": 1},
    min_minutes=960,
    max_minutes=2400,
    min_consecutive_work=2,
    max_consecutive_work=4,
    min_consecutive_off=2,
    max_weekends=1,
    days_off=frozenset({10}),
    eligible=frozenset({"E", "L", "N"}),
    min_rest_minutes=720,
)
PROBLEM = Problem(
    days=14,
    shift_types=(
        ShiftType("E", 480, frozenset({"L"}), start_minute=360),
        ShiftType("L", 480, start_minute=840),
        ShiftType("N", 480),
        ShiftType("X", 480),
    ),
    staff=(A,),
)
BASE = [("A", 7, "E"), ("A", 8, "E"), ("A", 9, "E")]


def _on(*days_and_shifts: tuple[int, str]) -> list[tuple[str, int, str]]:
    return [("A", day, shift) for day, shift in days_and_shifts]


def test_base_roster_is_feasible_and_free() -> None:
    verdict = evaluate(PROBLEM, BASE)
    assert verdict.violations == ()
    assert verdict.feasible and verdict.objective == 0


@pytest.mark.parametrize(
    ("roster", "problem", "message"),
    [
        (
            _on((7, "E"), (8, "E"), (9, "E"), (10, "E")),
            PROBLEM,
            "A works E on day 10, a fixed day off",
        ),
        (_on((7, "E"), (8, "X"), (9, "E")), PROBLEM, "A is not eligible for X (day 8)"),
        (_on((7, "E"), (8, "L"), (9, "L")), PROBLEM, "A: L on day 8 may not follow E"),
        (
            _on((7, "L"), (8, "E"), (9, "E")),
            PROBLEM,
            "A rests 480 minutes between days 7 and 8",
        ),
        (_on((7, "N"), (8, "N"), (9, "E")), PROBLEM, "A works 2 N shifts, limit 1"),
        (_on((13, "E")), PROBLEM, "A works 480 minutes, minimum 960"),
        (
            _on(*((d, "E") for d in (0, 1, 2, 7, 8, 9))),
            PROBLEM,
            "A works 2880 minutes, maximum 2400",
        ),
        (
            _on(*((d, "E") for d in range(7, 12))),
            replace(PROBLEM, staff=(replace(A, days_off=frozenset()),)),
            "A works 5 days in a row from day 7",
        ),
        (_on((0, "E"), (1, "E"), (7, "E")), PROBLEM, "A works only 1 days in a row from day 7"),
        (
            _on((7, "E"), (8, "E"), (10, "E"), (11, "E")),
            replace(PROBLEM, staff=(replace(A, days_off=frozenset()),)),
            "A has only 1 days off in a row from day 9",
        ),
        (
            _on((5, "E"), (6, "E"), (12, "E"), (13, "E")),
            PROBLEM,
            "A works 2 weekends, limit 1",
        ),
        (
            [*BASE, ("A", 8, "L")],
            PROBLEM,
            "A has more than one shift on day 8",
        ),
        (BASE, replace(PROBLEM, locks=(Lock("A", 8, "L"),)), "A is locked to L on day 8, has E"),
        (
            BASE,
            replace(PROBLEM, locks=(Lock("A", 9, None),)),
            "A is locked to None on day 9, has E",
        ),
        ([*BASE, ("Z", 1, "E")], PROBLEM, "unknown staff 'Z'"),
        ([*BASE, ("A", 1, "Q")], PROBLEM, "unknown shift 'Q'"),
        ([*BASE, ("A", 14, "E")], PROBLEM, "day 14 is outside the horizon"),
    ],
)
def test_each_hard_rule_broken_once(
    roster: list[tuple[str, int, str]], problem: Problem, message: str
) -> None:
    assert evaluate(problem, roster).violations == (message,)


def test_runs_touching_the_horizon_ends() -> None:
    """A one-day run on day 0 or 13 may continue outside (open edges, the benchmark's rule);
    days off at the ends are never too few."""
    roster = _on((0, "E"), (7, "E"), (8, "E"), (13, "E"))
    assert evaluate(PROBLEM, roster).violations == ()
    closed = replace(PROBLEM, open_edges=False)
    assert evaluate(closed, roster).violations == (
        "A works only 1 days in a row from day 0",
        "A works only 1 days in a row from day 13",
    )


def test_penalties_by_hand() -> None:
    problem = replace(
        PROBLEM,
        staff=(A, Staff(id="B")),
        cover=(
            Cover(7, "E", requirement=2, under_weight=100, over_weight=1),  # 1 short: 100
            Cover(8, "E", requirement=0, under_weight=100, over_weight=1),  # 1 extra: 1
            Cover(9, "L", requirement=1, under_weight=50, over_weight=1),  # 1 short: 50
            Cover(9, "E", requirement=1, under_weight=100, over_weight=1),  # met: 0
        ),
        requests=(
            Request("A", 7, "E", 3, on=True),  # granted: 0
            Request("A", 8, "L", 2, on=True),  # works E instead: 2
            Request("A", 9, "E", 5, on=False),  # works it: 5
            Request("A", 11, "E", 4, on=False),  # off that day: 0
        ),
        fairness=(Fairness(("A", "B"), frozenset({"E"}), weight=7),),  # 3 E against 0: 21
    )
    verdict = evaluate(problem, BASE)
    assert verdict.feasible
    assert (verdict.cover_penalty, verdict.request_penalty, verdict.fairness_penalty) == (
        151,
        7,
        21,
    )
    assert verdict.objective == 179


def test_nobody_working_on_instance1_scores_7137() -> None:
    """The README's sanity check."""
    problem = read_curtois(Path("/work/shared/fixtures/rostering/Instance1.txt"))
    verdict = evaluate(problem, [])
    assert verdict.objective == 7137
    assert not verdict.feasible  # everyone is short of minimum minutes
