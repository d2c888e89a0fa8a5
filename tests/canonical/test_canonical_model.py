"""Validation and helpers of the canonical model (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from canonical.errors import InvalidResource
from canonical.indexing import IndexEntry, columns_of, entries_of
from canonical.model import content_hash, parse_instant, split_reference, validate


def appointment(**changes: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2024-05-06T09:00:00Z",
        "end": "2024-05-06T09:30:00Z",
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "required": "required", "status": "accepted"}
        ],
    }
    resource.update(changes)
    return resource


def test_a_valid_appointment_passes() -> None:
    validate("Appointment", appointment())


@pytest.mark.parametrize(
    ("resource_type", "resource", "message"),
    [
        ("Appointment", appointment(status="done"), "Appointment.status is 'done'"),
        ("Appointment", appointment(participant=[]), "participant"),
        ("Appointment", appointment(start="2024-05-06T09:00:00"), "start"),
        ("Appointment", appointment(end="2024-05-06T08:00:00Z"), "before start"),
        ("Slot", appointment(), "resourceType is 'Appointment'"),
        ("Encounter", {"resourceType": "Encounter"}, "not stored"),
        (
            "Slot",
            {
                "resourceType": "Slot",
                "schedule": {"reference": "Schedule/s"},
                "status": "open",
                "start": "2024-05-06T09:00:00Z",
                "end": "2024-05-06T09:30:00Z",
            },
            "Slot.status is 'open'",
        ),
        ("Patient", {"resourceType": "Patient", "gender": "f"}, "Patient.gender"),
        (
            "Practitioner",
            {"resourceType": "Practitioner", "identifier": [{"use": "main", "value": "1"}]},
            r"identifier\[0\]\.use",
        ),
        ("Location", {"resourceType": "Location", "status": "open"}, "Location.status"),
    ],
)
def test_invalid_resources_say_what_is_wrong(
    resource_type: str, resource: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidResource, match=message):
        validate(resource_type, resource)


def test_untimed_appointment_only_for_statuses_r4_allows() -> None:
    untimed = appointment()
    del untimed["start"], untimed["end"]
    validate("Appointment", {**untimed, "status": "waitlist"})
    with pytest.raises(InvalidResource, match="app-3"):
        validate("Appointment", untimed)
    with pytest.raises(InvalidResource, match="app-2"):
        validate("Appointment", {**untimed, "start": "2024-05-06T09:00:00Z"})


def test_required_and_participant_status_code_lists() -> None:
    bad_required = appointment()
    bad_required["participant"][0]["required"] = "mandatory"
    with pytest.raises(InvalidResource, match=r"participant\[0\]\.required"):
        validate("Appointment", bad_required)


def test_content_hash_ignores_id_and_meta_but_not_content() -> None:
    base = appointment()
    stored = {**base, "id": "x", "meta": {"versionId": "3"}}
    assert content_hash(base) == content_hash(stored)
    assert content_hash(base) != content_hash(appointment(status="cancelled"))


def test_parse_instant_and_split_reference() -> None:
    assert parse_instant("2024-05-06T11:00:00+02:00") == datetime(2024, 5, 6, 9, tzinfo=UTC)
    with pytest.raises(InvalidResource, match="no timezone"):
        parse_instant("2024-05-06T11:00:00")
    assert split_reference("Practitioner/abc") == ("Practitioner", "abc")
    assert split_reference("https://ehr.example/fhir/Patient/p-1/_history/2") == ("Patient", "p-1")
    assert split_reference("#contained") is None
    assert split_reference("Patient?identifier=a|b") is None


def test_index_entries_and_columns() -> None:
    resource = appointment(
        serviceType=[{"coding": [{"system": "urn:st", "code": "124"}, {"code": "x"}]}],
        slot=[{"reference": "Slot/s1"}],
    )
    resource["participant"].append({"actor": {"reference": "Location/l1"}, "status": "accepted"})
    assert entries_of("Appointment", resource) == [
        IndexEntry("actor", "Patient", "p1"),
        IndexEntry("actor", "Location", "l1"),
        IndexEntry("slot", "Slot", "s1"),
        IndexEntry("service-type", "urn:st", "124"),
        IndexEntry("service-type", "", "x"),
    ]
    cols = columns_of("Appointment", resource)
    assert (cols.status, cols.start) == ("booked", datetime(2024, 5, 6, 9, tzinfo=UTC))
    slot_cols = columns_of("Slot", {"schedule": {"reference": "Schedule/s9"}, "status": "free"})
    assert slot_cols.schedule_id == "s9"


def test_content_hash_recognises_rows_hashed_by_the_stdlib_encoder() -> None:
    from canonical.model import legacy_content_hash, same_content

    resource = appointment(comment='é "x" \u2028', priority=1)
    assert content_hash(resource) == legacy_content_hash(resource)
    with_float = appointment(minutesDuration=1e-05)
    old = legacy_content_hash(with_float)
    assert same_content(old, content_hash(with_float), with_float)
    assert not same_content(old, content_hash(appointment()), appointment())
