"""POST /api/rosters/{id}/generate answers at once; the job is followed, stopped and listed
through the API; refusals come before any job exists."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from api.app import create_app
from hub.runtime import HubRuntime
from scheduling.publish import publish_roster
from scheduling.rostering.jobs import get_job
from scheduling.rosters import get_roster
from scheduling.tables import roster_generation_jobs
from scheduling.times import utcnow
from tests.hub.test_roster_jobs import (
    assert_draft_passes_the_checker,
    body,
    seed_clinic,
    wait_for,
)
from tests.scheduling.roster_seed import ADMIN, context_for


def _job(client: TestClient, job_id: int) -> dict[str, Any]:
    answer = client.get(f"/api/roster-jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _finished(client: TestClient, job_id: int) -> dict[str, Any]:
    return wait_for(lambda: _job(client, job_id), lambda j: j["state"] not in ("queued", "running"))


def test_generate_answers_at_once_then_progress_then_stop(
    client: TestClient, engine: Engine
) -> None:
    roster = seed_clinic(engine)
    began = time.monotonic()
    started = client.post(f"/api/rosters/{roster}/generate", json=body(60))
    assert time.monotonic() - began < 5, "the request does not wait for the solve"
    assert started.status_code == 202, started.text
    job = started.json()
    assert started.headers["Location"] == f"/api/roster-jobs/{job['id']}"
    assert job["state"] in ("queued", "running") and job["roster_id"] == roster
    assert job["request"]["time_limit"] == 60 and job["request"]["coverage"][0]["code"] == "DAY"

    seen = wait_for(
        lambda: _job(client, job["id"]), lambda j: j["progress"]["objective"] is not None
    )
    assert seen["state"] == "running", seen
    assert seen["progress"]["bound"] <= seen["progress"]["objective"]
    assert seen["progress"]["gap"] is not None and seen["report"] is None

    second = client.post(f"/api/rosters/{roster}/generate", json=body(5))
    assert second.status_code == 409
    assert second.json()["rule"] == "generation_running"
    assert f"already has generation job {job['id']}" in second.json()["detail"]

    stopping = client.post(f"/api/roster-jobs/{job['id']}/stop")
    assert stopping.status_code == 202, stopping.text
    assert stopping.json()["stop_requested"] is True
    done = _finished(client, job["id"])
    assert done["state"] == "stopped", done
    report = done["report"]
    assert report["status"] == "FEASIBLE" and report["objective"] is not None
    assert {"rule", "physician_id", "dates", "penalty", "message"} <= set(report["violations"][0])
    assert len(report["fairness"]) == 6
    assert_draft_passes_the_checker(engine, context_for(engine), roster, report)

    again = client.post(f"/api/roster-jobs/{job['id']}/stop")
    assert again.status_code == 200 and again.json()["state"] == "stopped"
    listed = client.get(f"/api/rosters/{roster}/generations")
    assert listed.status_code == 200
    assert [j["id"] for j in listed.json()] == [job["id"]]


def test_a_job_that_reaches_its_time_limit_succeeds(client: TestClient, engine: Engine) -> None:
    roster = seed_clinic(engine)
    started = client.post(f"/api/rosters/{roster}/generate", json=body(2))
    assert started.status_code == 202, started.text
    done = _finished(client, started.json()["id"])
    assert done["state"] == "succeeded", done
    assert done["report"]["status"] in ("FEASIBLE", "OPTIMAL")
    assert done["progress"]["objective"] == done["report"]["objective"]
    assert done["started_at"] <= done["finished_at"]
    assert_draft_passes_the_checker(engine, context_for(engine), roster, done["report"])


def test_refusals_come_before_any_job(client: TestClient, engine: Engine) -> None:
    roster = seed_clinic(engine, people=2, days=7)
    unknown = client.post(
        f"/api/rosters/{roster}/generate",
        json=body(5, coverage=[{"code": "SWING", "required": 1}]),
    )
    assert unknown.status_code == 422
    assert "unknown shift type codes ['SWING']" in unknown.json()["detail"]
    for limit in (0.5, 601):
        answer = client.post(f"/api/rosters/{roster}/generate", json=body(limit))
        assert answer.status_code == 422
        assert "time_limit must be between 1 and 600" in answer.json()["detail"]
    malformed = client.post(f"/api/rosters/{roster}/generate", json={"coverage": "DAY"})
    assert malformed.status_code == 422
    weekday = client.post(
        f"/api/rosters/{roster}/generate",
        json=body(5, coverage=[{"code": "DAY", "required": 1, "weekdays": [7]}]),
    )
    assert weekday.status_code == 422
    assert "weekdays[] must be between 0 and 6" in weekday.json()["detail"]
    assert client.post("/api/rosters/999/generate", json=body(5)).status_code == 404

    version = get_roster(engine, roster, include_drafts=True)["version"]
    publish_roster(engine, context_for(engine), ADMIN, roster, version)
    published = client.post(f"/api/rosters/{roster}/generate", json=body(5))
    assert published.status_code == 409
    assert published.json()["rule"] == "roster_published"
    assert "only a draft roster can be generated" in published.json()["detail"]

    assert client.get(f"/api/rosters/{roster}/generations").json() == []
    assert client.get("/api/roster-jobs/999").status_code == 404
    assert client.post("/api/roster-jobs/999/stop").status_code == 404
    assert client.get("/api/rosters/999/generations").status_code == 404


def test_an_interrupted_job_reads_as_failed_and_frees_the_roster(
    client: TestClient, engine: Engine
) -> None:
    """A job left running by a process that died: no heartbeat for over 30 s."""
    roster = seed_clinic(engine, people=2, days=7)
    now = utcnow()
    with engine.begin() as conn:
        job_id = conn.execute(
            roster_generation_jobs.insert().values(
                roster_id=roster,
                state="running",
                time_limit=60,
                request=body(60),
                stop_requested=0,
                heartbeat_at=now - timedelta(seconds=45),
                created_by="another-process",
                created_at=now - timedelta(minutes=1),
                started_at=now - timedelta(minutes=1),
            )
        ).inserted_primary_key[0]
    job = _job(client, job_id)
    assert job["state"] == "failed" and job["error"].startswith("interrupted")
    assert job["finished_at"] is not None
    with engine.connect() as conn:
        assert conn.execute(select(roster_generation_jobs.c.state)).scalar() == "failed"

    with engine.begin() as conn:  # a live one elsewhere still blocks the roster
        conn.execute(
            update(roster_generation_jobs).values(
                state="running", heartbeat_at=utcnow(), finished_at=None, error=None
            )
        )
    assert client.post(f"/api/rosters/{roster}/generate", json=body(5)).status_code == 409


def test_shutting_the_app_down_stops_its_jobs_keeping_the_best_roster(
    runtime: HubRuntime, engine: Engine
) -> None:
    roster = seed_clinic(engine)
    app = create_app(runtime.settings, engine=engine, runtime=runtime)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {runtime.settings.dev_token}"
        job = client.post(f"/api/rosters/{roster}/generate", json=body(60)).json()
        wait_for(lambda: _job(client, job["id"]), lambda j: j["progress"]["objective"] is not None)
    done = get_job(engine, job["id"])
    assert done["state"] == "stopped", done
    assert_draft_passes_the_checker(engine, context_for(engine), roster, done["report"])
