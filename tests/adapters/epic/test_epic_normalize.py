"""Published FHIR examples and hand-made edge bodies through the Epic normalizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.contract import source_system
from adapters.epic.normalize import normalize_bytes
from canonical.errors import NothingToStore, RejectedInput
from canonical.model import validate
from canonical.records import SourceBundle
from mappings.model import MappingSet, UnmappedCode
from tests.adapters.epic.epic_helpers import (
    FIXTURES,
    INTEGRATION,
    SHARED_FIXTURES,
    epic_mapping,
    wrap,
)

KIND = {
    "ihe_iti_scheduling_bundle_r4.json": "find-bundle",
    "r4spec_appointment-example-request.json": "appointment",
    "r4spec_appointment-example.json": "appointment",
}
"""Every other fixture is a single resource read (kind ``resource``)."""

EXPECTED = {
    "ihe_iti_scheduling_bundle_r4.json": [
        ("Practitioner", "dr-y"),
        ("Appointment", "proposed-appt1a-1"),
        ("Appointment", "proposed-appt1a-2"),
        ("Appointment", "proposed-appt1a-3"),
    ],
    "r4spec_appointment-example-request.json": [
        ("Patient", "example"),
        ("Location", "1"),
        ("Appointment", "examplereq"),
    ],
    "r4spec_appointment-example.json": [
        ("Patient", "example"),
        ("Practitioner", "example"),
        ("Location", "1"),
        ("Appointment", "example"),
    ],
    "r4spec_location-example.json": [("Location", "1")],
    "r4spec_practitioner-example.json": [("Practitioner", "example")],
    "r4spec_schedule-example.json": [("Location", "1"), ("Schedule", "example")],
    "r4spec_schedule-provider-location1-example.json": [
        ("Practitioner", "1"),
        ("Location", "3"),
        ("Schedule", "exampleloc1"),
    ],
    "r4spec_slot-example-busy.json": [("Slot", "1")],
    "r4spec_slot-example-tentative.json": [("Slot", "2")],
    "r4spec_slot-example.json": [("Slot", "example")],
    # Not licensed for copying: read from the shared folder when it is there.
    "argonaut_appointment_proposed_stu3.json": [
        ("Practitioner", "dr-y"),
        ("Appointment", "proposed-appt1"),
    ],
    "argonaut_find_response_bundle_stu3.json": [
        ("Practitioner", "dr-y"),
        ("Appointment", "proposed-appt1a-1"),
        ("Appointment", "proposed-appt1a-2"),
        ("Appointment", "proposed-appt1a-3"),
    ],
    "argonaut_schedule_stu3.json": [("Practitioner", "dr-y"), ("Schedule", "example1")],
    "argonaut_slot_stu3.json": [("Slot", "2017-09-07T154500-arg-s-6")],
    "cerner_r4_practitioner.json": [("Practitioner", "4122622")],
    "cerner_r4_schedule.json": [
        ("Practitioner", "593923"),
        ("Schedule", "24477854-21304876-62852027-0"),
    ],
    "cerner_r4_slot_bundle_include_schedule.json": [
        ("Schedule", "4047611-32216049-61518614-0"),
        ("Slot", "4047611-32216049-61518614-0"),
    ],
}
KIND.update(
    {
        "argonaut_appointment_proposed_stu3.json": "appointment",
        "argonaut_find_response_bundle_stu3.json": "find-bundle",
        "cerner_r4_slot_bundle_include_schedule.json": "slot-bundle",
    }
)
REFUSED = {
    "r4spec_appointmentresponse-example.json": (
        NothingToStore,
        "AppointmentResponse is not a resource Harmony stores",
    ),
    "argonaut_book_request_parameters_stu3.json": (
        RejectedInput,
        "Parameters (appt-id, patient-id) carry no resource",
    ),
}
LOCAL = sorted(p.name for p in FIXTURES.glob("*.json"))
SHARED_ONLY = sorted(n for n in {*EXPECTED, *REFUSED} if n not in LOCAL)


def _load(name: str) -> Any:
    path = FIXTURES / name
    if not path.exists():
        path = SHARED_FIXTURES / name
        if not path.exists():
            pytest.skip(f"{name} is only in {SHARED_FIXTURES}, which is not here")
    return json.loads(path.read_bytes())


def _normalize(name: str, mapping: MappingSet) -> SourceBundle:
    return normalize_bytes(wrap(KIND.get(name, "resource"), _load(name)), mapping, "UTC")


def test_every_local_fixture_is_covered() -> None:
    assert set(LOCAL) <= {*EXPECTED, *REFUSED}
    assert len(LOCAL) == 11


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_normalizes_to_valid_records(name: str, mapping: MappingSet) -> None:
    bundle = _normalize(name, mapping)
    assert [(r.resource_type, r.identifiers[0].value) for r in bundle.records] == EXPECTED[name]
    for record in bundle.records:
        assert record.identifiers[0].system == source_system(INTEGRATION, record.resource_type)
        assert record.resource["identifier"][0] == {
            "system": record.identifiers[0].system,
            "value": record.identifiers[0].value,
        }
        validate(record.resource_type, record.resource)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_fixture_is_refused_with_its_reason(name: str, mapping: MappingSet) -> None:
    error, reason = REFUSED[name]
    with pytest.raises(error, match=reason.replace("(", r"\(").replace(")", r"\)")):
        _normalize(name, mapping)


def test_references_point_at_records_of_the_same_bundle(mapping: MappingSet) -> None:
    bundle = _normalize("r4spec_appointment-example.json", mapping)
    appointment = bundle.records[-1].resource
    system = source_system(INTEGRATION, "Practitioner")
    actors = [p.get("actor", {}) for p in appointment["participant"]]
    assert {
        "reference": f"Practitioner?identifier={system}|example",
        "display": "Dr Adam Careful",
    } in actors
    assert bundle.records[0].resource["name"] == [{"text": "Peter James Chalmers"}]
    assert any("reasonReference not kept" in n for n in bundle.notes)
    assert bundle.unmapped == [("appointment_types", "FOLLOWUP")]


def test_vendor_identifiers_follow_the_primary(mapping: MappingSet) -> None:
    slot = _normalize("r4spec_slot-example-busy.json", mapping).records[0]
    assert slot.identifiers[1] == ("http://example.org/identifiers/slots", "123132")
    schedule = _normalize("r4spec_schedule-example.json", mapping).records[-1]
    assert schedule.identifiers[1] == ("http://example.org/scheduleid", "45")
    location = _normalize("r4spec_location-example.json", mapping).records[0]
    assert len(location.identifiers) == 1  # "B1-S.F2" has no system: not a lookup key


def test_slot_page_with_included_schedule_keeps_display_only_actor(mapping: MappingSet) -> None:
    bundle = _normalize("cerner_r4_slot_bundle_include_schedule.json", mapping)
    schedule, slot = bundle.records
    assert schedule.resource["actor"] == [{"display": "OR Add-On 02"}]
    system = source_system(INTEGRATION, "Schedule")
    assert slot.resource["schedule"] == {
        "reference": f"Schedule?identifier={system}|4047611-32216049-61518614-0"
    }


def test_find_outcome_rides_along_as_a_note(mapping: MappingSet) -> None:
    bundle = _normalize("ihe_iti_scheduling_bundle_r4.json", mapping)
    assert bundle.event == "proposed"
    assert bundle.notes == [
        "information informational: the appointment availability operation was successful"
    ]


def test_error_outcome_is_refused_with_its_diagnostics(mapping: MappingSet) -> None:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "Slot eX is gone"}],
    }
    with pytest.raises(RejectedInput, match="error not-found: Slot eX is gone"):
        normalize_bytes(wrap("slot-bundle", body), mapping, "UTC")
    in_bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": body}]}
    with pytest.raises(RejectedInput, match="Slot eX is gone"):
        normalize_bytes(wrap("slot-bundle", in_bundle), mapping, "UTC")


def test_empty_searchset_is_nothing_to_store(mapping: MappingSet) -> None:
    empty = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "processing",
                            "diagnostics": "No resources were found.",
                        }
                    ],
                },
                "search": {"mode": "outcome"},
            }
        ],
    }
    with pytest.raises(NothingToStore, match="No resources were found"):
        normalize_bytes(wrap("slot-bundle", empty), mapping, "UTC")


def test_local_times_without_offset_use_the_integration_zone(mapping: MappingSet) -> None:
    slot = {
        "resourceType": "Slot",
        "id": "eSl1",
        "schedule": {"reference": "Schedule/eSc1"},
        "status": "free",
        "start": "2025-01-15T09:00:00",
        "end": "2025-01-15T09:20:00",
    }
    bundle = normalize_bytes(wrap("resource", slot, timezone="America/Chicago"), mapping, "UTC")
    record = bundle.records[0]
    assert record.resource["start"] == "2025-01-15T09:00:00-06:00"
    assert record.resource["end"] == "2025-01-15T09:20:00-06:00"
    assert record.original_time_text == "2025-01-15T09:00:00/2025-01-15T09:20:00"
    by_mapping = normalize_bytes(wrap("resource", slot), epic_mapping("Europe/Paris"), "UTC")
    assert by_mapping.records[0].resource["start"] == "2025-01-15T09:00:00+01:00"


def test_unmapped_status_is_fatal(mapping: MappingSet) -> None:
    body = _load("r4spec_appointment-example.json")
    body["status"] = "on-hold"
    with pytest.raises(UnmappedCode, match="'on-hold'"):
        normalize_bytes(wrap("appointment", body), mapping, "UTC")


@pytest.mark.parametrize(
    ("body", "error", "reason"),
    [
        (
            {"resourceType": "Slot", "id": "a", "status": "free"},
            RejectedInput,
            "Schedule reference",
        ),
        (
            {"resourceType": "Slot", "id": "a", "schedule": {"reference": "Schedule/b"}},
            RejectedInput,
            "lacks status, start or end",
        ),
        ({"resourceType": "Schedule", "id": "s"}, RejectedInput, "has no actor"),
        ({"resourceType": "Appointment", "id": "x"}, RejectedInput, "has no status"),
        ({"resourceType": "Slot"}, RejectedInput, "Slot without an id"),
        ([1, 2], RejectedInput, "not a FHIR resource"),
    ],
)
def test_bodies_missing_required_fields_are_refused(
    body: Any, error: type[Exception], reason: str, mapping: MappingSet
) -> None:
    with pytest.raises(error, match=reason):
        normalize_bytes(wrap("resource", body), mapping, "UTC")


def test_webhook_with_resource_is_normalized(mapping: MappingSet) -> None:
    hook = {
        "id": "evt-1",
        "type": "cancelled",
        "resource": _load("r4spec_appointment-example.json"),
    }
    hook["resource"]["status"] = "cancelled"
    bundle = normalize_bytes(wrap("webhook", hook), mapping, "UTC")
    assert bundle.event == "cancelled"
    assert bundle.records[-1].resource["status"] == "cancelled"


@pytest.mark.parametrize(
    ("hook", "error", "reason"),
    [
        ({"id": "evt-2", "type": "booked"}, NothingToStore, "carries no resource"),
        ({"id": "evt-3", "type": "patient-merged"}, NothingToStore, "not a scheduling event"),
        ({"id": "evt-4"}, RejectedInput, "lacks its event type"),
    ],
)
def test_webhook_without_resource_or_type(
    hook: dict[str, Any], error: type[Exception], reason: str, mapping: MappingSet
) -> None:
    with pytest.raises(error, match=reason):
        normalize_bytes(wrap("webhook", hook), mapping, "UTC")


def test_unknown_kind_and_non_envelope_are_refused(mapping: MappingSet) -> None:
    with pytest.raises(RejectedInput, match="unknown Epic envelope kind 'patient-list'"):
        normalize_bytes(wrap("patient-list", {}), mapping, "UTC")
    with pytest.raises(RejectedInput, match="not a Harmony envelope"):
        normalize_bytes(Path(FIXTURES / "r4spec_slot-example.json").read_bytes(), mapping, "UTC")


def test_shared_only_fixtures_are_read_from_the_shared_folder() -> None:
    if not SHARED_FIXTURES.exists():
        pytest.skip(f"{SHARED_FIXTURES} is not here")
    assert all((SHARED_FIXTURES / name).exists() for name in SHARED_ONLY)
