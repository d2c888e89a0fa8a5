"""Free slots from working hours and busy periods, in absolute time.

Working hours are wall-clock times in the calendar's zone, so each day's periods are placed
on that day's own offset: 09:00 in New York is 14:00Z before the spring switch and 13:00Z
after it, and a period spanning the switch is an hour shorter (or longer) in real time. A
wall time that does not exist (02:30 on the spring-forward day) is read with the offset in
force before the gap, as ``zoneinfo`` does for ``fold=0``; an ambiguous one (01:30 on the
fall-back day) is its first occurrence. Slots are cut in real minutes from the start of each
period, so slot ids (calendar and start instant) stay the same from one sync to the next.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from adapters.google.options import CalendarOptions

Interval = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class GridSlot:
    start: datetime
    end: datetime
    free: bool


def working_intervals(calendar: CalendarOptions, start: datetime, end: datetime) -> list[Interval]:
    """Every working period that touches [start, end), as UTC intervals."""
    zone = calendar.zone
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    out: list[Interval] = []
    day = first
    while day <= last:
        for period in calendar.working_hours.get(day.weekday(), ()):
            local_start = datetime.combine(day, period.start, tzinfo=zone)
            if period.end is None:
                local_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
            else:
                local_end = datetime.combine(day, period.end, tzinfo=zone)
            begin, finish = local_start.astimezone(UTC), local_end.astimezone(UTC)
            if begin < finish and finish > start and begin < end:
                out.append((begin, finish))
        day += timedelta(days=1)
    return out


def merge(intervals: Iterable[Interval], widen: timedelta = timedelta(0)) -> list[Interval]:
    """Busy periods widened by ``widen`` on each side, overlapping ones joined."""
    merged: list[Interval] = []
    for begin, finish in sorted((b - widen, f + widen) for b, f in intervals):
        if merged and begin <= merged[-1][1]:
            if finish > merged[-1][1]:
                merged[-1] = (merged[-1][0], finish)
        else:
            merged.append((begin, finish))
    return merged


def _overlaps(
    begin: datetime, finish: datetime, busy: list[Interval], ends: list[datetime]
) -> bool:
    i = bisect_left(ends, begin)
    while i < len(busy) and busy[i][0] < finish:
        if busy[i][1] > begin:
            return True
        i += 1
    return False


def grid_slots(
    calendar: CalendarOptions,
    start: datetime,
    end: datetime,
    busy: Iterable[Interval],
) -> list[GridSlot]:
    """Working time in [start, end) cut into slots, each free unless a widened busy period
    overlaps it. Slots that begin before ``start`` or end after ``end`` are left out."""
    blocks = merge(busy, timedelta(minutes=calendar.buffer_minutes))
    ends = [finish for _, finish in blocks]
    step = timedelta(minutes=calendar.slot_minutes)
    out: list[GridSlot] = []
    seen: set[datetime] = set()  # overlapping working periods must not repeat a slot id
    for begin, finish in working_intervals(calendar, start, end):
        cursor = begin
        while cursor + step <= finish:
            slot_end = cursor + step
            if cursor >= start and slot_end <= end and cursor not in seen:
                seen.add(cursor)
                out.append(
                    GridSlot(cursor, slot_end, not _overlaps(cursor, slot_end, blocks, ends))
                )
            cursor = slot_end
    return out
