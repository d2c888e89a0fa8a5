"""Patients see and book only for themselves; staff-side readers see everything."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from canonical.repository import CanonicalRepository
from hub.runtime import HubRuntime
from hub.tokens import TokenService
from hub.users import create_user
from tests.canonical.canonical_seed import provenance, siu_bundle

START = datetime(2025, 4, 7, 9, tzinfo=UTC)


@pytest.fixture
def ids(engine: Engine) -> dict[str, str]:
    """Patient MRN1 with a booked and a cancelled (slot free again) appointment; MRN2 with
    one booked appointment."""
    found: dict[str, str] = {}
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        own = repo.apply(siu_bundle("A1", START), provenance(1), 1)
        other = repo.apply(siu_bundle("B1", START, mrn="MRN2"), provenance(2), 2)
        freed = repo.apply(siu_bundle("A2", START, status="cancelled"), provenance(3), 3)
    found.update(own_patient=own[0].id, own_appointment=own[-1].id)
    found.update(other_patient=other[0].id, other_appointment=other[-1].id)
    found.update(free_slot=freed[4].id, cancelled=freed[-1].id)
    return found


@pytest.fixture
def patient(runtime: HubRuntime, ids: dict[str, str]) -> Iterator[TestClient]:
    user = create_user(runtime.engine, "pat", roles={"patient"}, patient_id=ids["own_patient"])
    token = TokenService(runtime.settings.secret_key).issue(user).access_token
    app = create_app(runtime.settings, engine=runtime.engine, runtime=runtime)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def entry_ids(bundle: dict[str, object]) -> set[str]:
    entries = bundle.get("entry") or []
    assert isinstance(entries, list)
    return {e["resource"]["id"] for e in entries}


def test_patient_searches_are_narrowed_to_their_own(
    patient: TestClient, ids: dict[str, str]
) -> None:
    mine = patient.get("/fhir/Appointment").json()
    assert entry_ids(mine) == {ids["own_appointment"], ids["cancelled"]}
    asked_for_other = patient.get("/fhir/Appointment", params={"patient": ids["other_patient"]})
    assert asked_for_other.json()["total"] == 0  # ANDed with their own: nothing
    assert entry_ids(patient.get("/fhir/Patient").json()) == {ids["own_patient"]}
    assert patient.get("/fhir/Slot").json()["total"] == 3  # what they book from: all
    refused = patient.get("/fhir/PractitionerRole")
    assert refused.status_code == 403 and refused.json()["resourceType"] == "OperationOutcome"


def test_patient_reads_only_their_own(patient: TestClient, ids: dict[str, str]) -> None:
    assert patient.get(f"/fhir/Appointment/{ids['own_appointment']}").status_code == 200
    assert patient.get(f"/fhir/Patient/{ids['own_patient']}").status_code == 200
    for path in (
        f"/fhir/Appointment/{ids['other_appointment']}",
        f"/fhir/Appointment/{ids['other_appointment']}/_history",
        f"/fhir/Patient/{ids['other_patient']}",
        "/fhir/Appointment/no-such-appointment",  # same answer: existence is not revealed
    ):
        answer = patient.get(path)
        assert answer.status_code == 403, path
        assert answer.json()["issue"][0]["code"] == "forbidden"


def test_patient_books_for_themselves_only(patient: TestClient, ids: dict[str, str]) -> None:
    other = patient.post(
        "/api/appointments", json={"slot_id": ids["free_slot"], "patient_id": ids["other_patient"]}
    )
    assert other.status_code == 403
    booked = patient.post("/api/appointments", json={"slot_id": ids["free_slot"]})
    assert booked.status_code == 201, booked.text
    actors = {p["actor"]["reference"] for p in booked.json()["participant"]}
    assert f"Patient/{ids['own_patient']}" in actors  # defaulted to the caller


def test_patient_without_a_linked_record_gets_nothing_private(
    runtime: HubRuntime, ids: dict[str, str]
) -> None:
    user = create_user(runtime.engine, "anon-patient", roles={"patient"})
    token = TokenService(runtime.settings.secret_key).issue(user).access_token
    app = create_app(runtime.settings, engine=runtime.engine, runtime=runtime)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/fhir/Slot").status_code == 200
        assert client.get("/fhir/Appointment").status_code == 403
        booking = client.post("/api/appointments", json={"slot_id": ids["free_slot"]})
        assert booking.status_code == 403 and "no patient record" in booking.json()["detail"]
