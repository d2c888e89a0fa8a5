"""A generated month: 30 physicians, five shift types, March 2027 in New York (DST on the
14th), real rules; the draft is written and published through the conflict checker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, select

from scheduling.conflicts import check, planned_from_row
from scheduling.physicians import create_physician
from scheduling.publish import publish_roster
from scheduling.records import shifts_with_types
from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.harmony import (
    Coverage,
    GenerationOptions,
    Wish,
    build_instance,
    generate_draft,
)
from scheduling.rostering.harmony_report import GenerationReport
from scheduling.rosters import create_roster, get_roster
from scheduling.rules import load_rules
from scheduling.shift_types import create_shift_type
from scheduling.shifts import run_changes
from scheduling.tables import shifts
from tests.scheduling.roster_seed import ADMIN, TZ, context_for

WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})
COVERAGE = (
    Coverage("DAY", 4, WEEKDAYS),
    Coverage("DAY", 3, WEEKEND),
    Coverage("EVE", 2),
    Coverage("NIGHT", 2, under_weight=150),
    Coverage("CLINIC", 2, WEEKDAYS),
    Coverage("WKND", 1, WEEKEND),
)
OPTIONS = GenerationOptions(
    full_time_weekly_hours=34, min_load=0.6, max_per_kind_per_fte={"night": 4}, max_weekends=3
)
TIME_LIMIT = 20.0


def _seed(engine: Engine) -> dict[str, Any]:
    """30 physicians (8 cardiologists, 8 at North too, FTE 0.5/0.8/1.0, 10 with a blackout
    block), five shift types, a February roster ending in a night, the March draft with one
    shift assigned already."""
    people = []
    for i in range(30):
        cardio = i % 4 == 0
        blackout = []
        if i % 3 == 0:
            begin = date(2027, 3, 1) + timedelta(days=(i * 3) % 26)
            blackout = [(begin + timedelta(days=k)).isoformat() for k in range(3 + i % 5)]
        values = {
            "name": f"Dr {i:02d}",
            "specialties": ["internal", "cardiology"] if cardio else ["internal"],
            "locations": ["Main", "North"] if cardio or i in (25, 26) else ["Main"],
            "fte": 0.5 if i % 5 == 0 else 0.8 if i % 5 == 1 else 1.0,
            "blackout_dates": blackout,
        }
        people.append(int(create_physician(engine, values)["id"]))

    def kind(code: str, kind: str, start: str, minutes: int, **extra: Any) -> int:
        values = {
            "code": code,
            "name": code.title(),
            "kind": kind,
            "start_time": start,
            "duration_minutes": minutes,
            "service": "Hospital medicine",
            "location": "Main",
            "timezone": TZ,
            "required_specialties": ["internal"],
            **extra,
        }
        return int(create_shift_type(engine, values)["id"])

    types = {
        "DAY": kind("DAY", "day", "07:00", 600),
        "EVE": kind("EVE", "evening", "14:00", 600),
        "NIGHT": kind("NIGHT", "night", "20:00", 720),
        "CLINIC": kind(
            "CLINIC", "clinic", "08:00", 480, location="North", required_specialties=["cardiology"]
        ),
        "WKND": kind("WKND", "weekend", "08:00", 720),
    }
    february = int(create_roster(engine, ADMIN, "February 2027", "2027-02-01", "2027-02-28")["id"])
    march = int(create_roster(engine, ADMIN, "March 2027", "2027-03-01", "2027-03-31")["id"])
    context = context_for(engine)
    run_changes(
        engine,
        context,
        ADMIN,
        [
            {
                "op": "create",
                "roster_id": february,
                "shift_type_id": types["NIGHT"],
                "date": "2027-02-28",
                "physician_id": people[1],
            },
            {
                "op": "create",
                "roster_id": march,
                "shift_type_id": types["CLINIC"],
                "date": "2027-03-15",
                "physician_id": people[4],
            },
        ],
    )
    return {"people": people, "types": types, "march": march, "context": context}


def _print(report: GenerationReport) -> None:
    print(
        f"\nstatus {report.status} objective {report.objective} bound {report.bound:g} "
        f"solve {report.solve_seconds} s assignments {report.assignments} "
        f"violations {len(report.violations)} spread {report.spread}"
    )
    for rule, count in sorted(Counter(v.rule for v in report.violations).items()):
        print(f"  {rule}: {count}")


def test_generated_month_publishes_through_the_conflict_checker(engine: Engine) -> None:
    seeded = _seed(engine)
    people, march, context = seeded["people"], seeded["march"], seeded["context"]
    wishes = [Wish(people[7], date(2027, 3, 20), None), Wish(people[8], date(2027, 3, 9), "NIGHT")]

    report = generate_draft(
        engine, context, ADMIN, march, COVERAGE, TIME_LIMIT, options=OPTIONS, wishes=wishes
    )
    _print(report)

    assert report.status in ("OPTIMAL", "FEASIBLE")
    assert report.hard_violations == ()
    assert all(v.penalty is not None and v.penalty > 0 for v in report.violations)
    assert report.penalty == sum(v.penalty or 0 for v in report.violations)
    assert report.objective == report.penalty
    assert report.bound <= report.objective

    with engine.connect() as conn:
        rows = conn.execute(
            shifts_with_types().where(shifts.c.roster_id == march, shifts.c.status == "assigned")
        ).all()
        rules = load_rules(conn, context.default_rules)
        instance = build_instance(conn, march, COVERAGE, rules, OPTIONS, wishes)
        assert len(rows) == report.assignments == len(report.created_shift_ids) + 1
        assert check(conn, rules, [planned_from_row(r) for r in rows]) == []
    # the stored draft, read back into the problem's terms, is what the report judged
    evaluation = evaluate(instance.problem, _local_days(rows))
    assert evaluation.feasible, evaluation.violations
    assert evaluation.objective == report.penalty

    # the locked clinic stayed, nobody works a blackout date or the night's morning
    assert any(r.physician_id == people[4] and r.type_code == "CLINIC" for r in rows)
    assert not any(
        r.physician_id == people[1] and _local_date(r) == date(2027, 3, 1) and r.type_code == "DAY"
        for r in rows
    )

    # fairness: one row per physician, adding up to the draft; FTE-scaled loads
    loads = {load.physician_id: load for load in report.fairness}
    assert set(loads) == set(people)
    assert sum(load.shifts for load in report.fairness) == len(rows)
    per_person = Counter(r.physician_id for r in rows)
    assert all(loads[p].shifts == per_person[p] for p in people)
    nights = Counter(r.physician_id for r in rows if r.type_kind == "night")
    assert all(loads[p].nights == nights[p] <= 4 for p in people)
    assert all(0.5 <= x.relative_load <= 1.5 for x in report.fairness)
    assert report.spread == round(
        max(x.relative_load for x in report.fairness)
        - min(x.relative_load for x in report.fairness),
        3,
    )
    # every uncovered need is in the list, with its date and price
    staffed = Counter((_local_date(r), r.type_code) for r in rows)
    under = [v for v in report.violations if v.rule == "cover_under"]
    for cover in COVERAGE:
        for day in range(31):
            when = date(2027, 3, 1) + timedelta(days=day)
            if when.weekday() in cover.weekdays and staffed[when, cover.code] < cover.required:
                assert any(
                    v.dates == (when.isoformat(),) and cover.code in v.message for v in under
                )

    version = get_roster(engine, march, include_drafts=True)["version"]
    published = publish_roster(engine, context, ADMIN, march, version).data
    assert published["status"] == "published"
    with engine.connect() as conn:
        total = conn.execute(select(shifts.c.id).where(shifts.c.roster_id == march)).all()
    assert len(total) == len(rows)


def _local_date(row: Any) -> date:
    from scheduling.times import local

    return local(row.start, row.type_timezone).date()


def _local_days(rows: Sequence[Any]) -> list[tuple[str, int, str]]:
    return [
        (str(r.physician_id), (_local_date(r) - date(2027, 3, 1)).days, r.type_code) for r in rows
    ]
