"""A generated month: 30 physicians, five shift types, March 2027 in New York (DST on the
14th), real rules; the draft is written and published through the conflict checker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, select

from bench.month_seed import TIME_LIMIT, seed_month
from scheduling.conflicts import check, planned_from_row
from scheduling.publish import publish_roster
from scheduling.records import shifts_with_types
from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.harmony import build_instance, generate_draft
from scheduling.rostering.harmony_report import GenerationReport
from scheduling.rosters import get_roster
from scheduling.rules import load_rules
from scheduling.tables import shifts


def _print(report: GenerationReport) -> None:
    print(
        f"\nstatus {report.status} objective {report.objective} bound {report.bound:g} "
        f"solve {report.solve_seconds} s assignments {report.assignments} "
        f"violations {len(report.violations)} spread {report.spread}"
    )
    for rule, count in sorted(Counter(v.rule for v in report.violations).items()):
        print(f"  {rule}: {count}")


def test_generated_month_publishes_through_the_conflict_checker(engine: Engine) -> None:
    seeded = seed_month(engine)
    people, march, context, admin = seeded.people, seeded.roster_id, seeded.context, seeded.actor
    coverage, options, wishes = seeded.coverage, seeded.options, seeded.wishes

    report = generate_draft(
        engine, context, admin, march, coverage, TIME_LIMIT, options=options, wishes=wishes
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
        instance = build_instance(conn, march, coverage, rules, options, wishes)
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
    for cover in coverage:
        for day in range(31):
            when = date(2027, 3, 1) + timedelta(days=day)
            if when.weekday() in cover.weekdays and staffed[when, cover.code] < cover.required:
                assert any(
                    v.dates == (when.isoformat(),) and cover.code in v.message for v in under
                )

    version = get_roster(engine, march, include_drafts=True)["version"]
    published = publish_roster(engine, context, admin, march, version).data
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
