"""The Curtois & Qu reader on both shipped instances and on malformed input."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduling.rostering.curtois import CurtoisFormatError, parse_curtois, read_curtois
from scheduling.rostering.problem import Cover, Request

FIXTURES = Path("/work/shared/fixtures/rostering")


def test_instance1() -> None:
    problem = read_curtois(FIXTURES / "Instance1.txt")
    assert problem.days == 14
    assert problem.first_weekday == 0
    assert [(s.id, s.minutes, s.forbidden_next) for s in problem.shift_types] == [
        ("D", 480, frozenset())
    ]
    assert [s.id for s in problem.staff] == list("ABCDEFGH")
    a = problem.staff[0]
    assert dict(a.max_shifts) == {"D": 14}
    assert (a.max_minutes, a.min_minutes) == (4320, 3360)
    assert (a.max_consecutive_work, a.min_consecutive_work) == (5, 2)
    assert (a.min_consecutive_off, a.max_weekends) == (2, 1)
    assert a.days_off == frozenset({0})
    assert a.eligible == frozenset({"D"})
    assert len(problem.cover) == 14
    assert problem.cover[1] == Cover(
        day=1, shift="D", requirement=7, under_weight=100, over_weight=1
    )
    on = [r for r in problem.requests if r.on]
    off = [r for r in problem.requests if not r.on]
    assert (len(on), len(off)) == (21, 5)
    assert off[2] == Request("F", 8, "D", 3, on=False)


def test_instance2() -> None:
    problem = read_curtois(FIXTURES / "Instance2.txt")
    assert (problem.days, len(problem.staff), len(problem.shift_types)) == (14, 14, 2)
    shifts = {s.id: s for s in problem.shift_types}
    assert shifts["L"].forbidden_next == frozenset({"E"})
    assert shifts["E"].forbidden_next == frozenset()
    staff = {s.id: s for s in problem.staff}
    assert staff["D"].eligible == frozenset({"E"})  # E=14|L=0
    assert staff["E"].eligible == frozenset({"L"})  # E=0|L=14
    assert (staff["K"].max_minutes, staff["K"].min_minutes, staff["K"].min_consecutive_work) == (
        2160,
        1200,
        1,
    )
    assert staff["N"].days_off == frozenset({6})
    assert len(problem.cover) == 28
    assert sum(c.requirement for c in problem.cover) == 108
    off = [r for r in problem.requests if not r.on]
    assert (len(off), sum(r.weight for r in off)) == (12, 18)


def test_several_days_off_and_staff_without_any() -> None:
    text = (
        "SECTION_HORIZON\r\n7\r\n\r\nSECTION_SHIFTS\r\nD,480,\r\nN,600,D|N\r\n"
        "SECTION_STAFF\r\nA,D=7|N=2,4320,0,5,1,1,1\r\nB,D=7|N=0,4320,0,5,1,1,1\r\n"
        "SECTION_DAYS_OFF\r\nA,2,5\r\n"
        "SECTION_SHIFT_ON_REQUESTS\r\nSECTION_SHIFT_OFF_REQUESTS\r\nSECTION_COVER\r\n"
    )
    problem = parse_curtois(text)
    assert problem.staff[0].days_off == frozenset({2, 5})
    assert problem.staff[1].days_off == frozenset()
    assert problem.shift_types[1].forbidden_next == frozenset({"D", "N"})
    assert problem.requests == () and problem.cover == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7\n", "data before the first SECTION_"),
        ("SECTION_SHIFTS\nD,480,\n", "no SECTION_HORIZON"),
        ("SECTION_HORIZON\nseven\n", "'seven' is not an integer"),
        ("SECTION_HORIZON\n7\nSECTION_STAFF\nA,D=7,4320\n", "line 4: a staff row has 8 fields"),
    ],
)
def test_malformed(text: str, message: str) -> None:
    with pytest.raises(CurtoisFormatError, match=message):
        parse_curtois(text)
