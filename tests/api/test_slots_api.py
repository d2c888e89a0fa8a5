"""Slot ranking over HTTP: ``POST /api/slots/rank`` and FHIR ``Appointment/$find`` on free
slots from an availability upload and from a GMED feed, with a patient's past visit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from adapters.upload.normalize import upload_system
from api.app import create_app
from bench.bench_attendance import synthetic_history
from canonical.records import Identifier, SourceBundle, SourceRecord, conditional_reference
from canonical.repository import CanonicalRepository
from hub import visit_history
from hub.candidate_cache import cache_for
from hub.runtime import HubRuntime
from hub.tokens import TokenService
from hub.users import create_user
from tests.canonical.canonical_seed import MRN, patient, provenance, siu_bundle
from tests.hub.test_visit_history import seed_history

CSV = (
    "practitioner,start,end,location\n"
    "Dr Ada,2030-05-06T09:00,2030-05-06T12:00,North\n"  # a Monday
    "Dr Bea,2030-05-07T14:00,2030-05-07T17:00,South\n"
    "Dr Ada,2030-05-08T09:00,2030-05-08T10:00,North\n"
)
WINDOW = {"start": "2030-05-01T00:00:00Z", "end": "2030-06-01T00:00:00Z"}
BEA = conditional_reference("Practitioner", upload_system("clinic-a", "practitioner"), "Dr Bea")


@pytest.fixture
def seeded(client: TestClient, runtime: HubRuntime) -> dict[str, str]:
    """Uploaded slots (Dr Ada, Dr Bea), a free GMED slot, and patient MRN1 who saw Dr Bea
    in 2025."""
    uploaded = client.post(
        "/api/availability/clinic-a?slot_minutes=30&timezone=UTC",
        content=CSV,
        headers={"Content-Type": "text/csv"},
    )
    assert runtime.worker.process_inbound(uploaded.json()["message_id"]) == "processed"
    past = datetime(2025, 3, 3, 10, tzinfo=UTC)
    visit = {
        "resourceType": "Appointment",
        "status": "fulfilled",
        "start": "2025-03-03T10:00:00Z",
        "end": "2025-03-03T10:30:00Z",
        "participant": [
            {
                "actor": {"reference": conditional_reference("Patient", MRN, "MRN1")},
                "status": "accepted",
            },
            {"actor": {"reference": BEA}, "status": "accepted"},
        ],
    }
    gmed_free = datetime(2030, 5, 9, 11, tzinfo=UTC)
    with Session(runtime.engine) as session, session.begin():
        repo = CanonicalRepository(session)
        seen = SourceRecord("Appointment", [Identifier("urn:test:appointment", "v1")], visit)
        done = repo.apply(SourceBundle([patient("MRN1"), seen]), provenance(90), 90)
        freed = repo.apply(siu_bundle("G1", gmed_free, status="cancelled"), provenance(91), 91)
    assert past < datetime.now(UTC)
    bea = done[-1]
    appointment = repo_get(runtime, "Appointment", bea.id)
    return {
        "patient": done[0].id,
        "bea": appointment["participant"][1]["actor"]["reference"],
        "gmed_slot": freed[4].id,
    }


def repo_get(runtime: HubRuntime, rtype: str, rid: str) -> dict[str, Any]:
    with Session(runtime.engine) as session:
        found = CanonicalRepository(session).get(rtype, rid)
    assert found is not None
    return found


@pytest.fixture
def patient_client(runtime: HubRuntime, seeded: dict[str, str]) -> Iterator[TestClient]:
    user = create_user(runtime.engine, "pat", roles={"patient"}, patient_id=seeded["patient"])
    token = TokenService(runtime.settings.secret_key).issue(user).access_token
    with TestClient(create_app(runtime.settings, engine=runtime.engine, runtime=runtime)) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def rank(client: TestClient, **body: Any) -> list[dict[str, Any]]:
    answer = client.post("/api/slots/rank", json={**WINDOW, **body})
    assert answer.status_code == 200, answer.text
    slots: list[dict[str, Any]] = answer.json()["slots"]
    return slots


def test_no_history_no_preferences_ranks_soonest_and_diverse(
    client: TestClient, seeded: dict[str, str]
) -> None:
    answer = client.post("/api/slots/rank", json=WINDOW).json()
    assert answer["considered"] == 6 + 6 + 2 + 1 and answer["eligible"] == answer["considered"]
    picks = answer["slots"]
    assert [p["start"] for p in picks] == [
        "2030-05-06T09:00:00Z",
        "2030-05-07T14:00:00Z",
        "2030-05-08T09:00:00Z",
    ]
    assert picks[0]["location"] == "North" and picks[0]["source"].startswith("urn:harmony-upload")
    assert [r["code"] for r in picks[0]["meets"]] == ["soonest"]


def test_preferences_and_history_move_the_ranking(
    client: TestClient, seeded: dict[str, str]
) -> None:
    picks = rank(
        client,
        patient_id=seeded["patient"],
        preferences={
            "preferred_days": ["tue", "wed"],
            "preferred_times": [{"start": "15:00", "end": "17:00"}],
        },
    )
    first = picks[0]
    assert first["practitioner"] == seeded["bea"] and first["start"] == "2030-05-07T15:00:00Z"
    codes = {r["code"] for r in first["meets"]}
    assert {"continuity", "preferred-day", "preferred-time"} <= codes
    assert first["components"]["continuity"] > 0
    later = [p for p in picks[1:] if p["practitioner"] == seeded["bea"]]
    assert all(abs(_at(p["start"]) - _at(first["start"])) >= timedelta(hours=3) for p in later)
    others = [p for p in picks if p["practitioner"] != seeded["bea"]]
    assert all("new-provider" in {r["code"] for r in p["trades_off"]} for p in others)


def test_hard_rules_filter(client: TestClient, seeded: dict[str, str]) -> None:
    south = rank(client, preferences={"only_locations": ["South"]}, k=5)
    assert {p["location"] for p in south} == {"South"}
    typed = rank(client, preferences={"visit_type": "124"}, k=1)
    assert typed[0]["slot_id"] == seeded["gmed_slot"]
    assert "visit-type" in {r["code"] for r in typed[0]["meets"]}
    assert seeded["gmed_slot"] not in {
        p["slot_id"] for p in rank(client, preferences={"visit_type": "999"}, k=20)
    }
    no_mondays = rank(client, preferences={"blocked_days": ["mon"]})
    assert all(not p["start"].startswith("2030-05-06") for p in no_mondays)
    bad_zone = client.post("/api/slots/rank", json={"preferences": {"timezone": "Nowhere/X"}})
    assert bad_zone.status_code == 422
    backwards = client.post(
        "/api/slots/rank", json={"start": WINDOW["end"], "end": WINDOW["start"]}
    )
    assert backwards.status_code == 422


def test_a_patient_ranks_for_themselves_only(
    patient_client: TestClient, seeded: dict[str, str]
) -> None:
    answer = patient_client.post("/api/slots/rank", json=WINDOW)
    assert answer.status_code == 200 and answer.json()["patient_id"] == seeded["patient"]
    assert "continuity" in answer.json()["slots"][0]["components"]
    other = patient_client.post("/api/slots/rank", json={**WINDOW, "patient_id": "someone-else"})
    assert other.status_code == 403
    found = patient_client.post(
        "/fhir/Appointment/$find",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "patient", "valueReference": {"reference": "Patient/x"}}],
        },
    )
    assert found.status_code == 403 and found.json()["resourceType"] == "OperationOutcome"


def test_fhir_find_proposes_appointments_that_book(
    client: TestClient, seeded: dict[str, str]
) -> None:
    params = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "start", "valueDateTime": WINDOW["start"]},
            {"name": "end", "valueDateTime": WINDOW["end"]},
            {"name": "practitioner", "valueReference": {"reference": seeded["bea"]}},
            {"name": "patient", "valueReference": {"reference": f"Patient/{seeded['patient']}"}},
            {"name": "_count", "valueInteger": 2},
        ],
    }
    answer = client.post("/fhir/Appointment/$find", json=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/fhir+json")
    bundle = answer.json()
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    first = bundle["entry"][0]
    proposal = first["resource"]
    assert proposal["status"] == "proposed" and first["search"]["score"] == 1.0
    assert "with a provider seen before" in proposal["comment"]
    codes = {e.get("valueCode") for e in proposal["extension"][0]["extension"]}
    assert "continuity" in codes
    actors = [p["actor"]["reference"] for p in proposal["participant"]]
    assert actors == [seeded["bea"], f"Patient/{seeded['patient']}"]
    slot_id = proposal["slot"][0]["reference"].split("/", 1)[1]
    assert client.get(f"/fhir/Slot/{slot_id}").json()["status"] == "free"
    booked = client.post(
        "/fhir/Appointment/$book",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "appt-resource", "resource": proposal}],
        },
    )
    assert booked.status_code == 200, booked.text
    again = client.post("/fhir/Appointment/$find", json=params).json()
    assert slot_id not in {e["resource"]["slot"][0]["reference"] for e in again["entry"]}
    unknown = client.post(
        "/fhir/Appointment/$find",
        json={"resourceType": "Parameters", "parameter": [{"name": "color", "valueString": "x"}]},
    )
    assert unknown.status_code == 400 and unknown.json()["resourceType"] == "OperationOutcome"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_cached_rankings_follow_bookings_and_new_slots(
    client: TestClient, runtime: HubRuntime
) -> None:
    """The default window (the next 60 days) is served from the candidate cache; a booking
    and a new upload both show in the very next answer."""
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date()
    _upload(client, runtime, "clinic-a", f"Dr Ada,{tomorrow}T09:00,{tomorrow}T11:00,North\n")
    first = client.post("/api/slots/rank", json={"k": 20}).json()
    cache = cache_for(runtime.engine)
    assert cache is not None and len(cache) == 1 and first["considered"] == 4
    assert client.post("/api/slots/rank", json={"k": 20}).json() == first
    find = {"resourceType": "Parameters", "parameter": [{"name": "_count", "valueInteger": 1}]}
    proposal = client.post("/fhir/Appointment/$find", json=find).json()["entry"][0]["resource"]
    slot_id = proposal["slot"][0]["reference"].split("/", 1)[1]
    assert slot_id == first["slots"][0]["slot_id"]
    booked = client.post(
        "/fhir/Appointment/$book",
        json={
            "resourceType": "Parameters",
            "parameter": [{"name": "appt-resource", "resource": proposal}],
        },
    )
    assert booked.status_code == 200, booked.text
    after = client.post("/api/slots/rank", json={"k": 20}).json()
    assert slot_id not in {p["slot_id"] for p in after["slots"]}
    assert after["considered"] == 3 and not after["truncated"] and len(cache) == 1
    _upload(client, runtime, "clinic-b", f"Dr Cy,{tomorrow}T07:00,{tomorrow}T07:30,East\n")
    newest = client.post("/api/slots/rank", json={"k": 1}).json()
    assert newest["considered"] == 4 and newest["slots"][0]["location"] == "East"


def _upload(client: TestClient, runtime: HubRuntime, clinic: str, rows: str) -> None:
    uploaded = client.post(
        f"/api/availability/{clinic}?slot_minutes=30&timezone=UTC",
        content="practitioner,start,end,location\n" + rows,
        headers={"Content-Type": "text/csv"},
    )
    assert runtime.worker.process_inbound(uploaded.json()["message_id"]) == "processed"


def test_a_learned_no_show_risk_adjusts_the_ranking_once_there_is_history(
    client: TestClient, runtime: HubRuntime, seeded: dict[str, str]
) -> None:
    visit_history.clear_cache()
    try:
        without = rank(client, patient_id="pat7", k=5)
        assert all("attendance" not in p["components"] for p in without)  # no history yet

        now = datetime.now(UTC).replace(microsecond=0)
        seed_history(runtime.engine, synthetic_history(400, 40, seed=4, end=now, days=600))
        visit_history.clear_cache()
        learned = rank(client, patient_id="pat7", k=5)
        risks = [p["components"]["attendance"] for p in learned]
        assert all(0.0 < r <= 1.0 for r in risks)
        assert len(set(risks)) > 1  # the model tells the slots apart
        codes = {r["code"] for p in learned for r in p["meets"] + p["trades_off"]}
        assert codes & {"lower-no-show-risk", "higher-no-show-risk"}

        client.app.state.settings = runtime.settings.model_copy(  # type: ignore[attr-defined]
            update={"ranking_attendance_model": False}
        )
        switched_off = rank(client, patient_id="pat7", k=5)
        assert all("attendance" not in p["components"] for p in switched_off)
    finally:
        visit_history.clear_cache()
