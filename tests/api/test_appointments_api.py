"""``/api/appointments``: cancel and reschedule over HTTP, buffer refusals, who may do what."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from hub.runtime import HubRuntime
from hub.tokens import TokenService
from hub.users import create_user
from tests.hub.test_appointments_seed import free_slots, patient, upload


@pytest.fixture
def slots(runtime: HubRuntime) -> list[str]:
    upload(
        runtime,
        [
            ("Dr Ada", "2030-05-06T09:00", "2030-05-06T09:30"),
            ("Dr Bo", "2030-05-06T09:30", "2030-05-06T10:00"),
            ("Dr Cy", "2030-05-07T09:00", "2030-05-07T09:30"),
        ],
    )
    return free_slots(runtime)


@pytest.fixture
def patients(runtime: HubRuntime) -> dict[str, str]:
    return {"own": patient(runtime, "Own"), "other": patient(runtime, "Other")}


@pytest.fixture
def as_patient(runtime: HubRuntime, patients: dict[str, str]) -> Iterator[TestClient]:
    user = create_user(runtime.engine, "pat", roles={"patient"}, patient_id=patients["own"])
    token = TokenService(runtime.settings.secret_key).issue(user).access_token
    app = create_app(runtime.settings, engine=runtime.engine, runtime=runtime)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _book(client: TestClient, slot: str, patient_id: str | None = None) -> str:
    answer = client.post("/api/appointments", json={"slot_id": slot, "patient_id": patient_id})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_cancel_with_a_reason_and_again(
    client: TestClient, slots: list[str], patients: dict[str, str]
) -> None:
    appointment = _book(client, slots[0], patients["own"])
    url = f"/api/appointments/{appointment}/cancel"
    assert client.post(url, json={}).status_code == 422
    assert client.post(url, json={"reason": ""}).status_code == 422
    bad = client.post(url, json={"reason": {"code": "bored"}})
    assert bad.status_code == 422 and "appointment-cancellation-reason" in bad.text
    done = client.post(url, json={"reason": {"code": "pat-mv", "text": "moved to Leeds"}})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"
    assert done.json()["cancelationReason"]["coding"][0]["code"] == "pat-mv"
    again = client.post(url, json={"reason": "changed my mind"})
    assert again.status_code == 200 and again.json() == done.json()
    assert client.post("/api/appointments/nope/cancel", json={"reason": "x"}).status_code == 404
    assert (
        client.get("/fhir/Slot", params={"_id": slots[0]}).json()["entry"][0]["resource"]["status"]
        == "free"
    )


def test_reschedule_answers_both_appointments(
    client: TestClient, slots: list[str], patients: dict[str, str]
) -> None:
    appointment = _book(client, slots[0], patients["own"])
    moved = client.post(f"/api/appointments/{appointment}/reschedule", json={"slot_id": slots[2]})
    assert moved.status_code == 201, moved.text
    body = moved.json()
    assert body["appointment"]["slot"] == [{"reference": f"Slot/{slots[2]}"}]
    assert body["replaced"]["id"] == appointment
    assert body["replaced"]["status"] == "cancelled"
    assert "cancel_pending" not in body
    taken = client.post(f"/api/appointments/{appointment}/reschedule", json={"slot_id": slots[1]})
    assert taken.status_code == 409  # the old one is cancelled now: nothing to move


def test_a_buffer_refusal_names_the_rule_and_the_other_visit(
    runtime: HubRuntime, client: TestClient, slots: list[str], patients: dict[str, str]
) -> None:
    runtime.settings.appointment_buffer_minutes = 15
    first = _book(client, slots[0], patients["own"])
    refused = client.post(
        "/api/appointments", json={"slot_id": slots[1], "patient_id": patients["own"]}
    )
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert detail["rule"] == "patient-buffer" and detail["buffer_minutes"] == 15
    assert detail["conflict"]["appointment_id"] == first
    assert detail["conflict"]["start"] == "2030-05-06T09:00:00Z"
    assert "patient-buffer" in detail["message"]


def test_a_patient_acts_only_on_their_own_appointments(
    client: TestClient,
    as_patient: TestClient,
    slots: list[str],
    patients: dict[str, str],
) -> None:
    theirs = _book(client, slots[1], patients["other"])
    mine = _book(as_patient, slots[0])
    for path, body in (
        (f"/api/appointments/{theirs}/cancel", {"reason": "x"}),
        (f"/api/appointments/{theirs}/reschedule", {"slot_id": slots[2]}),
        ("/api/appointments/no-such/cancel", {"reason": "x"}),  # 403 too: ids are not probed
    ):
        assert as_patient.post(path, json=body).status_code == 403, path
    assert as_patient.get("/api/appointments/cancellations").status_code == 403
    moved = as_patient.post(f"/api/appointments/{mine}/reschedule", json={"slot_id": slots[2]})
    assert moved.status_code == 201, moved.text
    new = moved.json()["appointment"]["id"]
    cancelled = as_patient.post(f"/api/appointments/{new}/cancel", json={"reason": {"code": "pat"}})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get("/api/appointments/cancellations").json() == []
