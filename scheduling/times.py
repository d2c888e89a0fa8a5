"""Shift times: defined in the shift type's local zone, stored and compared in UTC.

A shift is "19:00 for 12 hours" on the wall clock, so its end is computed on the wall clock
too: a night shift across the spring DST change lasts 11 real hours, across the autumn one
13. Hours worked (weekly maximum, rest) are real elapsed hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduling.errors import InvalidInput


def zone(name: str) -> ZoneInfo:
    """The IANA zone, or InvalidInput naming the bad value."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown IANA timezone {name!r}") from None


def parse_hhmm(text: str) -> time:
    """'19:00' as a time; InvalidInput otherwise."""
    try:
        hours, minutes = text.split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise InvalidInput(f"{text!r} is not a HH:MM time") from None


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every one we write is UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 time with an offset (a bare one is refused: it would be ambiguous)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{text!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise InvalidInput(f"{text!r} has no UTC offset")
    return moment.astimezone(UTC)


def shift_bounds(
    day: date, start_time: str, duration_minutes: int, tz: str
) -> tuple[datetime, datetime]:
    """UTC start and end of a shift starting on ``day`` at local ``start_time``."""
    local_zone = zone(tz)
    naive_start = datetime.combine(day, parse_hhmm(start_time))
    naive_end = naive_start + timedelta(minutes=duration_minutes)
    start = naive_start.replace(tzinfo=local_zone).astimezone(UTC)
    end = naive_end.replace(tzinfo=local_zone).astimezone(UTC)
    return start, end


def local(value: datetime, tz: str) -> datetime:
    return as_utc(value).astimezone(zone(tz))


def span_text(start: datetime, end: datetime, tz: str) -> str:
    """'2026-12-03 19:00-07:00' (end within a day) or with both dates, in local time."""
    begin, finish = local(start, tz), local(end, tz)
    if finish - begin <= timedelta(hours=24):
        return f"{begin:%Y-%m-%d %H:%M}-{finish:%H:%M}"
    return f"{begin:%Y-%m-%d %H:%M}-{finish:%Y-%m-%d %H:%M}"


def local_dates(start: datetime, end: datetime, tz: str) -> list[date]:
    """Every local calendar date a shift touches (its last instant excluded)."""
    first = local(start, tz).date()
    last = local(end - timedelta(microseconds=1), tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def utcnow() -> datetime:
    return datetime.now(UTC)


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600
