"""Availability uploads: CSV and iCalendar windows into free slots, in the upload's zone."""

from __future__ import annotations

import pytest

from adapters.contract import Envelope
from adapters.upload.normalize import normalize_upload, upload_system
from canonical.errors import NothingToStore, RejectedInput
from mappings.model import MappingContent, MappingSet

MAPPING = MappingSet(source="upload", version=1, content=MappingContent())


def _raw(kind: str, body: str, **context: object) -> bytes:
    return Envelope("clinic-a", "upload", kind, "upload clinic-a", body, context, "").to_bytes()


def _slots(bundle: object) -> list[dict[str, object]]:
    return [r.resource for r in bundle.records if r.resource_type == "Slot"]  # type: ignore[attr-defined]


def test_csv_windows_are_cut_into_slots_in_the_upload_zone() -> None:
    body = (
        "practitioner,start,end,location,slot_minutes\n"
        "Dr Ada Lovelace,2026-03-08T09:00,2026-03-08T10:00,Room 4,20\n"
        "Dr Ada Lovelace,2026-03-07T09:00,2026-03-07T09:50,,20\n"
    )
    bundle = normalize_upload(_raw("csv", body, timezone="America/New_York"), MAPPING, "UTC")
    slots = _slots(bundle)
    # 8 March 2026 is the spring-forward day in New York: 09:00 local is 13:00 UTC, not 14:00.
    assert [s["start"] for s in slots] == [
        "2026-03-08T13:00:00Z",
        "2026-03-08T13:20:00Z",
        "2026-03-08T13:40:00Z",
        "2026-03-07T14:00:00Z",
        "2026-03-07T14:20:00Z",
    ]  # the 10-minute remainder of the second window is not offered
    assert {s["status"] for s in slots} == {"free"}
    assert slots[0]["comment"] == "Location: Room 4"
    kinds = [r.resource_type for r in bundle.records]
    assert kinds[:2] == ["Practitioner", "Schedule"] and kinds.count("Schedule") == 1
    first = next(r for r in bundle.records if r.resource_type == "Slot")
    assert first.identifiers[0].system == upload_system("clinic-a", "slot")
    assert first.original_time_text == "2026-03-08T09:00/2026-03-08T10:00"


def test_csv_errors_name_the_line() -> None:
    with pytest.raises(RejectedInput, match="header lacks end"):
        normalize_upload(_raw("csv", "practitioner,start\nA,2026-01-01T09:00\n"), MAPPING, "UTC")
    bad_time = "practitioner,start,end\nA,tomorrow,2026-01-01T10:00\n"
    with pytest.raises(RejectedInput, match="CSV line 2: 'tomorrow'"):
        normalize_upload(_raw("csv", bad_time), MAPPING, "UTC")
    backwards = "practitioner,start,end\nA,2026-01-01T10:00,2026-01-01T09:00\n"
    with pytest.raises(RejectedInput, match="ends before it starts"):
        normalize_upload(_raw("csv", backwards), MAPPING, "UTC")
    with pytest.raises(RejectedInput, match="status 'maybe'"):
        normalize_upload(
            _raw(
                "csv", "practitioner,start,end,status\nA,2026-01-01T09:00,2026-01-01T10:00,maybe\n"
            ),
            MAPPING,
            "UTC",
        )
    with pytest.raises(NothingToStore):
        normalize_upload(_raw("csv", "practitioner,start,end\n"), MAPPING, "UTC")


ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Clinic//Availability//EN\r
X-WR-CALNAME:Dr Grace Hopper\r
BEGIN:VEVENT\r
UID:avail-1\r
DTSTART;TZID=Europe/Paris:20261026T090000\r
DTEND;TZID=Europe/Paris:20261026T100000\r
RRULE:FREQ=DAILY;COUNT=2\r
SUMMARY:Available\r
END:VEVENT\r
BEGIN:VFREEBUSY\r
UID:fb-1\r
FREEBUSY;FBTYPE=BUSY:20261027T150000Z/20261027T160000Z\r
END:VFREEBUSY\r
END:VCALENDAR\r
"""


def test_icalendar_events_recur_and_freebusy_marks_busy() -> None:
    bundle = normalize_upload(_raw("ics", ICS, slot_minutes=30, days_ahead=3650), MAPPING, "UTC")
    slots = _slots(bundle)
    assert [(s["start"], s["status"]) for s in slots] == [
        ("2026-10-26T08:00:00Z", "free"),  # Paris is UTC+1 after 25 October 2026
        ("2026-10-26T08:30:00Z", "free"),
        ("2026-10-27T08:00:00Z", "free"),
        ("2026-10-27T08:30:00Z", "free"),
        ("2026-10-27T15:00:00Z", "busy"),
        ("2026-10-27T15:30:00Z", "busy"),
    ]
    practitioner = bundle.records[0]
    assert practitioner.resource["name"] == [{"text": "Dr Grace Hopper"}]


def test_icalendar_refusals() -> None:
    with pytest.raises(RejectedInput, match="not an iCalendar file"):
        normalize_upload(_raw("ics", "hello"), MAPPING, "UTC")
    all_day = ICS.replace(
        "DTSTART;TZID=Europe/Paris:20261026T090000", "DTSTART;VALUE=DATE:20261026"
    )
    with pytest.raises(RejectedInput, match="all-day"):
        normalize_upload(_raw("ics", all_day), MAPPING, "UTC")
    with pytest.raises(RejectedInput, match="neither 'ics' nor 'csv'"):
        normalize_upload(_raw("xlsx", "x"), MAPPING, "UTC")
