"""Parallel workers writing the same records end with one record and gap-free versions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from canonical.repository import CanonicalRepository, UpsertResult
from canonical.tables import identifiers, resource_versions, resources
from tests.canonical.canonical_seed import provenance, siu_bundle

START = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
STATUSES = ["booked", "arrived", "cancelled", "noshow", "fulfilled", "checked-in"]
WORKERS = 8


def test_concurrent_upserts_of_one_appointment(engine: Engine) -> None:
    barrier = threading.Barrier(WORKERS)
    results: dict[int, list[UpsertResult]] = {}
    errors: list[BaseException] = []

    def worker(seq: int) -> None:
        bundle = siu_bundle("APT1", START, status=STATUSES[seq % len(STATUSES)])
        try:
            barrier.wait()
            with Session(engine) as session, session.begin():
                results[seq] = CanonicalRepository(session).apply(bundle, provenance(seq), seq)
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seq,)) for seq in range(1, WORKERS + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors
    assert len(results) == WORKERS
    with Session(engine) as session:
        per_type = dict(
            session.execute(
                select(resources.c.resource_type, func.count()).group_by(resources.c.resource_type)
            ).all()
        )
        assert per_type == {
            "Patient": 1,
            "Practitioner": 1,
            "Location": 1,
            "Schedule": 1,
            "Slot": 1,
            "Appointment": 1,
        }
        # Every identifier is stored once and points at the one record.
        assert session.execute(select(func.count()).select_from(identifiers)).scalar_one() == 7
        for row in session.execute(select(resources)).all():
            versions = (
                session.execute(
                    select(resource_versions.c.version_id)
                    .where(resource_versions.c.resource_pk == row.pk)
                    .order_by(resource_versions.c.version_id)
                )
                .scalars()
                .all()
            )
            assert versions == list(range(1, row.version_id + 1))
            assert row.resource["meta"]["versionId"] == str(row.version_id)
            assert row.message_seq == WORKERS
        appt = session.execute(
            select(resources).where(resources.c.resource_type == "Appointment")
        ).one()
    # The highest message wins whatever order the workers ran in.
    assert appt.status == STATUSES[WORKERS % len(STATUSES)]
    appt_results = [r[-1] for r in results.values()]
    assert sum(r.created for r in appt_results) == 1
    assert {r.id for r in appt_results} == {appt.id}
    assert sum(r.changed for r in appt_results) == appt.version_id
