"""Free slots from freebusy pages: daylight-saving days, buffers, whole-day hours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.google.normalize import normalize_bytes
from adapters.google.options import InvalidOptions, calendar_options
from adapters.google.slots import grid_slots
from canonical.errors import NothingToStore, RejectedInput
from mappings.model import MappingSet
from tests.adapters.google.google_inputs import calendar, checked, wrap

CID = "dr.ada@clinic.example"
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def freebusy(
    cal: dict[str, Any], time_min: str, time_max: str, busy: list[tuple[str, str]] = ()
) -> bytes:
    body = {
        "kind": "calendar#freeBusy",
        "timeMin": time_min,
        "timeMax": time_max,
        "calendars": {cal["calendar_id"]: {"busy": [{"start": s, "end": e} for s, e in busy]}},
    }
    return wrap("freebusy", body, {"calendars": [cal], "time_min": time_min, "time_max": time_max})


def slots(bundle: Any, status: str | None = None) -> list[tuple[str, str]]:
    return [
        (r.resource["start"], r.resource["end"])
        for r in bundle.records
        if r.resource_type == "Slot" and (status is None or r.resource["status"] == status)
    ]


def test_nine_oclock_moves_in_utc_across_spring_forward(mapping: MappingSet) -> None:
    cal = calendar(hours={d: [["09:00", "10:00"]] for d in EVERY_DAY}, slot_minutes=60)
    raw = freebusy(cal, "2024-03-09T00:00:00Z", "2024-03-12T00:00:00Z")
    bundle = checked(normalize_bytes(raw, mapping, "UTC"))
    assert slots(bundle, "free") == [
        ("2024-03-09T14:00:00Z", "2024-03-09T15:00:00Z"),  # Saturday, EST (-05:00)
        ("2024-03-10T13:00:00Z", "2024-03-10T14:00:00Z"),  # Sunday, already EDT (-04:00)
        ("2024-03-11T13:00:00Z", "2024-03-11T14:00:00Z"),
    ]
    first = bundle.records[2]
    assert first.identifiers[0].value == f"{CID}/2024-03-09T14:00:00Z"
    assert first.identifiers[0].system == "urn:harmony:gcal:slot"
    assert first.resource["schedule"]["reference"] == (
        f"Schedule?identifier=urn:harmony:gcal:calendar|{CID}"
    )
    assert [r.resource_type for r in bundle.records[:2]] == ["Practitioner", "Schedule"]


def test_nine_oclock_moves_back_across_fall_back(mapping: MappingSet) -> None:
    cal = calendar(hours={d: [["09:00", "09:30"]] for d in EVERY_DAY})
    raw = freebusy(cal, "2024-11-02T00:00:00Z", "2024-11-05T00:00:00Z")
    assert slots(checked(normalize_bytes(raw, mapping, "UTC"))) == [
        ("2024-11-02T13:00:00Z", "2024-11-02T13:30:00Z"),  # EDT
        ("2024-11-03T14:00:00Z", "2024-11-03T14:30:00Z"),  # EST from 02:00 that night
        ("2024-11-04T14:00:00Z", "2024-11-04T14:30:00Z"),
    ]


@pytest.mark.parametrize(
    ("day", "hours", "midnight"),
    [("2024-03-10", 23, "05:00"), ("2024-11-03", 25, "04:00"), ("2024-03-17", 24, "04:00")],
)
def test_a_whole_working_day_has_23_24_or_25_hours(
    mapping: MappingSet, day: str, hours: int, midnight: str
) -> None:
    cal = calendar(hours={"sun": [["00:00", "24:00"]]}, slot_minutes=60)
    raw = freebusy(cal, f"{day}T00:00:00Z", f"{day[:8]}{int(day[8:]) + 2:02d}T00:00:00Z")
    found = slots(checked(normalize_bytes(raw, mapping, "UTC")))
    assert len(found) == hours
    assert found[0][0] == f"{day}T{midnight}:00Z"  # local midnight, EST or EDT
    assert found[-1][1][11:16] == ("05:00" if day == "2024-11-03" else "04:00")


def test_working_hours_inside_the_gap_and_the_repeated_hour() -> None:
    # 02:00-03:00 does not exist on 10 March; 01:00-02:00 happens twice on 3 November.
    hours = {"sun": [["01:00", "02:00"], ["02:00", "03:00"]]}
    cal = calendar_options(calendar(hours=hours, slot_minutes=30))
    spring = grid_slots(
        cal, datetime(2024, 3, 10, tzinfo=UTC), datetime(2024, 3, 11, tzinfo=UTC), []
    )
    assert [s.start.isoformat() for s in spring] == [
        "2024-03-10T06:00:00+00:00",
        "2024-03-10T06:30:00+00:00",
    ]
    autumn = grid_slots(
        cal, datetime(2024, 11, 3, tzinfo=UTC), datetime(2024, 11, 4, tzinfo=UTC), []
    )
    # 01:00 EDT (05:00Z) to 02:00 EST (07:00Z): two real hours, then 02:00-03:00 EST.
    assert [s.start.strftime("%H:%M") for s in autumn] == [
        "05:00", "05:30", "06:00", "06:30", "07:00", "07:30",
    ]  # fmt: skip


def test_busy_periods_are_widened_by_the_buffer(mapping: MappingSet) -> None:
    cal = calendar(hours={"mon": [["09:00", "12:00"]]}, buffer_minutes=10)
    raw = freebusy(
        cal,
        "2025-06-02T00:00:00Z",
        "2025-06-03T00:00:00Z",
        busy=[("2025-06-02T14:00:00Z", "2025-06-02T14:30:00Z")],  # 10:00-10:30 EDT
    )
    bundle = checked(normalize_bytes(raw, mapping, "UTC"))
    assert slots(bundle, "busy") == [
        ("2025-06-02T13:30:00Z", "2025-06-02T14:00:00Z"),  # the buffer reaches 09:50
        ("2025-06-02T14:00:00Z", "2025-06-02T14:30:00Z"),
        ("2025-06-02T14:30:00Z", "2025-06-02T15:00:00Z"),  # and 10:40
    ]
    assert len(slots(bundle, "free")) == 3


def test_without_buffer_only_the_overlapping_slot_is_busy(mapping: MappingSet) -> None:
    cal = calendar(hours={"mon": [["09:00", "11:00"]]})
    raw = freebusy(
        cal,
        "2025-06-02T00:00:00Z",
        "2025-06-03T00:00:00Z",
        busy=[("2025-06-02T14:00:00Z", "2025-06-02T14:30:00Z")],
    )
    bundle = normalize_bytes(raw, mapping, "UTC")
    assert slots(bundle, "busy") == [("2025-06-02T14:00:00Z", "2025-06-02T14:30:00Z")]


def test_slots_outside_the_window_are_left_out(mapping: MappingSet) -> None:
    cal = calendar(hours={"mon": [["09:00", "12:00"]]})
    raw = freebusy(cal, "2025-06-02T14:10:00Z", "2025-06-02T15:30:00Z")
    assert slots(normalize_bytes(raw, mapping, "UTC")) == [
        ("2025-06-02T14:30:00Z", "2025-06-02T15:00:00Z"),
        ("2025-06-02T15:00:00Z", "2025-06-02T15:30:00Z"),
    ]


def test_no_working_hours_gives_the_schedule_without_slots(mapping: MappingSet) -> None:
    raw = freebusy(calendar(hours={}), "2025-06-02T00:00:00Z", "2025-06-03T00:00:00Z")
    bundle = checked(normalize_bytes(raw, mapping, "UTC"))
    assert [r.resource_type for r in bundle.records] == ["Practitioner", "Schedule"]


def test_a_freebusy_page_for_no_calendar_is_nothing_to_store(mapping: MappingSet) -> None:
    body = {"kind": "calendar#freeBusy", "calendars": {}}
    context = {
        "calendars": [],
        "time_min": "2025-06-02T00:00:00Z",
        "time_max": "2025-06-03T00:00:00Z",
    }
    with pytest.raises(NothingToStore, match="no calendar"):
        normalize_bytes(wrap("freebusy", body, context), mapping, "UTC")


def test_a_calendar_google_cannot_find_is_rejected(mapping: MappingSet) -> None:
    cal = calendar()
    body = {
        "kind": "calendar#freeBusy",
        "calendars": {CID: {"errors": [{"domain": "global", "reason": "notFound"}], "busy": []}},
    }
    context = {
        "calendars": [cal],
        "time_min": "2025-06-02T00:00:00Z",
        "time_max": "2025-06-03T00:00:00Z",
    }
    with pytest.raises(RejectedInput, match="notFound"):
        normalize_bytes(wrap("freebusy", body, context), mapping, "UTC")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (calendar(timezone="Mars/Olympus"), "unknown timezone"),
        (calendar(hours={"mon": [["12:00", "09:00"]]}), "ends before it starts"),
        (calendar(hours={"mon": [["9am", "10:00"]]}), "not a HH:MM"),
        (calendar(hours={"funday": []}), "unknown weekdays"),
        (calendar(slot_minutes=0), "slot_minutes"),
    ],
)
def test_bad_calendar_options_are_refused(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOptions, match=message):
        calendar_options(entry)
