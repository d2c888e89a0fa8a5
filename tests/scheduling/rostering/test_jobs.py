"""A generation request from JSON: what it accepts, what it refuses and why; the gap."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pytest

from scheduling.errors import InvalidInput
from scheduling.rostering.harmony import ALL_DAYS, Coverage, GenerationOptions, Wish
from scheduling.rostering.jobs import JobProgress, finite, gap, parse_request


def test_a_full_request_parses_and_round_trips() -> None:
    data: dict[str, Any] = {
        "coverage": [
            {"code": "DAY", "required": 2, "weekdays": [0, 1, 2, 3, 4]},
            {"code": "NIGHT", "required": 1, "under_weight": 150, "over_weight": 0},
        ],
        "time_limit": 30,
        "options": {"max_per_kind_per_fte": {"night": 4}, "min_load": 0.5, "max_weekends": None},
        "wishes": [
            {"physician_id": 3, "day": "2027-03-20"},
            {"physician_id": 4, "day": "2027-03-09", "code": "NIGHT", "on": True, "weight": 5},
        ],
    }
    request = parse_request(data)
    assert request.coverage == (
        Coverage("DAY", 2, frozenset(range(5))),
        Coverage("NIGHT", 1, ALL_DAYS, 150, 0),
    )
    assert request.time_limit == 30.0
    assert request.options == GenerationOptions(
        max_per_kind_per_fte={"night": 4}, min_load=0.5, max_weekends=None
    )
    assert request.wishes == (
        Wish(3, date(2027, 3, 20), None),
        Wish(4, date(2027, 3, 9), "NIGHT", True, 5),
    )
    assert request.codes() == {"DAY", "NIGHT"}
    assert parse_request(request.as_json()) == request


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_limit": 0}, "time_limit must be between 1 and 600, not 0"),
        ({"time_limit": 600.5}, "time_limit must be between 1 and 600"),
        ({"time_limit": "60"}, "time_limit must be a number"),
        ({"time_limit": True}, "time_limit must be a number"),
        ({"coverage": []}, "coverage must be a non-empty list"),
        ({"coverage": [{"code": "DAY"}]}, "coverage[0]: missing required"),
        ({"coverage": [{"code": "DAY", "required": -1}]}, "coverage[0].required must be"),
        ({"coverage": [{"code": "DAY", "required": 1, "weekdays": []}]}, "weekdays must be"),
        ({"coverage": [{"code": "DAY", "required": 1, "shift": 2}]}, "unknown fields ['shift']"),
        ({"options": {"nights": 3}}, "options: unknown fields ['nights']"),
        ({"options": {"min_load": 2}}, "options.min_load must be between 0 and 1"),
        ({"wishes": [{"physician_id": 1, "day": "20 March"}]}, "is not YYYY-MM-DD"),
        ({"wishes": [{"physician_id": 1, "day": "2027-03-01", "on": True}]}, "names the shift"),
        ({"colour": "red"}, "request: unknown fields ['colour']"),
    ],
)
def test_what_a_request_gets_wrong_is_named(change: dict[str, Any], message: str) -> None:
    data = {"coverage": [{"code": "DAY", "required": 1}], "time_limit": 10, **change}
    with pytest.raises(InvalidInput) as refused:
        parse_request(data)
    assert message in str(refused.value)


def test_a_request_needs_a_time_limit() -> None:
    with pytest.raises(InvalidInput, match="time_limit"):
        parse_request({"coverage": [{"code": "DAY", "required": 1}]})


def test_gap_is_cp_sat_relative_gap() -> None:
    assert gap(200, 190) == 0.05
    assert gap(0, 0) == 0.0
    assert gap(0.5, 0) == 0.5  # divided by at least 1
    assert gap(None, 10) is None and gap(10, None) is None
    assert JobProgress(1.0, 100, 75).gap == 0.25


def test_json_never_holds_infinity() -> None:
    report = {"bound": -math.inf, "rows": [(1.5, math.nan)], "name": "x"}
    assert finite(report) == {"bound": None, "rows": [[1.5, None]], "name": "x"}
