"""SourceBundles shaped like what an HL7 SIU adapter produces, for canonical and FHIR API tests.

Not a test module: imported by tests in tests/canonical and tests/api.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from canonical.records import (
    Identifier,
    Provenance,
    SourceBundle,
    SourceRecord,
    conditional_reference,
)

GMED = "urn:harmony:gmed"
MRN = f"{GMED}:mrn"
PROVIDER = f"{GMED}:provider"
ROOM = f"{GMED}:location"
SCHEDULE = f"{GMED}:schedule"
SLOT = f"{GMED}:slot"
APPOINTMENT = f"{GMED}:appointment"
NPI = "http://hl7.org/fhir/sid/us-npi"
SERVICE_TYPE = "http://terminology.hl7.org/CodeSystem/service-type"


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def provenance(message_id: int | None = 1, source: str = "gmed") -> Provenance:
    return Provenance(
        source_system=source,
        message_id=message_id,
        mapping_version="gmed-v1",
        received_at=datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
    )


def _ident(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def patient(mrn: str, family: str = "Doe") -> SourceRecord:
    return SourceRecord(
        "Patient",
        [Identifier(MRN, mrn)],
        {"resourceType": "Patient", "name": [{"family": family}], "gender": "female"},
    )


def practitioner(code: str, npi: str | None = None) -> SourceRecord:
    idents = [Identifier(PROVIDER, code)] + ([Identifier(NPI, npi)] if npi else [])
    return SourceRecord(
        "Practitioner",
        idents,
        {"resourceType": "Practitioner", "name": [{"family": f"Dr {code}"}]},
    )


def location(code: str) -> SourceRecord:
    return SourceRecord(
        "Location",
        [Identifier(ROOM, code)],
        {"resourceType": "Location", "name": f"Room {code}", "status": "active"},
    )


def schedule(provider_code: str) -> SourceRecord:
    return SourceRecord(
        "Schedule",
        [Identifier(SCHEDULE, provider_code)],
        {
            "resourceType": "Schedule",
            "actor": [
                {"reference": conditional_reference("Practitioner", PROVIDER, provider_code)}
            ],
            "serviceType": [{"coding": [{"system": SERVICE_TYPE, "code": "124"}]}],
        },
    )


def slot(
    slot_id: str, provider_code: str, start: datetime, minutes: int = 30, status: str = "busy"
) -> SourceRecord:
    return SourceRecord(
        "Slot",
        [Identifier(SLOT, slot_id)],
        {
            "resourceType": "Slot",
            "schedule": {"reference": conditional_reference("Schedule", SCHEDULE, provider_code)},
            "status": status,
            "start": instant(start),
            "end": instant(start + timedelta(minutes=minutes)),
            "serviceType": [{"coding": [{"system": SERVICE_TYPE, "code": "124"}]}],
        },
    )


def appointment(
    appt_id: str,
    start: datetime,
    *,
    status: str = "booked",
    mrn: str = "MRN1",
    provider_code: str = "DR1",
    room: str = "ROOM1",
    minutes: int = 30,
    service_code: str = "124",
    comment: str | None = None,
) -> SourceRecord:
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "status": status,
        "serviceType": [{"coding": [{"system": SERVICE_TYPE, "code": service_code}]}],
        "start": instant(start),
        "end": instant(start + timedelta(minutes=minutes)),
        "slot": [{"reference": conditional_reference("Slot", SLOT, f"{appt_id}-slot")}],
        "participant": [
            {
                "actor": {"reference": conditional_reference("Patient", MRN, mrn)},
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {
                    "reference": conditional_reference("Practitioner", PROVIDER, provider_code)
                },
                "required": "required",
                "status": "accepted",
            },
            {
                "actor": {"reference": conditional_reference("Location", ROOM, room)},
                "required": "required",
                "status": "accepted",
            },
        ],
    }
    if comment:
        resource["comment"] = comment
    return SourceRecord(
        "Appointment",
        [Identifier(APPOINTMENT, appt_id)],
        resource,
        original_time_text=start.strftime("%Y%m%d%H%M%S"),
    )


def siu_bundle(
    appt_id: str,
    start: datetime,
    *,
    status: str = "booked",
    mrn: str = "MRN1",
    provider_code: str = "DR1",
    room: str = "ROOM1",
    minutes: int = 30,
    service_code: str = "124",
    comment: str | None = None,
) -> SourceBundle:
    """Patient, practitioner, location, schedule, busy slot and the appointment, in order."""
    slot_status = "free" if status == "cancelled" else "busy"
    return SourceBundle(
        records=[
            patient(mrn),
            practitioner(provider_code, npi=f"9{provider_code}"),
            location(room),
            schedule(provider_code),
            slot(f"{appt_id}-slot", provider_code, start, minutes, slot_status),
            appointment(
                appt_id,
                start,
                status=status,
                mrn=mrn,
                provider_code=provider_code,
                room=room,
                minutes=minutes,
                service_code=service_code,
                comment=comment,
            ),
        ],
        event="booked" if status == "booked" else status,
    )
