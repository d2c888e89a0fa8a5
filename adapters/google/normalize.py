"""Stored Google pages (envelopes) to canonical records; a pure function of the bytes.

Envelope kinds the client writes:
* ``freebusy``: a freeBusy.query answer; context holds the calendars' options and the window.
  Every working-hours slot of the window becomes a Slot, free or busy, so a slot taken since
  the last sync turns busy under the same id.
* ``events``: one events.list page of one calendar (context ``calendar``).
* ``event``: one event, the answer to a booking or a cancellation (context ``calendar``).
* ``webhook``: a push notification; it has no body, the hub syncs instead (NothingToStore).
"""

from __future__ import annotations

from typing import Any

from adapters.contract import Envelope, read_envelope
from adapters.google.errors import GoogleErrorBody, error_parts, is_error_body
from adapters.google.events import event_records
from adapters.google.options import calendar_options
from adapters.google.resources import CalendarRecords, grid_slot_id
from adapters.google.slots import grid_slots
from adapters.google.times import parse_rfc3339
from canonical.errors import NothingToStore, RejectedInput
from canonical.records import SourceBundle, SourceRecord
from mappings.model import MappingSet

__all__ = ["normalize", "normalize_bytes"]


def normalize_bytes(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    """Read one stored envelope and normalize it."""
    return normalize(read_envelope(raw), mapping, default_timezone)


def normalize(envelope: Envelope, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    """The records of one page, Practitioner, Schedule, Slot and Appointment in that order.

    ``default_timezone`` is unused: Google sends offsets and each calendar names its zone.
    """
    if envelope.kind == "webhook":
        raise NothingToStore("a Google push notification has no body; the calendar is synced")
    body = envelope.body
    if is_error_body(body):
        code, reason, message = error_parts(body)
        raise GoogleErrorBody(f"Google answered {code} {reason}: {message}")
    reader = _READERS.get(envelope.kind)
    if reader is None:
        raise RejectedInput(f"envelope kind {envelope.kind!r} is not a Google Calendar page")
    if not isinstance(body, dict):
        raise RejectedInput(f"a {envelope.kind} page must be a JSON object")
    return reader(envelope, body, mapping)


def _expect_kind(body: dict[str, Any], expected: str) -> None:
    kind = body.get("kind")
    if kind != expected:
        raise RejectedInput(f"body is {kind or 'of no kind'}, not {expected}")


def _calendar(envelope: Envelope, mapping: MappingSet) -> CalendarRecords:
    raw = envelope.context.get("calendar")
    if raw is None:
        raise RejectedInput(f"{envelope.kind} page has no calendar in its context")
    return CalendarRecords(envelope.integration, calendar_options(raw), mapping)


def _freebusy(envelope: Envelope, body: dict[str, Any], mapping: MappingSet) -> SourceBundle:
    _expect_kind(body, "calendar#freeBusy")
    context = envelope.context
    start = parse_rfc3339(context.get("time_min"), "context time_min")
    end = parse_rfc3339(context.get("time_max"), "context time_max")
    answers = body.get("calendars") or {}
    bundle = SourceBundle(event="availability")
    failed = []
    for raw in context.get("calendars") or []:
        calendar = calendar_options(raw)
        cid = calendar.calendar_id
        answer = answers.get(cid)
        if not isinstance(answer, dict):
            failed.append(f"{cid}: not in the answer")
            continue
        if answer.get("errors"):
            reasons = ", ".join(str(e.get("reason")) for e in answer["errors"])
            failed.append(f"{cid}: {reasons}")
            continue
        busy = [
            (
                parse_rfc3339(b.get("start"), f"{cid} busy start"),
                parse_rfc3339(b.get("end"), f"{cid} busy end"),
            )
            for b in answer.get("busy") or []
        ]
        builder = CalendarRecords(envelope.integration, calendar, mapping)
        bundle.records += [builder.practitioner(), builder.schedule()]
        for slot in grid_slots(calendar, start, end, busy):
            status = "free" if slot.free else "busy"
            slot_id = grid_slot_id(cid, slot.start)
            bundle.records.append(builder.slot(slot_id, slot.start, slot.end, status))
    if failed:
        bundle.notes.append("freebusy failed for " + "; ".join(failed))
        if not bundle.records:
            raise RejectedInput("freebusy answered no calendar: " + "; ".join(failed))
    if not bundle.records:
        raise NothingToStore("the freebusy page covers no calendar")
    return bundle


def _records(builder: CalendarRecords, items: list[Any], bundle: SourceBundle) -> None:
    slots: list[SourceRecord] = []
    appointments: list[SourceRecord] = []
    for item in items:
        for record in event_records(builder, item, bundle):
            (slots if record.resource_type == "Slot" else appointments).append(record)
    if slots or appointments:
        bundle.records += [builder.practitioner(), builder.schedule(), *slots, *appointments]


def _events(envelope: Envelope, body: dict[str, Any], mapping: MappingSet) -> SourceBundle:
    _expect_kind(body, "calendar#events")
    builder = _calendar(envelope, mapping)
    items = body.get("items") or []
    bundle = SourceBundle(event="changed")
    _records(builder, items, bundle)
    if not bundle.records:
        why = "; ".join(bundle.notes) or "no events"
        raise NothingToStore(f"events page of {builder.calendar.calendar_id}: {why}")
    return bundle


def _event(envelope: Envelope, body: dict[str, Any], mapping: MappingSet) -> SourceBundle:
    _expect_kind(body, "calendar#event")
    builder = _calendar(envelope, mapping)
    cancelled = body.get("status") == "cancelled"
    bundle = SourceBundle(event="cancelled" if cancelled else "booked")
    _records(builder, [body], bundle)
    if not bundle.records:
        raise NothingToStore(f"event {body.get('id')}: " + "; ".join(bundle.notes))
    return bundle


_READERS = {"freebusy": _freebusy, "events": _events, "event": _event}
