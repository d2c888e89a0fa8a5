"""Who is on call: handoffs at the exact minute, overnight shifts, DST, several services."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from scheduling.live_roster import (
    EventRow,
    ShiftRow,
    build_snapshot,
    diff_groups,
    local_instant,
    on_call_at,
    summarize,
)

NY = "America/New_York"
_ids = itertools.count(1)


def shift(
    physician: int | None,
    start: datetime,
    end: datetime,
    service: str = "cardiology",
    location: str = "main",
    kind: str = "call",
    timezone: str = NY,
) -> ShiftRow:
    return ShiftRow(
        shift_id=next(_ids),
        roster_id=1,
        service=service,
        location=location,
        start=start,
        end=end,
        physician_id=physician,
        physician_name=None if physician is None else f"Dr {physician}",
        status="open" if physician is None else "assigned",
        kind=kind,
        shift_type=kind.upper(),
        timezone=timezone,
    )


def local(day: str, hhmm: str) -> datetime:
    return local_instant(day, hhmm, NY)


def who(rows: list[ShiftRow], at: datetime, key: tuple[str, str] = ("cardiology", "main")) -> list:
    return on_call_at(rows, at).get(key, [])


def test_handoff_at_the_exact_minute() -> None:
    night = shift(1, local("2026-06-09", "19:00"), local("2026-06-10", "07:00"))
    day = shift(2, local("2026-06-10", "07:00"), local("2026-06-10", "19:00"))
    rows = [night, day]
    seven = local("2026-06-10", "07:00")
    assert who(rows, seven - timedelta(minutes=1)) == [1]
    assert who(rows, seven - timedelta(microseconds=1)) == [1]
    assert who(rows, seven) == [2]  # never both, never neither
    assert who(rows, local("2026-06-10", "18:59")) == [2]
    assert who(rows, local("2026-06-10", "19:00")) == []  # nothing published after


def test_overnight_shift_covers_midnight_and_shows_local_times() -> None:
    night = shift(1, local("2026-06-09", "19:00"), local("2026-06-10", "07:00"))
    assert who([night], local("2026-06-09", "23:59")) == [1]
    assert who([night], local("2026-06-10", "00:00")) == [1]
    assert who([night], local("2026-06-10", "03:00")) == [1]
    entry = build_snapshot([night], local("2026-06-10", "00:30"), 12).groups[0].on_call[0]
    shown = entry.as_json()
    assert shown["start_local"] == "2026-06-09T19:00:00-04:00"
    assert shown["end_local"] == "2026-06-10T07:00:00-04:00"
    assert shown["start"] == "2026-06-09T23:00:00Z" and shown["end"] == "2026-06-10T11:00:00Z"


def test_spring_forward_night_is_eleven_hours_and_hands_off_at_local_seven() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT
    night = shift(1, local("2026-03-07", "19:00"), local("2026-03-08", "07:00"))
    day = shift(2, local("2026-03-08", "07:00"), local("2026-03-08", "19:00"))
    rows = [night, day]
    assert night.end - night.start == timedelta(hours=11)
    assert night.end == datetime(2026, 3, 8, 11, 0, tzinfo=UTC)  # 07:00 EDT
    assert who(rows, datetime(2026, 3, 8, 10, 59, tzinfo=UTC)) == [1]  # 06:59 EDT
    assert who(rows, datetime(2026, 3, 8, 11, 0, tzinfo=UTC)) == [2]  # 07:00 EDT
    # 12:00 UTC would be 07:00 under EST: a fixed offset would have handed off an hour late
    assert who(rows, datetime(2026, 3, 8, 11, 30, tzinfo=UTC)) == [2]
    # across the skipped hour the night physician stays on call without a gap
    for minute in range(0, 181, 15):
        at = datetime(2026, 3, 8, 6, 0, tzinfo=UTC) + timedelta(minutes=minute)
        assert who(rows, at) == [1], at
    shown = build_snapshot(rows, night.start, 1).groups[0].on_call[0].as_json()
    assert shown["start_local"].endswith("-05:00") and shown["end_local"] == (
        "2026-03-08T07:00:00-04:00"
    )


def test_fall_back_night_is_thirteen_hours_and_covers_the_repeated_hour() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST: 01:00-02:00 happens twice
    night = shift(1, local("2026-10-31", "19:00"), local("2026-11-01", "07:00"))
    day = shift(2, local("2026-11-01", "07:00"), local("2026-11-01", "19:00"))
    rows = [night, day]
    assert night.end - night.start == timedelta(hours=13)
    first_0130 = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second_0130 = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert who(rows, first_0130) == [1] and who(rows, second_0130) == [1]
    assert who(rows, datetime(2026, 11, 1, 11, 59, tzinfo=UTC)) == [1]  # 06:59 EST
    assert who(rows, datetime(2026, 11, 1, 12, 0, tzinfo=UTC)) == [2]  # 07:00 EST
    snap = build_snapshot(rows, second_0130, 12)
    assert snap.next_change_at == min(night.end, second_0130 + timedelta(seconds=60))
    assert snap.groups[0].on_call[0].as_json()["end_local"] == "2026-11-01T07:00:00-05:00"


def test_services_and_locations_are_separate_and_sorted() -> None:
    at = local("2026-06-10", "12:00")
    start, end = local("2026-06-10", "07:00"), local("2026-06-10", "19:00")
    rows = [
        shift(3, start, end, service="neurology", location="north"),
        shift(1, start, end, service="cardiology", location="main"),
        shift(2, start, end, service="cardiology", location="north"),
        shift(None, start, end, service="neurology", location="main"),  # open: uncovered
        shift(4, start, end, service="neurology", location="north", kind="clinic"),
        shift(5, local("2026-06-10", "19:00"), local("2026-06-11", "07:00"), service="neurology"),
    ]
    snap = build_snapshot(rows, at, 12)
    keys = [g.key for g in snap.groups]
    assert keys == [
        ("cardiology", "main"),
        ("cardiology", "north"),
        ("neurology", "main"),
        ("neurology", "north"),
    ]
    by_key = {g.key: g.as_json() for g in snap.groups}
    assert [e["physician_id"] for e in by_key[("neurology", "north")]["on_call"]] == [3, 4]
    assert by_key[("neurology", "main")]["covered"] is False
    assert by_key[("neurology", "main")]["on_call"][0]["physician_id"] is None
    assert [e["physician_id"] for e in by_key[("neurology", "main")]["upcoming"]] == [5]
    assert by_key[("cardiology", "main")]["covered"] is True


def test_look_ahead_window_is_half_open_and_ordered() -> None:
    at = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    rows = [
        shift(3, at + timedelta(hours=8), at + timedelta(hours=20)),
        shift(2, at + timedelta(hours=2), at + timedelta(hours=8)),
        shift(9, at + timedelta(hours=12), at + timedelta(hours=24)),  # starts at the edge
        shift(8, at - timedelta(hours=20), at - timedelta(hours=8)),  # already over
        shift(7, at, at),  # zero-length: covers nothing
    ]
    snap = build_snapshot(rows, at, 12)
    group = snap.groups[0]
    assert group.on_call == []
    assert [s.physician_id for s in group.upcoming] == [2, 3]
    assert snap.until == at + timedelta(hours=12)
    assert snap.next_change_at == at + timedelta(seconds=60)  # the window slides anyway
    soon = build_snapshot(rows, at + timedelta(hours=1, minutes=59, seconds=30), 12)
    assert soon.next_change_at == at + timedelta(hours=2)  # the next handoff


def test_naive_datetimes_from_sqlite_are_utc() -> None:
    naive = shift(1, datetime(2026, 6, 10, 11), datetime(2026, 6, 10, 23))
    assert who([naive], datetime(2026, 6, 10, 11, tzinfo=UTC)) == [1]
    assert who([naive], datetime(2026, 6, 10, 10, 59, tzinfo=UTC)) == []


def test_diff_sends_changed_groups_whole_and_removed_keys() -> None:
    at = local("2026-06-10", "12:00")
    start, end = local("2026-06-10", "07:00"), local("2026-06-10", "19:00")
    a = shift(1, start, end)
    b = shift(2, start, end, service="neurology")
    before = build_snapshot([a, b], at, 12).as_json()["groups"]
    swapped = replace(a, physician_id=7)
    after = build_snapshot([swapped], at, 12).as_json()["groups"]
    changed, removed = diff_groups(before, after)
    assert [g["key"] for g in changed] == ["cardiology|main"]
    assert changed[0]["on_call"][0]["physician_id"] == 7
    assert removed == ["neurology|main"]
    assert diff_groups(after, after) == ([], [])


def test_event_summary_names_who_and_what() -> None:
    event = EventRow(
        id=5,
        kind="swap",
        roster_id=1,
        shift_ids=(10, 11),
        request_id=3,
        physician_ids=(1, 2),
        actor="admin",
        detail={},
        created_at=datetime(2026, 6, 10, tzinfo=UTC),
        physician_names=("Dr Ada", "Dr Bo"),
    )
    assert summarize(event) == "swap Dr Ada \u2194 Dr Bo (shifts 10, 11) by admin"
    assert event.as_json()["created_at"] == "2026-06-10T00:00:00Z"
