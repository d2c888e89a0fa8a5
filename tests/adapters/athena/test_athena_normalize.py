"""Every athena fixture, wrapped in the envelope the client would store, normalized or refused."""

from __future__ import annotations

import pytest

from adapters.athena.normalize import STATUS_URL, AthenaError
from adapters.athena.resources import MissingField
from adapters.athena.times import BadTime
from canonical.errors import NothingToStore, RejectedInput
from mappings.model import Coding, MappingSet, UnmappedCode
from tests.adapters.athena.athena_helpers import (
    FIXTURES,
    INTEGRATION,
    athena_mapping,
    fixture_body,
    normalized,
    of_type,
)

SYS = f"urn:harmony:{INTEGRATION}"


def test_every_fixture_is_covered_below() -> None:
    covered = {
        *OPEN, *BOOKED, *REFERENCE, *NOTHING,
        "htd_2016_appointment_cancel.json",
        "htd_2016_appointment_reschedule.json",
        "eleanor_appointment_slot_create.json",
        "eleanor_appointments_changed.json",
        "eleanor_appointment_get.json",
    }  # fmt: skip
    assert {p.name for p in FIXTURES.glob("*.json")} == covered


OPEN = {"eleanor_appointments_open.json": 237}


def test_open_slots_become_free_slots_on_the_department_schedule() -> None:
    bundle = normalized(
        "appointments-open",
        fixture_body("eleanor_appointments_open.json"),
        department_timezones={"5": "US/Eastern"},
    )
    slots = of_type(bundle, "Slot")
    assert len(slots) == OPEN["eleanor_appointments_open.json"]
    first = slots[0]
    assert first["identifier"] == [{"system": f"{SYS}:appointmentid", "value": "2204083"}]
    assert first["status"] == "free"
    # 05/30/2023 09:00 in New York is EDT (-04:00); 15 minutes long
    assert (first["start"], first["end"]) == (
        "2023-05-30T09:00:00-04:00",
        "2023-05-30T09:15:00-04:00",
    )
    assert first["schedule"]["reference"] == f"Schedule?identifier={SYS}:schedule|5/40"
    assert bundle.records[slots.index(first) + 3].original_time_text == "05/30/2023 09:00"
    [schedule] = of_type(bundle, "Schedule")
    assert schedule["actor"] == [
        {"reference": f"Practitioner?identifier={SYS}:providerid|40"},
        {"reference": f"Location?identifier={SYS}:departmentid|5"},
    ]
    kinds = [r.resource_type for r in bundle.records]
    assert kinds[:3] == ["Location", "Practitioner", "Schedule"] and set(kinds[3:]) == {"Slot"}
    assert ("appointment_types", "44") in bundle.unmapped


def test_department_timezone_wins_over_option_and_mapping() -> None:
    body = fixture_body("eleanor_appointment_get.json")
    in_denver = normalized("appointment", body, department_timezones={"1": "America/Denver"})
    by_option = normalized("appointment", body, timezone="Europe/Paris")
    by_mapping = normalized("appointment", body, athena_mapping(timezone="Asia/Tokyo"))
    assert of_type(in_denver, "Slot")[0]["start"] == "2009-02-27T08:00:00-07:00"
    assert of_type(by_option, "Slot")[0]["start"] == "2009-02-27T08:00:00+01:00"
    assert of_type(by_mapping, "Slot")[0]["start"] == "2009-02-27T08:00:00+09:00"


BOOKED = {"eleanor_appointments_booked.json": 1, "htd_2016_appointments_booked.json": 103}


@pytest.mark.parametrize("name", sorted(BOOKED))
def test_booked_appointments_with_their_busy_slot(name: str) -> None:
    bundle = normalized("appointments-booked", fixture_body(name))
    appointments = of_type(bundle, "Appointment")
    assert len(appointments) == BOOKED[name]  # eleanor lists appointment 3132 twice
    slots = {s["identifier"][0]["value"]: s for s in of_type(bundle, "Slot")}
    for appointment in appointments:
        own = appointment["identifier"][0]
        assert own["system"] == f"{SYS}:appointmentid"
        assert slots[own["value"]]["status"] == "busy"
        assert appointment["slot"] == [
            {"reference": f"Slot?identifier={SYS}:appointmentid|{own['value']}"}
        ]
        actors = [p["actor"]["reference"] for p in appointment["participant"]]
        assert actors[0].startswith(f"Patient?identifier={SYS}:patientid|")


def test_booked_status_codes_go_through_the_mapping() -> None:
    bundle = normalized("appointments-booked", fixture_body("htd_2016_appointments_booked.json"))
    by_id = {a["identifier"][0]["value"]: a for a in of_type(bundle, "Appointment")}
    checked_in = by_id["659313"]
    assert checked_in["status"] == "checked-in"
    assert {"url": STATUS_URL, "valueString": "2"} in checked_in["extension"]
    assert by_id["695324"]["status"] == "booked"
    assert by_id["695324"]["minutesDuration"] == 10  # duration "10" as a string


def test_eleanor_booked_keeps_notes_and_numeric_ids() -> None:
    [appointment] = of_type(
        normalized("appointments-booked", fixture_body("eleanor_appointments_booked.json")),
        "Appointment",
    )
    assert appointment["comment"].startswith("https://zoom.us/j/")
    assert appointment["start"] == "2020-10-25T09:30:00-04:00"


def test_changed_feed_cancellations() -> None:
    bundle = normalized("appointments-changed", fixture_body("eleanor_appointments_changed.json"))
    appointments = of_type(bundle, "Appointment")
    assert [a["status"] for a in appointments] == ["cancelled", "cancelled"]
    assert appointments[0]["cancelationReason"] == {"text": "CANCELLED FROM API"}
    assert all(p["status"] == "declined" for p in appointments[0]["participant"])
    # athena reopened the time under a new id; this slot id is no longer bookable
    assert {s["status"] for s in of_type(bundle, "Slot")} == {"entered-in-error"}
    second = appointments[1]["identifier"]
    assert {"system": f"{SYS}:templateappointmentid", "value": "1060320"} in second


def test_unknown_status_code_parks_the_page() -> None:
    body = fixture_body("eleanor_appointments_changed.json")
    body["appointments"][0]["appointmentstatus"] = "9"
    with pytest.raises(UnmappedCode, match="status code '9'"):
        normalized("appointments-changed", body)


def test_mapped_appointment_type_comes_first() -> None:
    mapping = athena_mapping(appointment_types={"82": Coding(system="urn:types", code="NEW")})
    bundle = normalized(
        "appointments-changed", fixture_body("eleanor_appointments_changed.json"), mapping
    )
    coded = of_type(bundle, "Appointment")[0]["appointmentType"]["coding"]
    assert coded[0] == {"system": "urn:types", "code": "NEW"}
    assert ("appointment_types", "8") in bundle.unmapped and (
        "appointment_types",
        "82",
    ) not in bundle.unmapped


REFERENCE = {
    "eleanor_departments.json": "Location",
    "htd_2016_departments.json": "Location",
    "eleanor_providers.json": "Practitioner",
    "eleanor_providers_changed.json": "Practitioner",
    "htd_2016_providers.json": "Practitioner",
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_departments_and_providers(name: str) -> None:
    kind = "departments" if REFERENCE[name] == "Location" else "providers"
    [record] = normalized(kind, fixture_body(name)).records
    assert record.resource_type == REFERENCE[name]
    assert record.identifiers[0].system == f"{SYS}:{kind[:-1]}id"


def test_department_and_provider_details() -> None:
    [location] = of_type(
        normalized("departments", fixture_body("eleanor_departments.json")), "Location"
    )
    assert location["name"] == "Eleanor Health Cherry Hill"
    assert location["address"]["line"] == ["2250 CHAPEL AVE WEST", "SUITE 120"]
    assert location["position"] == {"latitude": 39.929129, "longitude": -75.0155743}
    [provider] = of_type(
        normalized("providers", fixture_body("eleanor_providers.json")), "Practitioner"
    )
    assert {"system": "http://hl7.org/fhir/sid/us-npi", "value": "12356789"} in provider[
        "identifier"
    ]
    assert provider["name"][0]["family"] == "Smith" and provider["gender"] == "male"


NOTHING = {
    "htd_2016_appointmenttypes.json": "appointmenttypes",
    "htd_2016_appointments_changed_subscription.json": "subscription",
    "eleanor_appointments_changed_subscription.json": "subscription",
    "eleanor_appointments_changed_subscription_events.json": "subscription",
    "htd_2016_patientappointmentreasons.json": "patientappointmentreasons",
}


@pytest.mark.parametrize("name", sorted(NOTHING))
def test_reference_answers_store_nothing_or_are_refused(name: str) -> None:
    kind = NOTHING[name]
    if kind == "patientappointmentreasons":
        with pytest.raises(RejectedInput, match="unknown athena envelope kind"):
            normalized(kind, fixture_body(name))
        return
    with pytest.raises(NothingToStore):
        normalized(kind, fixture_body(name))


def test_slot_create_answer_is_not_a_page_kind() -> None:
    with pytest.raises(RejectedInput, match="unknown athena envelope kind 'appointment-slots'"):
        normalized("appointment-slots", fixture_body("eleanor_appointment_slot_create.json"))


def test_cancel_answer_with_context() -> None:
    bundle = normalized(
        "appointment-cancel",
        fixture_body("htd_2016_appointment_cancel.json"),
        appointmentid="404627",
        patientid="1",
        cancellationreason="Patient request",
    )
    [appointment] = of_type(bundle, "Appointment")
    assert appointment["status"] == "cancelled" and "start" not in appointment
    assert appointment["cancelationReason"] == {"text": "Patient request"}
    assert bundle.event == "cancelled"


def test_cancel_answer_without_appointment_id_is_refused() -> None:
    with pytest.raises(MissingField, match="without the appointment id"):
        normalized("appointment-cancel", fixture_body("htd_2016_appointment_cancel.json"))


def test_reschedule_answer_without_a_time_is_refused() -> None:
    # athena 2016 answered a reschedule with no date or time; the client reads it back instead
    with pytest.raises(MissingField, match="204885 has no date/time"):
        normalized("appointment", fixture_body("htd_2016_appointment_reschedule.json"))


def test_error_bodies_are_refused_with_athenas_words() -> None:
    body = {"error": "Additional fields are required.", "missingfields": ["departmentid"]}
    with pytest.raises(AthenaError, match=r"Additional fields are required\..*departmentid"):
        normalized("appointments-open", body)


def test_empty_page_and_bad_input() -> None:
    with pytest.raises(NothingToStore, match="lists nothing"):
        normalized("appointments-booked", {"totalcount": 0, "appointments": []})
    broken = fixture_body("eleanor_appointments_open.json")["appointments"][:1]
    broken[0]["starttime"] = "9am"
    with pytest.raises(BadTime, match="'9am'"):
        normalized("appointments-open", {"appointments": broken})
    del broken[0]["appointmentid"]
    with pytest.raises(MissingField, match="without appointmentid"):
        normalized("appointments-open", {"appointments": broken})


def test_webhooks(mapping: MappingSet) -> None:
    resource = fixture_body("eleanor_appointments_booked.json")["appointments"][0]
    bundle = normalized("webhook", {"id": "evt-1", "type": "booked", "resource": resource}, mapping)
    assert bundle.event == "booked" and of_type(bundle, "Appointment")[0]["status"] == "booked"
    with pytest.raises(NothingToStore, match="schedule-updated evt-2 carries no appointment"):
        normalized("webhook", {"id": "evt-2", "type": "schedule-updated"}, mapping)
    with pytest.raises(RejectedInput, match="no event type"):
        normalized("webhook", {"id": "evt-3"}, mapping)
