"""Google events to Appointments and the busy Slots they make.

* Timed, opaque events block their time: a busy Slot ``<calendar>/event/<id>``.
* Transparent events ("show as available") are Appointments that block nothing.
* All-day events and recurring series masters are not appointments: noted and skipped (with
  ``singleEvents=true`` every occurrence arrives as its own instance).
* Cancelled events become cancelled Appointments; their Slot, when Google still sends the
  times, turns free. Deleted events in an incremental sync carry only id and status: the
  Appointment is cancelled without times (FHIR allows that for cancelled ones).
* Events this adapter booked carry the canonical slot and patient in
  ``extendedProperties.private``; the Appointment names both again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.google.resources import CalendarRecords, event_slot_id, event_source_id
from adapters.google.times import event_time, instant
from canonical.errors import RejectedInput
from canonical.records import Identifier, SourceBundle, SourceRecord, conditional_reference

BOOKED_SLOT_KEY = "harmonySlot"
PATIENT_KEY = "harmonyPatient"
APPOINTMENT_TYPE_KEY = "harmonyAppointmentType"
BOOKED_SLOT_URL = "urn:harmony:google:booked-slot"
RECURRING_EVENT_URL = "urn:harmony:google:recurring-event-id"

_RESPONSE_STATUS = {
    "accepted": "accepted",
    "declined": "declined",
    "tentative": "tentative",
    "needsAction": "needs-action",
}


class MalformedEvent(RejectedInput):
    """An event Google would never send (no id, no times on a live event)."""


def _self_response(event: dict[str, Any], calendar_id: str) -> str | None:
    for attendee in event.get("attendees") or []:
        if attendee.get("self") or attendee.get("email") == calendar_id:
            return _RESPONSE_STATUS.get(str(attendee.get("responseStatus")))
    return None


def event_records(builder: CalendarRecords, event: Any, bundle: SourceBundle) -> list[SourceRecord]:
    """The Slot and Appointment one event gives (Practitioner and Schedule come from the caller)."""
    if not isinstance(event, dict) or not event.get("id"):
        raise MalformedEvent(f"an event of calendar {builder.calendar.calendar_id} has no id")
    cid, event_id = builder.calendar.calendar_id, str(event["id"])
    status = builder.mapping.status(str(event.get("status") or "confirmed"))
    cancelled = status == "cancelled"
    if event.get("recurrence") and not event.get("recurringEventId"):
        bundle.notes.append(f"event {event_id} is a recurring series; its instances are synced")
        return []
    start: datetime | None = None
    end: datetime | None = None
    if "start" in event or not cancelled:
        zone = builder.calendar.timezone
        first = event_time(event.get("start"), f"event {event_id} start", zone)
        last = event_time(event.get("end"), f"event {event_id} end", zone)
        if not isinstance(first, datetime):
            bundle.notes.append(f"event {event_id} is an all-day event: it blocks no slots")
            return []
        if not isinstance(last, datetime):
            raise MalformedEvent(f"event {event_id} starts at a time but ends on a date")
        start, end = first, last
    private = (event.get("extendedProperties") or {}).get("private") or {}
    records: list[SourceRecord] = []
    slot_refs = []
    original = (event.get("start") or {}).get("dateTime")
    if start is not None and end is not None and event.get("transparency") != "transparent":
        slot_id = event_slot_id(cid, event_id)
        records.append(builder.slot(slot_id, start, end, "free" if cancelled else "busy", original))
        slot_refs.append(builder.slot_reference(slot_id))

    participation = "declined" if cancelled else (_self_response(event, cid) or "accepted")
    participants = [builder.practitioner_participant(participation)]
    if isinstance(private.get(PATIENT_KEY), str) and "|" in private[PATIENT_KEY]:
        system, value = private[PATIENT_KEY].split("|", 1)
        participants.append(
            {
                "actor": {"reference": conditional_reference("Patient", system, value)},
                "required": "required",
                "status": participation,
            }
        )
    source_id = event_source_id(cid, event_id)
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "identifier": [{"system": builder.event_system, "value": source_id}],
        "status": status,
        "participant": participants,
    }
    extensions = []
    if isinstance(private.get(BOOKED_SLOT_KEY), str):
        extensions.append({"url": BOOKED_SLOT_URL, "valueString": private[BOOKED_SLOT_KEY]})
    if event.get("recurringEventId"):
        extensions.append({"url": RECURRING_EVENT_URL, "valueString": event["recurringEventId"]})
    if extensions:
        appointment["extension"] = extensions
    if event.get("summary"):
        appointment["description"] = str(event["summary"])
    if code := private.get(APPOINTMENT_TYPE_KEY):
        mapped = builder.mapping.appointment_type(str(code))
        if mapped is None:
            bundle.unmapped.append(("appointment_types", str(code)))
            appointment["appointmentType"] = {"text": str(code)}
        else:
            appointment["appointmentType"] = {
                "coding": [mapped.model_dump(exclude_none=True)],
                "text": str(code),
            }
    if start is not None and end is not None:
        appointment["start"] = instant(start)
        appointment["end"] = instant(end)
        minutes = round((end - start).total_seconds() / 60)
        if minutes >= 1:
            appointment["minutesDuration"] = minutes
    if slot_refs:
        appointment["slot"] = slot_refs
    if event.get("created"):
        appointment["created"] = str(event["created"])
    if event.get("description"):
        appointment["comment"] = str(event["description"])
    ids = [Identifier(builder.event_system, source_id)]
    records.append(SourceRecord("Appointment", ids, appointment, original_time_text=original))
    return records
