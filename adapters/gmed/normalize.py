"""GMED SIU and ADT messages to a SourceBundle of canonical FHIR R4 records.

* SIU S12-S26: Patient, Practitioners / Locations / Devices, a Schedule and Slot per actor
  (busy; free once the appointment is cancelled or entered in error), then the Appointment.
* ADT triggers the mapping set lists (A04, A08): the Patient. Other ADT triggers, ACKs and
  other message types raise ``NotSchedulingMessage`` (the hub files them as filtered); an SIU
  trigger the mapping set lacks raises ``UnmappedCode`` (parked until the mapping is fixed).

Appointment ids: SCH-2 (filler, GMED owns the appointment) first, then SCH-1 (placer); either
finds the appointment later. Status: the trigger rule's fixed status, else SCH-25 through the
status table, else the first AIx filler status, else 'booked'. SCH-25 as sent is kept on the
Appointment in the extension ``urn:harmony:gmed:filler-status`` and the trigger event in
``urn:harmony:gmed:trigger-event``. Appointment type: SCH-8, else SCH-7, through the
appointment-type table; an unmapped one is reported in ``bundle.unmapped`` and kept as text.
Z-segments are read past and not mapped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from adapters.gmed.codes import concept, system
from adapters.gmed.errors import HL7ParseError, IncompleteMessage, NotSchedulingMessage
from adapters.gmed.parser import (
    Message,
    Segment,
    notes_after,
    parse_message,
    siu_resource_segments,
)
from adapters.gmed.patient import patient_record
from adapters.gmed.resources import Resources, read_resources
from adapters.gmed.timing import TimeMemo, Window, appointment_window
from canonical.errors import InvalidResource
from canonical.model import APPOINTMENT_STATUS
from canonical.records import Identifier, SourceBundle, SourceRecord, conditional_reference
from mappings.model import MappingSet

__all__ = [
    "FILLER_STATUS_URL",
    "TRIGGER_EVENT_URL",
    "normalize",
    "normalize_bytes",
]

FILLER_STATUS_URL = "urn:harmony:gmed:filler-status"
TRIGGER_EVENT_URL = "urn:harmony:gmed:trigger-event"
_TIMELESS_OK = frozenset({"proposed", "cancelled", "waitlist", "entered-in-error"})
_SLOT_FREE = frozenset({"cancelled", "entered-in-error"})
_PARTICIPANT_STATUS = {
    "proposed": "needs-action",
    "pending": "tentative",
    "waitlist": "tentative",
    "cancelled": "declined",
    "noshow": "declined",
    "entered-in-error": "declined",
}

_new = tuple.__new__
"""``Identifier(system, value)`` without the Python frame of the named tuple's ``__new__``."""


def normalize_bytes(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    """Parse and normalize one message as received over MLLP."""
    return normalize(parse_message(raw), mapping, default_timezone)


def normalize(message: Message, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    """The records one GMED message describes, referenced records first."""
    msh9 = message.msh.components(9, 2)  # message_code and trigger_event in one read
    code, trigger = msh9[0].strip().upper(), msh9[1].strip().upper()
    if code not in ("SIU", "ADT"):
        kind = f"{code}^{trigger}" if trigger else code or "(empty MSH-9)"
        raise NotSchedulingMessage(f"{kind} is not a scheduling or patient message")
    if not trigger:
        raise HL7ParseError(f"MSH-9 {code!r} has no trigger event (MSH-9.2)")
    zone = mapping.zone(default_timezone)
    if code == "ADT":
        if trigger not in mapping.content.trigger_events:
            raise NotSchedulingMessage(
                f"ADT^{trigger} is not one of the ADT events mapping set {mapping.label} uses"
            )
        return _adt(message, mapping.trigger(trigger).event)
    return _siu(message, mapping, zone, trigger)


def _adt(message: Message, event: str) -> SourceBundle:
    bundle = SourceBundle(event=event)
    pid = message.segment("PID")
    if pid is None:
        raise IncompleteMessage(f"ADT^{message.trigger_event} has no PID segment")
    record = patient_record(pid, bundle.notes)
    if record is None:
        raise IncompleteMessage(f"ADT^{message.trigger_event} PID-3 holds no patient identifier")
    bundle.records.append(record)
    return bundle


def _appointment_ids(sch: Segment) -> list[Identifier]:
    ids: list[Identifier] = []
    for kind, n in (("filler", 2), ("placer", 1)):
        value, namespace, universal = sch.components(n, 3)[:3]
        if value:
            ids.append(_new(Identifier, (system(kind, namespace or universal), value)))
    if not ids:
        raise IncompleteMessage(
            "SCH-1 (placer) and SCH-2 (filler) are both empty: no appointment id"
        )
    return ids


def _status(rule_status: str | None, raw_status: str, res: Resources, mapping: MappingSet) -> str:
    if rule_status:
        status = rule_status
    else:
        code = raw_status or (res.filler_statuses[0] if res.filler_statuses else "")
        status = mapping.status(code) if code else "booked"
    if status not in APPOINTMENT_STATUS:
        raise InvalidResource(
            f"mapping set {mapping.label} gives {status!r}, not a FHIR Appointment status"
        )
    return status


def _participant_status(code: str, appointment_status: str, mapping: MappingSet) -> str:
    status = mapping.status(code) if code else appointment_status
    return _PARTICIPANT_STATUS.get(status, "accepted")


def _instant(moment: datetime) -> str:
    """FHIR instant in UTC: seconds always, microseconds only when there are some."""
    if moment.tzinfo is UTC:  # as every HL7Time.utc and sum of one is
        return moment.isoformat()[:-6] + "Z"  # without its '+00:00'
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


_Instants = dict[datetime, str]
"""One message's instants, each formatted once however many records carry it."""


def _instant_of(instants: _Instants, moment: datetime) -> str:
    text = instants.get(moment)
    if text is None:
        text = instants[moment] = _instant(moment)
    return text


def _note_text(nte: Segment) -> str:
    lines = [rep.component(1) for rep in nte.repetitions(3)]
    text = "\n".join(line for line in lines if line)
    return text or nte.field(2)


def _siu(message: Message, mapping: MappingSet, zone: ZoneInfo, trigger: str) -> SourceBundle:
    rule = mapping.trigger(trigger)
    bundle = SourceBundle(event=rule.event)
    notes = bundle.notes
    sch = message.segment("SCH")
    if sch is None:
        raise IncompleteMessage(f"SIU^{trigger} has no SCH segment")
    ids = _appointment_ids(sch)
    memo: TimeMemo = {}
    res = read_resources(siu_resource_segments(message), mapping, zone, notes, memo)
    raw_status = sch.component(25)  # SCH-25 as sent
    status = _status(rule.status, raw_status, res, mapping)
    window = appointment_window(message, sch, res.timings, zone, notes, memo)
    if (window.start is None or window.end is None) and status not in _TIMELESS_OK:
        raise IncompleteMessage(
            f"SIU^{trigger} {ids[0].value}: no start and end in TQ1, SCH-11 or the AIx segments "
            f"for a {status} appointment"
        )

    pid = message.segment("PID")
    patient = patient_record(pid, notes) if pid is not None else None
    records = bundle.records
    if patient is not None:
        records.append(patient)
    for actor in res.actors.values():
        records.append(actor.record)

    instants: _Instants = {}
    slot_refs = _schedules_and_slots(bundle, res, ids[0], window, status, instants)
    appointment = _appointment(
        message,
        sch,
        ids,
        status,
        raw_status,
        window,
        res,
        slot_refs,
        mapping,
        bundle,
        trigger,
        instants,
    )
    participants: list[dict[str, Any]] = []
    if patient is not None:
        first = patient.identifiers[0]
        participants.append(
            {
                "actor": {"reference": conditional_reference("Patient", first.system, first.value)},
                "status": _PARTICIPANT_STATUS.get(status, "accepted"),
            }
        )
    seen: set[str] = set()
    window_start = window.start.utc if window.start is not None else None
    part_statuses: dict[str, str] = {}  # filler status -> participant status, this message
    for part in res.participations:
        part_actor = part.actor  # its participant's actor reference, when it has one
        if part_actor is not None:
            ref = part_actor.reference
            if ref in seen:
                continue
            seen.add(ref)
        entry = part.participant  # made for this participation alone: completed in place
        code = part.filler_status
        part_status = part_statuses.get(code)
        if part_status is None:
            part_status = part_statuses[code] = _participant_status(code, status, mapping)
        entry["status"] = part_status
        timing = part.timing
        if timing.start is not None:
            part_end = timing.end
            if (
                window_start is None
                or timing.start.utc != window_start
                or (part_end is not None and part_end != window.end)
            ):
                period = {"start": _instant_of(instants, timing.start.utc)}
                if part_end is not None:
                    period["end"] = _instant_of(instants, part_end)
                entry["period"] = period
        participants.append(entry)
    if not participants:
        raise IncompleteMessage(f"SIU^{trigger} {ids[0].value} names no patient and no resource")
    appointment["participant"] = participants
    bundle.records.append(
        SourceRecord("Appointment", ids, appointment, original_time_text=window.original_text)
    )
    return bundle


_SCHEDULE_SYSTEM = system("schedule")
_SLOT_SYSTEM = system("slot")
_SCHEDULE_REF = conditional_reference("Schedule", _SCHEDULE_SYSTEM, "")
_SLOT_REF = conditional_reference("Slot", _SLOT_SYSTEM, "")


def _schedules_and_slots(
    bundle: SourceBundle,
    res: Resources,
    key: Identifier,
    window: Window,
    status: str,
    instants: _Instants,
) -> list[dict[str, Any]]:
    """A Schedule per actor and a Slot per actor for this appointment's time; returns the
    appointment's references to the Slots."""
    if window.start is None or window.end is None:
        return []
    actors = res.actors.values()
    appointment_key = f"{key.system.removeprefix('urn:harmony:gmed:')}/{key.value}"
    start, end = _instant_of(instants, window.start.utc), _instant_of(instants, window.end)
    slot_status = "free" if status in _SLOT_FREE else "busy"
    original = window.original_text
    records = bundle.records
    slots: list[SourceRecord] = []  # every Schedule first, then every Slot
    slot_refs: list[dict[str, Any]] = []
    for actor in actors:
        local_key = actor.local_key
        schedule = {
            "resourceType": "Schedule",
            "identifier": [{"system": _SCHEDULE_SYSTEM, "value": local_key}],
            "active": True,
            "actor": [{"reference": actor.reference}],
        }
        records.append(
            SourceRecord("Schedule", [_new(Identifier, (_SCHEDULE_SYSTEM, local_key))], schedule)
        )
        slot_key = f"{appointment_key}/{local_key}"
        slot = {
            "resourceType": "Slot",
            "identifier": [{"system": _SLOT_SYSTEM, "value": slot_key}],
            "schedule": {"reference": _SCHEDULE_REF + local_key},
            "status": slot_status,
            "start": start,
            "end": end,
        }
        slot_ids = [_new(Identifier, (_SLOT_SYSTEM, slot_key))]
        slots.append(SourceRecord("Slot", slot_ids, slot, original))
        slot_refs.append({"reference": _SLOT_REF + slot_key})
    records += slots
    return slot_refs


def _appointment(
    message: Message,
    sch: Segment,
    ids: list[Identifier],
    status: str,
    raw_status: str,
    window: Window,
    res: Resources,
    slot_refs: list[dict[str, Any]],
    mapping: MappingSet,
    bundle: SourceBundle,
    trigger: str,
    instants: _Instants,
) -> dict[str, Any]:
    fhir_ids = []
    for ident in ids:  # a loop: a comprehension is a function call of its own
        fhir_ids.append({"system": ident.system, "value": ident.value})
    appointment: dict[str, Any] = {
        "resourceType": "Appointment",
        "identifier": fhir_ids,
        "status": status,
    }
    extensions = [{"url": TRIGGER_EVENT_URL, "valueString": trigger}]
    if raw_status:
        extensions.append({"url": FILLER_STATUS_URL, "valueString": raw_status})
    appointment["extension"] = extensions
    if status == "cancelled" and (reason := concept(sch.components(6))):
        appointment["cancelationReason"] = reason
    if res.service_types:
        appointment["serviceType"] = res.service_types
    sch7 = sch.components(7)
    type_ce = sch.components(8, 2) if sch.component(8) else [*sch7, "", ""]
    if code := type_ce[0]:
        mapped = mapping.appointment_type(code)
        text = type_ce[1] or code
        if mapped is None:
            bundle.unmapped.append(("appointment_types", code))
            appointment["appointmentType"] = {"text": text}
        else:
            appointment["appointmentType"] = {
                "coding": [mapped.model_dump(exclude_none=True)],
                "text": text,
            }
    if reason := concept(sch7):
        appointment["reasonCode"] = [reason]
    if window.start is not None:
        appointment["start"] = _instant_of(instants, window.start.utc)
    if window.start is not None and window.end is not None:
        appointment["end"] = _instant_of(instants, window.end)
        minutes = round((window.end - window.start.utc).total_seconds() / 60)
        if minutes >= 1:
            appointment["minutesDuration"] = minutes
    if slot_refs:
        appointment["slot"] = slot_refs
    comments = []
    for nte in notes_after(message, sch):
        if text := _note_text(nte):
            comments.append(text)
    if comments:
        appointment["comment"] = "\n".join(comments)
    return appointment
