"""Roster generation jobs on the runner's threads: progress, stop, time limit, failure, and
a job whose process died. Six physicians over two weeks: the first roster comes within a
second, optimality is not proven in the seconds the tests give it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from bench.month_seed import shift_type
from hub.roster_jobs import RosterJobRunner
from scheduling.conflicts import check, planned_from_row
from scheduling.context import SchedulingContext
from scheduling.errors import InvalidInput, StateConflict
from scheduling.physicians import create_physician
from scheduling.publish import publish_roster
from scheduling.records import shifts_with_types
from scheduling.rostering.jobs import get_job, parse_request
from scheduling.rosters import create_roster, get_roster
from scheduling.rules import load_rules
from scheduling.tables import roster_generation_jobs, shifts
from scheduling.times import utcnow
from tests.scheduling.roster_seed import ADMIN, context_for

START = date(2027, 3, 1)
COVERAGE: list[dict[str, Any]] = [
    {"code": "DAY", "required": 2},
    {"code": "EVE", "required": 1},
    {"code": "NIGHT", "required": 1, "under_weight": 150},
]
OPTIONS: dict[str, Any] = {
    "full_time_weekly_hours": 40,
    "min_load": 0.6,
    "max_per_kind_per_fte": {"night": 4},
    "max_weekends": 2,
}


def seed_clinic(engine: Engine, people: int = 6, days: int = 14) -> int:
    """``people`` physicians, day/evening/night shift types, a draft roster; its id."""
    for i in range(people):
        values = {
            "name": f"Dr {i}",
            "specialties": ["internal"],
            "locations": ["Main"],
            "fte": 0.5 if i % 3 == 0 else 1.0,
        }
        create_physician(engine, values)
    for code, kind, start, minutes in (
        ("DAY", "day", "07:00", 600),
        ("EVE", "evening", "14:00", 600),
        ("NIGHT", "night", "20:00", 720),
    ):
        shift_type(engine, code, kind, start, minutes)
    last = (START + timedelta(days=days - 1)).isoformat()
    return int(create_roster(engine, ADMIN, "March", START.isoformat(), last)["id"])


def body(time_limit: float, **extra: Any) -> dict[str, Any]:
    return {"coverage": COVERAGE, "time_limit": time_limit, "options": OPTIONS, **extra}


def wait_for(read: Any, accept: Any, timeout: float = 30.0, every: float = 0.2) -> dict[str, Any]:
    """Poll ``read()`` until ``accept`` says yes; the last answer otherwise (the assert
    after it then says what was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if accept(value) or time.monotonic() > deadline:
            return dict(value)
        time.sleep(every)


def assert_draft_passes_the_checker(
    engine: Engine,
    context: SchedulingContext,
    roster_id: int,
    report: dict[str, Any],
    kept: int = 0,
) -> None:
    """The draft's shifts pass the conflict checker and are the job's plus ``kept`` that
    were there before (locked)."""
    with engine.connect() as conn:
        rows = conn.execute(
            shifts_with_types().where(
                shifts.c.roster_id == roster_id, shifts.c.status == "assigned"
            )
        ).all()
        rules = load_rules(conn, context.default_rules)
        assert check(conn, rules, [planned_from_row(r) for r in rows]) == []
    assert rows, "the best roster so far was written"
    created = set(report["created_shift_ids"])
    assert created <= {r.id for r in rows} and len(rows) == len(created) + kept
    assert report["assignments"] == len(rows)


@pytest.fixture
def context(engine: Engine) -> SchedulingContext:
    return context_for(engine)


@pytest.fixture
def runner(engine: Engine, context: SchedulingContext) -> Iterator[RosterJobRunner]:
    started = RosterJobRunner(engine, context, tick=0.2).start()
    yield started
    started.close()


def test_stop_keeps_the_best_roster(
    engine: Engine, context: SchedulingContext, runner: RosterJobRunner
) -> None:
    roster = seed_clinic(engine)
    job = runner.submit(ADMIN, roster, parse_request(body(60)))
    assert job["state"] == "queued" and job["progress"]["objective"] is None

    seen = wait_for(
        lambda: get_job(engine, job["id"]), lambda j: j["progress"]["objective"] is not None
    )
    assert seen["state"] == "running", seen
    assert seen["progress"]["bound"] <= seen["progress"]["objective"]
    assert 0 <= seen["progress"]["gap"] <= 1

    # a stop from another process: only the database flag
    with engine.begin() as conn:
        conn.execute(
            update(roster_generation_jobs)
            .where(roster_generation_jobs.c.id == job["id"])
            .values(stop_requested=1)
        )
    assert runner.wait(job["id"], 20)
    done = get_job(engine, job["id"])
    assert done["state"] == "stopped", done
    report = done["report"]
    assert report["status"] == "FEASIBLE" and report["objective"] is not None
    assert report["solve_seconds"] < 30
    assert done["progress"]["objective"] == report["objective"]
    assert_draft_passes_the_checker(engine, context, roster, report)


def test_a_job_runs_to_its_time_limit_and_succeeds(
    engine: Engine, context: SchedulingContext, runner: RosterJobRunner
) -> None:
    roster = seed_clinic(engine)
    job = runner.submit(ADMIN, roster, parse_request(body(3)))
    assert runner.wait(job["id"], 30)
    done = get_job(engine, job["id"])
    assert done["state"] == "succeeded", done
    assert done["error"] is None and done["finished_at"] is not None
    report = done["report"]
    assert report["status"] in ("FEASIBLE", "OPTIMAL")
    assert report["status"] == "OPTIMAL" or report["solve_seconds"] >= 2.5
    assert report["objective"] == report["penalty"]
    assert {v["rule"] for v in report["violations"]} <= {"cover_under", "cover_over", "fairness"}
    assert len(report["fairness"]) == 6
    assert_draft_passes_the_checker(engine, context, roster, report)


def test_one_active_job_per_roster_and_only_drafts(
    engine: Engine, context: SchedulingContext, runner: RosterJobRunner
) -> None:
    roster = seed_clinic(engine)
    first = runner.submit(ADMIN, roster, parse_request(body(60)))
    with pytest.raises(StateConflict, match="already has generation job"):
        runner.submit(ADMIN, roster, parse_request(body(5)))
    runner.stop(first["id"])
    assert runner.wait(first["id"], 20)
    assert get_job(engine, first["id"])["state"] == "stopped"

    other = int(create_roster(engine, ADMIN, "April", "2027-04-01", "2027-04-07")["id"])
    version = get_roster(engine, other, include_drafts=True)["version"]
    publish_roster(engine, context, ADMIN, other, version)
    with pytest.raises(StateConflict, match="only a draft roster can be generated"):
        runner.submit(ADMIN, other, parse_request(body(5)))
    with pytest.raises(InvalidInput, match="unknown shift type codes \\['SWING'\\]"):
        runner.submit(
            ADMIN, roster, parse_request(body(5, coverage=[{"code": "SWING", "required": 1}]))
        )
    with engine.connect() as conn:
        count = conn.execute(roster_generation_jobs.select()).all()
    assert [r.id for r in count] == [first["id"]], "refusals leave no job behind"


def test_a_failure_ends_the_job_failed_with_the_error(
    engine: Engine, runner: RosterJobRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scheduling.rostering.harmony as harmony

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(harmony, "generate_draft", crash)
    roster = seed_clinic(engine, people=3, days=7)
    job = runner.submit(ADMIN, roster, parse_request(body(5)))
    assert runner.wait(job["id"], 20)
    done = get_job(engine, job["id"])
    assert done["state"] == "failed"
    assert done["error"] == "RuntimeError: solver crashed"
    assert done["report"] is None and done["finished_at"] is not None


def test_a_job_whose_process_died_reads_as_failed(
    engine: Engine, context: SchedulingContext
) -> None:
    roster = seed_clinic(engine, people=3, days=7)
    dead = RosterJobRunner(engine, context, max_running=0)  # never runs, never beats
    job = dead.submit(ADMIN, roster, parse_request(body(5)))
    with engine.begin() as conn:
        conn.execute(
            update(roster_generation_jobs)
            .where(roster_generation_jobs.c.id == job["id"])
            .values(state="running", heartbeat_at=utcnow() - timedelta(seconds=31))
        )
    failed = get_job(engine, job["id"])
    assert failed["state"] == "failed"
    assert failed["error"].startswith("interrupted")
    # the roster is free again
    again = RosterJobRunner(engine, context, max_running=0).submit(
        ADMIN, roster, parse_request(body(5))
    )
    assert again["state"] == "queued"
