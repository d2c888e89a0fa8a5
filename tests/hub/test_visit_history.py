"""Booking history from canonical Appointments (SQLite and PostgreSQL): which appointments
are training rows, when each was booked, and the attendance hook with its per-process cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from bench.bench_attendance import synthetic_history
from canonical.records import Provenance
from canonical.repository import CanonicalRepository
from hub import visit_history
from hub.visit_history import attendance_for, current_model, patient_counts, visits
from scheduling.attendance import Visit
from scheduling.ranking import Candidate, Preferences, SlotTable, rank

NOW = datetime(2030, 1, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    visit_history.clear_cache()
    yield
    visit_history.clear_cache()


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def appointment(
    patient: str,
    start: datetime,
    status: str,
    created: datetime | None = None,
    practitioner: str | None = "doc1",
) -> dict[str, Any]:
    people = [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"}]
    if practitioner:
        people.append(
            {"actor": {"reference": f"Practitioner/{practitioner}"}, "status": "accepted"}
        )
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": status,
        "start": instant(start),
        "end": instant(start + timedelta(minutes=30)),
        "participant": people,
    }
    if created is not None:
        resource["created"] = instant(created)
    return resource


def seed(engine: Engine, resources: list[dict[str, Any]]) -> None:
    received = datetime.now(UTC)
    prov = Provenance(
        source_system="harmony", message_id=None, mapping_version=None, received_at=received
    )
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        for resource in resources:
            repo.save("Appointment", resource, prov)


def seed_history(engine: Engine, history: list[Visit]) -> None:
    seed(
        engine,
        [
            appointment(
                v.patient_id,
                v.start,
                "noshow" if v.no_show else "fulfilled",
                v.booked_at,
                (v.practitioner_id or "").removeprefix("Practitioner/") or None,
            )
            for v in history
        ],
    )


def test_training_rows_are_known_outcomes_with_their_booking_time(engine: Engine) -> None:
    today = datetime.now(UTC).replace(microsecond=0)
    later = today + timedelta(days=60)  # "now" for this test: the hub stored these earlier
    kept = today + timedelta(days=30)
    seed(
        engine,
        [
            appointment("p1", kept, "fulfilled", created=kept - timedelta(days=9)),
            appointment("p1", kept + timedelta(days=1), "noshow"),  # no `created`
            appointment("p2", kept, "checked-in", practitioner=None),
            appointment("p2", today - timedelta(days=3), "arrived"),  # stored after it began
            appointment("p1", kept, "booked"),  # outcome not known
            appointment("p1", kept, "cancelled"),
            appointment("p2", later + timedelta(days=1), "fulfilled"),  # not yet
            appointment("p2", later - timedelta(days=800), "fulfilled"),  # beyond two years
        ],
    )
    with Session(engine) as session:
        rows = visits(session, later)
        assert sorted((v.patient_id, v.start, v.no_show, v.practitioner_id) for v in rows) == [
            ("p1", kept, False, "Practitioner/doc1"),
            ("p1", kept + timedelta(days=1), True, "Practitioner/doc1"),
            ("p2", today - timedelta(days=3), False, "Practitioner/doc1"),
            ("p2", kept, False, None),
        ]
        booked = {(v.patient_id, v.start): v.booked_at for v in rows}
        assert booked[("p1", kept)] == kept - timedelta(days=9)  # from `created`
        first_seen = booked[("p1", kept + timedelta(days=1))]  # when the hub stored it
        assert first_seen is not None and today - timedelta(minutes=5) <= first_seen <= kept
        assert booked[("p2", today - timedelta(days=3))] is None  # stored after the start
        assert len(visits(session, later, limit=2)) == 2
        assert patient_counts(session, "p1", later).visits == 2
        assert patient_counts(session, "p1", later).no_shows == 1
        assert attendance_for(session, "p1", later) is None  # far too thin for a model


def test_the_hook_ranks_with_a_model_of_the_stored_history(engine: Engine) -> None:
    history = synthetic_history(400, 40, seed=4, end=NOW, days=600)
    seed_history(engine, history)
    mine = [v for v in history if v.patient_id == "pat7"]
    early = NOW.replace(hour=7) + timedelta(days=4)  # same lead-time bin as noon
    table = SlotTable(
        [
            Candidate("early", early, early + timedelta(minutes=30), "Practitioner/p1"),
            Candidate(
                "noon", early.replace(hour=12), early.replace(hour=12, minute=30), "Practitioner/p1"
            ),
        ]
    )
    with Session(engine) as session:
        counts = patient_counts(session, "pat7", NOW)
        assert (counts.visits, counts.no_shows) == (len(mine), sum(v.no_show for v in mine))
        hook = attendance_for(session, "pat7", NOW)
        assert hook is not None and hook.whose == "this patient's usual"
        model = current_model(session, NOW)
        assert model is not None and model.outcomes == len(history)
        assert hook.usual == pytest.approx(counts.rate(model.base_rate))
        risk = hook.risk(table)
        assert risk.shape == (2,) and 0 < risk[1] < risk[0] < 1  # planted: early is missed more
        newcomer = attendance_for(session, "nobody", NOW)
        assert newcomer is not None and newcomer.whose == "the average patient's"
    pick = rank(table, Preferences(attendance=hook), NOW, 2).picks[0]
    assert "attendance" in pick.components


def test_the_model_is_cached_and_retrained_on_growth(engine: Engine) -> None:
    history = synthetic_history(400, 40, seed=4, end=NOW, days=600)
    seed_history(engine, history[:300])
    with Session(engine) as session:
        first = current_model(session, NOW)
        assert first is not None and first.outcomes == 300
    seed_history(engine, history[300:330])  # +10 %: not more than GROWTH
    with Session(engine) as session:
        assert current_model(session, NOW + timedelta(minutes=1)) is first  # not rechecked
        assert current_model(session, NOW + visit_history.RECHECK) is first  # grew 10 %, kept
    seed_history(engine, history[330:])
    with Session(engine) as session:
        soon = NOW + visit_history.RECHECK + timedelta(minutes=1)
        assert current_model(session, soon) is first  # checked a minute ago
        retrained = current_model(session, NOW + 2 * visit_history.RECHECK)
        assert retrained is not None and retrained is not first
        assert retrained.outcomes == 400
        day_later = NOW + visit_history.MAX_AGE + 2 * visit_history.RECHECK
        assert current_model(session, day_later) is not retrained  # a day old: retrained


def test_history_without_no_shows_gives_no_hook(engine: Engine) -> None:
    thin = [replace(v, no_show=False) for v in synthetic_history(250, 20, seed=1, end=NOW)]
    seed_history(engine, thin)  # plenty of outcomes, but not one no-show
    with Session(engine) as session:
        assert attendance_for(session, "pat1", NOW) is None
        assert attendance_for(session, None, NOW) is None
