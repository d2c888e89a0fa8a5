"""$find, $book and cancel against the sandbox, and what their answers normalize to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.contract import BookingRequest, SlotUnavailable, SourceError, source_system
from adapters.epic.client import EpicClient
from adapters.epic.normalize import normalize_bytes
from canonical.model import validate
from mappings.model import MappingSet
from tests.adapters.epic.conftest import Sandbox
from tests.adapters.epic.epic_helpers import INTEGRATION, Sleeps


def _patient(sandbox: Sandbox) -> dict[str, Any]:
    (pid,) = sandbox.state.patients
    return {
        "resourceType": "Patient",
        "identifier": [{"system": source_system(INTEGRATION, "Patient"), "value": pid}],
        "name": [{"text": "Rivera, Sam"}],
    }


def _request(sandbox: Sandbox, slot_id: str, patient: dict[str, Any] | None) -> BookingRequest:
    slot = sandbox.state.slots[slot_id]
    return BookingRequest(
        slot_source_id=slot_id,
        slot={"resourceType": "Slot", "start": slot["start"], "end": slot["end"]},
        patient=patient,
        reason="Follow-up",
    )


def _free_slot(sandbox: Sandbox) -> str:
    return next(sid for sid, s in sandbox.state.slots.items() if s["status"] == "free")


def test_find_proposes_free_slots_as_appointments(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    start = datetime.now(UTC) - timedelta(days=1)
    practitioner = sandbox.state.schedules[sandbox.schedules[0]]["actor"][0]["reference"]
    page = client.find(start, start + timedelta(days=20), practitioner.split("/")[1])
    bundle = normalize_bytes(page.envelope.to_bytes(), mapping, "UTC")
    appointments = [r for r in bundle.records if r.resource_type == "Appointment"]
    expected = [
        s
        for s in sandbox.state.slots.values()
        if s["schedule"]["reference"] == f"Schedule/{sandbox.schedules[0]}"
    ]
    assert len(appointments) == len(expected)
    assert {a.resource["status"] for a in appointments} == {"proposed"}
    assert bundle.event == "proposed"
    for record in bundle.records:
        validate(record.resource_type, record.resource)


def test_book_then_double_book_is_slot_unavailable(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    slot_id = _free_slot(sandbox)
    result = client.book(_request(sandbox, slot_id, _patient(sandbox)))
    assert sandbox.state.slots[slot_id]["status"] == "busy"
    assert sandbox.state.appointments[result.appointment_source_id]["status"] == "booked"

    bundle = normalize_bytes(result.page.envelope.to_bytes(), mapping, "UTC")
    assert bundle.event == "booked"
    appointment = bundle.records[-1]
    assert appointment.identifiers[0].value == result.appointment_source_id
    assert appointment.identifiers[1].system.startswith("urn:oid:1.2.840.114350")
    assert appointment.resource["status"] == "booked"
    assert appointment.resource["reasonCode"] == [{"text": "Follow-up"}]
    assert [r.resource_type for r in bundle.records[:-1]] == ["Patient", "Practitioner", "Location"]
    for record in bundle.records:
        validate(record.resource_type, record.resource)

    with pytest.raises(SlotUnavailable) as caught:
        client.book(_request(sandbox, slot_id, _patient(sandbox)))
    assert caught.value.status == 409
    assert "is not free" in str(caught.value)


def test_booking_a_removed_slot_is_slot_unavailable(sandbox: Sandbox, client: EpicClient) -> None:
    slot_id = _free_slot(sandbox)
    request = _request(sandbox, slot_id, _patient(sandbox))
    del sandbox.state.slots[slot_id]
    with pytest.raises(SlotUnavailable, match="no longer exists"):
        client.book(request)


def test_booking_for_an_unknown_patient_is_refused_not_retried(
    sandbox: Sandbox, client: EpicClient
) -> None:
    stranger = {"identifier": [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123"}]}
    with pytest.raises(SourceError) as caught:
        client.book(_request(sandbox, _free_slot(sandbox), stranger))
    assert not isinstance(caught.value, SlotUnavailable)
    assert caught.value.retryable is False and caught.value.status == 422
    assert "Patient participant is required" in str(caught.value)
    with pytest.raises(SourceError, match="needs a patient"):
        client.book(_request(sandbox, _free_slot(sandbox), None))


def test_cancel_frees_the_slot_and_normalizes_to_cancelled(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    slot_id = _free_slot(sandbox)
    booked = client.book(_request(sandbox, slot_id, _patient(sandbox)))
    page = client.cancel(booked.appointment_source_id, "Patient request")
    assert sandbox.state.slots[slot_id]["status"] == "free"
    bundle = normalize_bytes(page.envelope.to_bytes(), mapping, "UTC")
    appointment = bundle.records[-1]
    assert bundle.event == "cancelled"
    assert appointment.resource["status"] == "cancelled"
    assert appointment.resource["cancelationReason"] == {"text": "Patient request"}
    validate("Appointment", appointment.resource)
    # the freed slot can be booked again
    again = client.book(_request(sandbox, slot_id, _patient(sandbox)))
    assert again.appointment_source_id != booked.appointment_source_id


def test_cancel_of_an_unknown_appointment_is_a_clear_error(client: EpicClient) -> None:
    with pytest.raises(SourceError) as caught:
        client.cancel("eAp404", None)
    assert caught.value.status == 404 and caught.value.retryable is False
    assert "Appointment/eAp404 was not found" in str(caught.value)


def test_appointment_read_and_search(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    patient = _patient(sandbox)
    ids = [
        client.book(_request(sandbox, sid, patient)).appointment_source_id
        for sid in list(sandbox.state.slots)[:3]
    ]
    read = normalize_bytes(client.read_appointment(ids[0]).envelope.to_bytes(), mapping, "UTC")
    assert read.records[-1].identifiers[0].value == ids[0]
    pid = patient["identifier"][0]["value"]
    pages = list(client.search_appointments({"patient": pid, "_count": "2"}))
    assert len(pages) == 2
    found = [
        r.identifiers[0].value
        for p in pages
        for r in normalize_bytes(p.envelope.to_bytes(), mapping, "UTC").records
        if r.resource_type == "Appointment"
    ]
    assert found == ids


def test_booking_survives_a_throttled_first_attempt(
    sandbox: Sandbox, client: EpicClient, sleeps: Sleeps
) -> None:
    sandbox.state.faults.fail_next(status=429, retry_after=1, path="$book")
    result = client.book(_request(sandbox, _free_slot(sandbox), _patient(sandbox)))
    assert result.appointment_source_id in sandbox.state.appointments
    assert sleeps.waits == [1.0]
