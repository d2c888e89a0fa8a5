"""The month an admin generates through the API: 30 physicians, five shift types, March 2027
in New York (DST inside), real rules. The job reports every remaining violation and the
fairness table; the draft is then published through the conflict checker."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from bench.month_seed import TIME_LIMIT, MonthSeed, seed_month
from tests.hub.test_roster_jobs import assert_draft_passes_the_checker, wait_for


def generation_body(seeded: MonthSeed) -> dict[str, Any]:
    """The seed's coverage, limits and wishes as the API takes them."""
    return {
        "coverage": [{**asdict(c), "weekdays": sorted(c.weekdays)} for c in seeded.coverage],
        "time_limit": TIME_LIMIT,
        "options": {
            **asdict(seeded.options),
            "max_per_kind_per_fte": dict(seeded.options.max_per_kind_per_fte),
        },
        "wishes": [{**asdict(w), "day": w.day.isoformat()} for w in seeded.wishes],
    }


def test_a_generated_month_is_reported_and_published(client: TestClient, engine: Engine) -> None:
    seeded = seed_month(engine)
    roster = seeded.roster_id
    started = client.post(f"/api/rosters/{roster}/generate", json=generation_body(seeded))
    assert started.status_code == 202, started.text
    job_url = started.headers["Location"]

    done = wait_for(
        lambda: client.get(job_url).json(),
        lambda j: j["state"] not in ("queued", "running"),
        timeout=TIME_LIMIT + 60,
    )
    assert done["state"] == "succeeded", done
    report = done["report"]
    assert report["hard_violations"] == []
    assert (
        report["objective"] == report["penalty"] == sum(v["penalty"] for v in report["violations"])
    )
    for violation in report["violations"]:  # rule, person (or none for cover), dates, price
        assert violation["rule"] and violation["dates"] and violation["penalty"] > 0
        assert violation["message"]
    fairness = report["fairness"]
    assert {load["physician_id"] for load in fairness} == set(seeded.people)
    assert all(0.5 <= load["relative_load"] <= 1.5 for load in fairness)
    assert sum(load["shifts"] for load in fairness) == report["assignments"]
    assert_draft_passes_the_checker(engine, seeded.context, roster, report, kept=1)  # the lock

    draft = client.get(f"/api/rosters/{roster}")
    published = client.post(
        f"/api/rosters/{roster}/publish", headers={"If-Match": draft.headers["ETag"]}
    )
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published"
    again = client.post(f"/api/rosters/{roster}/generate", json=generation_body(seeded))
    assert again.status_code == 409 and again.json()["rule"] == "roster_published"
