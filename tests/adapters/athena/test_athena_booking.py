"""Booking, cancelling and rescheduling through the client against a served sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.athena.normalize import normalize_bytes
from adapters.contract import BookingRequest, SlotUnavailable, SourceError
from mappings.model import MappingSet
from tests.adapters.athena.athena_helpers import INTEGRATION, TIMEZONE
from tests.adapters.athena.conftest import Served

PATIENT_SYSTEM = f"urn:harmony:{INTEGRATION}:patientid"


def request(slot_id: int, patientid: str | None = "501", **extra: Any) -> BookingRequest:
    patient = None
    if patientid is not None:
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": PATIENT_SYSTEM, "value": patientid}],
        }
    slot = {
        "resourceType": "Slot",
        "appointmentType": {
            "coding": [{"system": f"urn:harmony:{INTEGRATION}:appointmenttypeid", "code": "2"}]
        },
    }
    return BookingRequest(slot_source_id=str(slot_id), slot=slot, patient=patient, **extra)


def resources(page: Any, mapping: MappingSet, kind: str) -> list[dict[str, Any]]:
    bundle = normalize_bytes(page.envelope.to_bytes(), mapping, TIMEZONE)
    return [r.resource for r in bundle.records if r.resource_type == kind]


def test_book_an_open_slot(served: Served, mapping: MappingSet) -> None:
    slot = served.state.seed_slots(2)[0]
    result = served.client().book(request(slot.appointmentid, comment="first visit"))
    assert result.appointment_source_id == str(slot.appointmentid)
    [appointment] = resources(result.page, mapping, "Appointment")
    assert appointment["status"] == "booked"
    assert appointment["participant"][0]["actor"]["reference"].endswith("patientid|501")
    assert [s["status"] for s in resources(result.page, mapping, "Slot")] == ["busy"]
    put = next(r for r in served.state.requests if r.method == "PUT")
    assert put.path == f"/v1/195900/appointments/{slot.appointmentid}"
    assert served.state.appointments[slot.appointmentid].patientid == "501"


def test_booking_a_booked_slot_is_slot_unavailable(served: Served) -> None:
    slot = served.state.seed_slots(1)[0]
    served.state.book(slot.appointmentid, "900", None)
    with pytest.raises(SlotUnavailable, match="already booked") as caught:
        served.client().book(request(slot.appointmentid))
    assert caught.value.retryable is False and caught.value.status == 400


def test_booking_an_unknown_slot_is_slot_unavailable(served: Served) -> None:
    served.state.seed_slots(1)
    with pytest.raises(SlotUnavailable, match="appointment ID is invalid"):
        served.client().book(request(4242))


def test_patient_id_falls_back_to_the_option_else_fails(served: Served) -> None:
    first, second = served.state.seed_slots(2)
    served.client(default_patientid="77").book(request(first.appointmentid, patientid=None))
    assert served.state.appointments[first.appointmentid].patientid == "77"
    with pytest.raises(SourceError, match="default_patientid") as caught:
        served.client().book(request(second.appointmentid, patientid=None))
    assert caught.value.retryable is False
    assert served.state.appointments[second.appointmentid].status == "o"


def test_cancel_reads_the_patient_and_returns_the_cancelled_appointment(
    served: Served, mapping: MappingSet
) -> None:
    slot = served.state.seed_slots(1)[0]
    served.state.book(slot.appointmentid, "501", None)
    client = served.client()
    page = client.cancel(str(slot.appointmentid), "patient is travelling")
    [appointment] = resources(page, mapping, "Appointment")
    assert appointment["status"] == "cancelled"
    assert "travelling" in appointment["comment"]
    reopened = [a for a in served.state.appointments.values() if a.status == "o"]
    assert len(reopened) == 1 and reopened[0].starttime == slot.starttime
    # cancelling again (the hub retrying after a crash) changes nothing and still answers
    assert client.cancel(str(slot.appointmentid), None).envelope.body[0]["appointmentstatus"] == "x"


def test_cancel_of_an_open_slot_is_refused(served: Served) -> None:
    slot = served.state.seed_slots(1)[0]
    with pytest.raises(SourceError, match="no patient") as caught:
        served.client().cancel(str(slot.appointmentid), None)
    assert caught.value.retryable is False


def test_reschedule_moves_the_booking(served: Served, mapping: MappingSet) -> None:
    old, new = served.state.seed_slots(2)
    served.state.book(old.appointmentid, "501", None)
    result = served.client().reschedule(str(old.appointmentid), str(new.appointmentid))
    assert result.appointment_source_id == str(new.appointmentid)
    [appointment] = resources(result.page, mapping, "Appointment")
    assert appointment["status"] == "booked"
    assert appointment["identifier"][0]["value"] == str(new.appointmentid)
    assert appointment["start"][11:16] == new.starttime
    assert served.state.appointments[old.appointmentid].status == "x"
    put = next(r for r in served.state.requests if r.method == "PUT")
    assert put.path.endswith(f"/appointments/{old.appointmentid}/reschedule")


def test_reschedule_to_a_taken_slot_leaves_the_booking(served: Served) -> None:
    old, taken = served.state.seed_slots(2)
    served.state.book(old.appointmentid, "501", None)
    served.state.book(taken.appointmentid, "502", None)
    with pytest.raises(SlotUnavailable):
        served.client().reschedule(str(old.appointmentid), str(taken.appointmentid))
    assert served.state.appointments[old.appointmentid].status == "f"
