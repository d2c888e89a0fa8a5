"""The greedy roster: it keeps every hard rule it claims to check (judged by the independent
evaluator), says exactly which cover it leaves short, and respects locks and extra rules."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bench.month_seed import seed_month
from scheduling.rostering.curtois import read_curtois
from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.greedy import greedy_roster
from scheduling.rostering.harmony import build_instance, checker_rules, model_for
from scheduling.rostering.model import Progress
from scheduling.rostering.problem import Cover, Fairness, Lock, Problem, Request, ShiftType, Staff
from scheduling.rules import load_rules

FIXTURES = Path("/work/shared/fixtures/rostering")
D = ShiftType("D", 480)

#: Evaluator messages of the rules the greedy only aims at (see its module docstring).
AIMED_AT = (" days in a row from day ", " minutes, minimum ")


def _cover(*day_shift_need: tuple[int, str, int]) -> tuple[Cover, ...]:
    return tuple(Cover(day, shift, need, 10, 1) for day, shift, need in day_shift_need)


def _every_day(days: int, need: int = 1) -> tuple[Cover, ...]:
    return _cover(*((day, "D", need) for day in range(days)))


def _shortfall(problem: Problem, roster: list[tuple[str, int, str]]) -> dict[tuple[int, str], int]:
    staffed = Counter((day, shift) for _, day, shift in roster)
    return {
        (c.day, c.shift): c.requirement - staffed[c.day, c.shift]
        for c in problem.cover
        if staffed[c.day, c.shift] < c.requirement
    }


TINY = {
    # one person, at most 2 days in a row: the third day stays short.
    "max consecutive": (
        Problem(3, (D,), (Staff("A", max_consecutive_work=2),), _every_day(3)),
        {(2, "D"): 1},
    ),
    # E may not follow L; day 1's E stays short.
    "succession": (
        Problem(
            2,
            (ShiftType("E", 480), ShiftType("L", 480, frozenset({"E"}))),
            (Staff("A"),),
            _cover((0, "L", 1), (1, "E", 1)),
        ),
        {(1, "E"): 1},
    ),
    # a night ending 06:00, then a 07:00 early: below 11 h of rest.
    "minimum rest": (
        Problem(
            2,
            (ShiftType("N", 480, start_minute=22 * 60), ShiftType("E", 480, start_minute=7 * 60)),
            (Staff("A", min_rest_minutes=11 * 60),),
            _cover((0, "N", 1), (1, "E", 1)),
        ),
        {(1, "E"): 1},
    ),
    # both Saturdays wanted, one weekend allowed.
    "weekends": (
        Problem(14, (D,), (Staff("A", max_weekends=1),), _cover((5, "D", 1), (12, "D", 1))),
        {(12, "D"): 1},
    ),
    # one more D than allowed, then one more shift than the minutes allow.
    "max per type and minutes": (
        Problem(
            4,
            (D,),
            (Staff("A", max_shifts={"D": 2}), Staff("B", max_minutes=480)),
            _every_day(4),
        ),
        {(3, "D"): 1},
    ),
    # a day off on day 1 and an ineligible second person.
    "days off and eligibility": (
        Problem(
            2,
            (D, ShiftType("E", 480)),
            (Staff("A", days_off=frozenset({1})), Staff("B", eligible=frozenset({"E"}))),
            _every_day(2),
        ),
        {(1, "D"): 1},
    ),
    # two days off in a row required between working days 0 and 2.
    "min consecutive off": (
        Problem(3, (D,), (Staff("A", min_consecutive_off=2),), _cover((0, "D", 1), (2, "D", 1))),
        {(2, "D"): 1},
    ),
}


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_rules_are_kept_and_the_rest_reported(name: str) -> None:
    problem, short = TINY[name]
    result = greedy_roster(problem)
    assert evaluate(problem, result.roster).violations == ()
    assert result.uncovered == short


def test_locks_are_kept() -> None:
    problem = Problem(
        2,
        (D,),
        (Staff("A"), Staff("B")),
        _every_day(2),
        locks=(Lock("A", 0, None), Lock("B", 1, "D"), Lock("A", 1, None)),
    )
    result = greedy_roster(problem)
    assert result.roster == [("B", 0, "D"), ("B", 1, "D")]
    assert result.uncovered == {}


def test_an_off_request_is_granted_when_someone_else_can_work() -> None:
    problem = Problem(
        1, (D,), (Staff("A"), Staff("B")), _every_day(1), requests=(Request("A", 0, "D", 5, False),)
    )
    assert greedy_roster(problem).roster == [("B", 0, "D")]


def test_fairness_groups_are_kept_level() -> None:
    """A has fewer minutes to give, so load alone would favour B; the group wants 2 each."""
    problem = Problem(
        4,
        (D,),
        (Staff("A", max_minutes=1920), Staff("B")),
        _every_day(4),
        fairness=(Fairness(("A", "B"), frozenset({"D"}), 3),),
    )
    result = greedy_roster(problem)
    assert Counter(s for s, _, _ in result.roster) == {"A": 2, "B": 2}
    assert evaluate(problem, result.roster).objective == 0


def test_extra_rules_are_asked() -> None:
    """``admissible`` sees each candidate with the person's roster so far."""
    asked: list[tuple[str, int, str, dict[int, str]]] = []

    def not_a_on_day_0(staff: str, day: int, shift: str, mine: Mapping[int, str]) -> bool:
        asked.append((staff, day, shift, dict(mine)))
        return (staff, day) != ("A", 0)

    problem = Problem(2, (D,), (Staff("A"), Staff("B", days_off=frozenset({1}))), _every_day(2))
    result = greedy_roster(problem, not_a_on_day_0)
    assert result.roster == [("A", 1, "D"), ("B", 0, "D")]
    assert ("A", 0, "D", {}) in asked


def test_minimum_minutes_are_topped_up() -> None:
    problem = Problem(
        3, (D,), (Staff("A", min_minutes=960),), _cover((0, "D", 1), (1, "D", 0), (2, "D", 0))
    )
    result = greedy_roster(problem)
    assert evaluate(problem, result.roster).violations == ()
    assert len(result.roster) == 2


@pytest.mark.parametrize("name", ["Instance1.txt", "Instance2.txt"])
def test_curtois_instances(name: str) -> None:
    """Only the rules the greedy aims at may be broken, and the shortfall it reports is the
    evaluator's."""
    problem = read_curtois(FIXTURES / name)
    result = greedy_roster(problem)
    verdict = evaluate(problem, result.roster)
    assert [v for v in verdict.violations if not any(a in v for a in AIMED_AT)] == []
    assert result.uncovered == _shortfall(problem, result.roster)


def test_the_month_roster_keeps_the_conflict_checkers_verdicts(engine: Engine) -> None:
    """With :func:`checker_rules` the month's greedy roster covers everything and CP-SAT,
    given every verdict as a constraint, takes it whole as its first incumbent."""
    seeded = seed_month(engine)
    with engine.connect() as conn:
        rules = load_rules(conn, seeded.context.default_rules)
        instance = build_instance(
            conn, seeded.roster_id, seeded.coverage, rules, seeded.options, seeded.wishes
        )
    result = greedy_roster(instance.problem, checker_rules(instance))
    verdict = evaluate(instance.problem, result.roster)
    assert verdict.violations == ()
    assert result.uncovered == {}
    assert verdict.cover_penalty == 0

    model = model_for(instance)
    model.hint(result.roster)
    first: list[float | None] = []

    def on_progress(progress: Progress) -> None:
        if progress.objective is not None and not first:
            first.append(progress.objective)
            model.stop()

    model.solve(60, on_progress=on_progress)
    assert first == [verdict.objective]
