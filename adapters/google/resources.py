"""FHIR R4 resources for one calendar: its Practitioner, Schedule, Slots and Appointments.

Ids (values of primary identifiers, systems from ``source_system``):
* ``calendar``: the calendar id, for the Practitioner and the Schedule;
* ``slot``: ``<calendar id>/<start instant>`` for working-hours slots, and
  ``<calendar id>/event/<event id>`` for the time an event blocks;
* ``event``: ``<calendar id>/<event id>`` for Appointments (an event id alone is shared by
  every attendee's copy of the event, and cancelling needs the calendar anyway).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.contract import source_system
from adapters.google.options import CalendarOptions
from adapters.google.times import instant
from canonical.records import Identifier, SourceRecord, conditional_reference
from mappings.model import MappingSet


def event_source_id(calendar_id: str, event_id: str) -> str:
    return f"{calendar_id}/{event_id}"


def split_event_source_id(source_id: str) -> tuple[str, str]:
    """(calendar id, event id); calendar ids never hold '/', event ids neither."""
    calendar_id, sep, event_id = source_id.rpartition("/")
    if not sep or not calendar_id or not event_id:
        raise ValueError(f"{source_id!r} is not '<calendar id>/<event id>'")
    return calendar_id, event_id


def grid_slot_id(calendar_id: str, start: datetime) -> str:
    return f"{calendar_id}/{instant(start)}"


def event_slot_id(calendar_id: str, event_id: str) -> str:
    return f"{calendar_id}/event/{event_id}"


class CalendarRecords:
    """Builds one integration's records for one calendar, all sharing its references."""

    def __init__(self, integration: str, calendar: CalendarOptions, mapping: MappingSet) -> None:
        self.integration = integration
        self.calendar = calendar
        self.mapping = mapping
        self.calendar_system = source_system(integration, "calendar")
        self.slot_system = source_system(integration, "slot")
        self.event_system = source_system(integration, "event")
        cid = calendar.calendar_id
        self.practitioner_ref = conditional_reference("Practitioner", self.calendar_system, cid)
        self.schedule_ref = conditional_reference("Schedule", self.calendar_system, cid)

    def practitioner(self) -> SourceRecord:
        cid = self.calendar.calendar_id
        ids = [Identifier(self.calendar_system, cid)]
        crosswalk = self.mapping.provider(cid)
        if crosswalk is not None:
            ids.append(Identifier(crosswalk.system, crosswalk.value))
        resource = {
            "resourceType": "Practitioner",
            "identifier": [{"system": i.system, "value": i.value} for i in ids],
            "active": True,
            "name": [{"text": self.calendar.practitioner}],
        }
        return SourceRecord("Practitioner", ids, resource)

    def schedule(self) -> SourceRecord:
        cid = self.calendar.calendar_id
        resource = {
            "resourceType": "Schedule",
            "identifier": [{"system": self.calendar_system, "value": cid}],
            "active": True,
            "actor": [{"reference": self.practitioner_ref, "display": self.calendar.practitioner}],
            "comment": f"Google Calendar {cid} ({self.calendar.timezone})",
        }
        return SourceRecord("Schedule", [Identifier(self.calendar_system, cid)], resource)

    def slot(
        self, slot_id: str, start: datetime, end: datetime, status: str, original: str | None = None
    ) -> SourceRecord:
        resource = {
            "resourceType": "Slot",
            "identifier": [{"system": self.slot_system, "value": slot_id}],
            "schedule": {"reference": self.schedule_ref},
            "status": status,
            "start": instant(start),
            "end": instant(end),
        }
        return SourceRecord("Slot", [Identifier(self.slot_system, slot_id)], resource, original)

    def slot_reference(self, slot_id: str) -> dict[str, Any]:
        return {"reference": conditional_reference("Slot", self.slot_system, slot_id)}

    def practitioner_participant(self, status: str) -> dict[str, Any]:
        return {
            "actor": {"reference": self.practitioner_ref, "display": self.calendar.practitioner},
            "required": "required",
            "status": status,
        }
