"""Manual availability uploads (iCalendar or CSV) to free Slots, one more source.

A clinic without an API sends its availability as a file. Each window (a VEVENT, a
VFREEBUSY FREE period, or a CSV row) becomes slots of ``slot_minutes`` (the whole window
when 0) under a Schedule per practitioner. Times without an offset are read in the upload's
timezone. VEVENTs with an RRULE are expanded over ``days_ahead``. Identifier systems are
``urn:harmony-upload:<label>:<kind>``: no API integration owns these slots, so a booking is
made in Harmony itself.

CSV header (required columns first): ``practitioner,start,end[,location][,slot_minutes][,status]``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr

from adapters.contract import Envelope, read_envelope
from canonical.errors import NothingToStore, RejectedInput
from canonical.records import Identifier, SourceBundle, SourceRecord, conditional_reference
from mappings.model import MappingSet

SLOT_STATUSES = frozenset({"free", "busy", "busy-unavailable", "busy-tentative"})
MAX_SLOTS = 50_000


def upload_system(label: str, kind: str) -> str:
    return f"urn:harmony-upload:{label}:{kind}"


@dataclass(frozen=True, slots=True)
class Window:
    practitioner: str
    start: datetime
    end: datetime
    location: str | None
    slot_minutes: int
    status: str
    original: str


def normalize_upload(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    env = read_envelope(raw)
    zone = ZoneInfo(env.context.get("timezone") or mapping.zone(default_timezone).key)
    if not isinstance(env.body, str):
        raise RejectedInput("an upload's body must be the file's text")
    if env.kind == "csv":
        windows = list(_csv_windows(env, zone))
    elif env.kind == "ics":
        windows = list(_ics_windows(env, zone))
    else:
        raise RejectedInput(f"upload kind {env.kind!r} is neither 'ics' nor 'csv'")
    if not windows:
        raise NothingToStore("the file holds no availability")
    return _bundle(env.integration, windows)


def _slot_minutes(value: Any, row: str) -> int:
    try:
        minutes = int(value or 0)
    except ValueError:
        raise RejectedInput(f"{row}: slot_minutes {value!r} is not a number") from None
    if minutes < 0:
        raise RejectedInput(f"{row}: slot_minutes must not be negative")
    return minutes


def _local(text: str, zone: ZoneInfo, row: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RejectedInput(f"{row}: {text!r} is not an ISO 8601 date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def _csv_windows(env: Envelope, zone: ZoneInfo) -> Iterator[Window]:
    reader = csv.DictReader(io.StringIO(env.body.lstrip("\ufeff")))
    missing = {"practitioner", "start", "end"} - set(reader.fieldnames or [])
    if missing:
        raise RejectedInput(f"CSV header lacks {', '.join(sorted(missing))}")
    default_minutes = int(env.context.get("slot_minutes") or 0)
    for number, line in enumerate(reader, start=2):
        row = f"CSV line {number}"
        if not (line.get("practitioner") or "").strip():
            raise RejectedInput(f"{row}: practitioner is empty")
        status = (line.get("status") or "free").strip().lower()
        if status not in SLOT_STATUSES:
            raise RejectedInput(f"{row}: status {status!r} is not a FHIR slot status")
        yield Window(
            practitioner=line["practitioner"].strip(),
            start=_local(line["start"], zone, row),
            end=_local(line["end"], zone, row),
            location=(line.get("location") or "").strip() or None,
            slot_minutes=_slot_minutes(line.get("slot_minutes") or default_minutes, row),
            status=status,
            original=f"{line['start']}/{line['end']}",
        )


def _ics_windows(env: Envelope, zone: ZoneInfo) -> Iterator[Window]:
    from icalendar import Calendar

    try:
        calendar = Calendar.from_ical(env.body)
    except ValueError as exc:
        raise RejectedInput(f"not an iCalendar file: {exc}") from None
    practitioner = str(env.context.get("practitioner") or calendar.get("X-WR-CALNAME") or "")
    minutes = int(env.context.get("slot_minutes") or 0)
    horizon = datetime.now(UTC) + timedelta(days=int(env.context.get("days_ahead") or 60))
    for event in calendar.walk("VEVENT"):
        who = _organizer(event) or practitioner
        if not who:
            raise RejectedInput("a VEVENT has no ORGANIZER and the upload names no practitioner")
        start = _ics_time(event.get("DTSTART"), zone)
        end = _ics_time(event.get("DTEND"), zone) if event.get("DTEND") else None
        if end is None:
            duration = event.get("DURATION")
            if duration is None:
                raise RejectedInput(f"VEVENT {event.get('UID')} has neither DTEND nor DURATION")
            end = start + duration.dt
        location = str(event.get("LOCATION") or "") or None
        for begin in _occurrences(event, start, horizon):
            yield Window(who, begin, begin + (end - start), location, minutes, "free", str(start))
    for block in calendar.walk("VFREEBUSY"):
        who = _organizer(block) or practitioner
        periods = block.get("FREEBUSY") or []
        for prop in periods if isinstance(periods, list) else [periods]:
            kind = str(prop.params.get("FBTYPE", "BUSY")).upper()
            status = "free" if kind == "FREE" else "busy"
            for begin, finish in prop.dt if isinstance(prop.dt, list) else [prop.dt]:
                end = finish if isinstance(finish, datetime) else begin + finish
                yield Window(who, begin, end, None, minutes, status, prop.to_ical().decode())


def _organizer(component: Any) -> str:
    organizer = component.get("ORGANIZER")
    return str(organizer.params.get("CN") or organizer).strip() if organizer else ""


def _ics_time(prop: Any, zone: ZoneInfo) -> datetime:
    value = prop.dt
    if not isinstance(value, datetime):
        raise RejectedInput(
            f"all-day availability ({value}) has no times; give DTSTART with a time"
        )
    return value if value.tzinfo else value.replace(tzinfo=zone)


def _occurrences(event: Any, start: datetime, horizon: datetime) -> Iterator[datetime]:
    rule = event.get("RRULE")
    if rule is None:
        yield start
        return
    expanded = rrulestr(rule.to_ical().decode(), dtstart=start)
    excluded = {
        d.dt for ex in _as_list(event.get("EXDATE")) for d in ex.dts if isinstance(d.dt, datetime)
    }
    for count, begin in enumerate(expanded):
        if begin > horizon or count >= MAX_SLOTS:
            return
        if begin not in excluded:
            yield begin


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bundle(label: str, windows: list[Window]) -> SourceBundle:
    bundle = SourceBundle(event="availability")
    seen: set[str] = set()
    slots = 0
    for window in windows:
        if window.end <= window.start:
            raise RejectedInput(f"{window.practitioner}: {window.original} ends before it starts")
        who = Identifier(upload_system(label, "practitioner"), window.practitioner)
        schedule = Identifier(upload_system(label, "schedule"), window.practitioner)
        if who.value not in seen:
            seen.add(who.value)
            bundle.records.append(
                SourceRecord(
                    "Practitioner",
                    [who],
                    {"resourceType": "Practitioner", "name": [{"text": who.value}]},
                )
            )
            actors = [
                {"reference": conditional_reference("Practitioner", *who), "display": who.value}
            ]
            bundle.records.append(
                SourceRecord("Schedule", [schedule], {"resourceType": "Schedule", "actor": actors})
            )
        step = timedelta(minutes=window.slot_minutes) if window.slot_minutes else None
        begin = window.start
        while begin < window.end:
            finish = min(window.end, begin + step) if step else window.end
            if step and finish - begin < step:
                break  # a remainder shorter than a slot is not offered
            slots += 1
            if slots > MAX_SLOTS:
                raise RejectedInput(f"the file makes more than {MAX_SLOTS} slots; split it")
            slot = {
                "resourceType": "Slot",
                "schedule": {"reference": conditional_reference("Schedule", *schedule)},
                "status": window.status,
                "start": _instant(begin),
                "end": _instant(finish),
            }
            if window.location:
                slot["comment"] = f"Location: {window.location}"
            ident = Identifier(upload_system(label, "slot"), f"{who.value}|{_instant(begin)}")
            bundle.records.append(SourceRecord("Slot", [ident], slot, window.original))
            begin = finish
    return bundle
