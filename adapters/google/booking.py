"""A canonical booking request as the Google event that holds the slot.

The event carries the canonical slot id, patient identifier and appointment type in
``extendedProperties.private`` (never shown to attendees), so the synced event normalizes
back to an Appointment that names the same slot and patient.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from adapters.contract import BookingRequest, SourceError
from adapters.google.events import APPOINTMENT_TYPE_KEY, BOOKED_SLOT_KEY, PATIENT_KEY
from adapters.google.times import BadTime, parse_rfc3339


def slot_calendar(slot_source_id: str) -> str:
    """The calendar a slot id belongs to (``<calendar>/<start>`` or ``<calendar>/event/<id>``)."""
    head, sep, _ = slot_source_id.partition("/event/")
    if sep:
        return head
    calendar_id, sep, _ = slot_source_id.rpartition("/")
    if not sep or not calendar_id:
        raise SourceError(f"{slot_source_id!r} is not a Google slot id", retryable=False)
    return calendar_id


def slot_window(request: BookingRequest) -> tuple[datetime, datetime]:
    try:
        start = parse_rfc3339(request.slot.get("start"), "Slot.start")
        end = parse_rfc3339(request.slot.get("end"), "Slot.end")
    except BadTime as exc:
        raise SourceError(
            f"cannot book slot {request.slot_source_id}: {exc}", retryable=False
        ) from None
    if end <= start:
        raise SourceError(f"slot {request.slot_source_id} ends before it starts", retryable=False)
    return start, end


def _patient_email(patient: dict[str, Any] | None) -> str | None:
    for telecom in (patient or {}).get("telecom") or []:
        if telecom.get("system") == "email" and telecom.get("value"):
            return str(telecom["value"])
    return None


def _patient_key(patient: dict[str, Any] | None) -> str | None:
    for ident in (patient or {}).get("identifier") or []:
        if ident.get("system") and ident.get("value"):
            return f"{ident['system']}|{ident['value']}"
    return None


def event_body(
    request: BookingRequest, start: datetime, end: datetime, timezone: str
) -> dict[str, Any]:
    """The events.insert body for the slot's window, in the calendar's own zone."""
    zone = ZoneInfo(timezone)
    private = {BOOKED_SLOT_KEY: request.slot_source_id}
    if key := _patient_key(request.patient):
        private[PATIENT_KEY] = key
    if request.appointment_type:
        private[APPOINTMENT_TYPE_KEY] = request.appointment_type
    body: dict[str, Any] = {
        "summary": request.appointment_type or request.reason or "Appointment",
        "start": {"dateTime": start.astimezone(zone).isoformat(), "timeZone": timezone},
        "end": {"dateTime": end.astimezone(zone).isoformat(), "timeZone": timezone},
        "transparency": "opaque",
        "extendedProperties": {"private": private},
    }
    description = [text for text in (request.reason, request.comment) if text]
    if description:
        body["description"] = "\n".join(description)
    if email := _patient_email(request.patient):
        body["attendees"] = [{"email": email}]
    return body
