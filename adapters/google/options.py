"""The integration's calendar options, checked once so the client and normalizer agree.

The same dicts travel in envelope contexts, so a stored page is read with the options that
were in force when it was fetched, not with today's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from canonical.errors import RejectedInput

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_SLOT_MINUTES = 30
DEFAULT_DAYS_AHEAD = 14
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class InvalidOptions(RejectedInput):
    """The integration's calendar options cannot be used; a person must fix the config."""


@dataclass(frozen=True, slots=True)
class WorkingPeriod:
    start: time
    end: time | None
    """None means midnight at the end of the day ("24:00")."""


@dataclass(frozen=True, slots=True)
class CalendarOptions:
    calendar_id: str
    practitioner: str
    timezone: str
    working_hours: dict[int, tuple[WorkingPeriod, ...]]
    """Weekday (Monday 0) to that day's periods, in the calendar's own zone."""
    slot_minutes: int
    buffer_minutes: int

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _clock(text: Any, where: str) -> time | None:
    if text == "24:00":
        return None
    match = _HHMM.match(str(text))
    if match is None:
        raise InvalidOptions(f"{where}: {text!r} is not a HH:MM time")
    return time(int(match.group(1)), int(match.group(2)))


def _periods(value: Any, where: str) -> tuple[WorkingPeriod, ...]:
    if not isinstance(value, list):
        raise InvalidOptions(f"{where} must be a list of [start, end] pairs")
    periods = []
    for i, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidOptions(f"{where}[{i}] must be a [start, end] pair")
        start = _clock(pair[0], f"{where}[{i}]")
        end = _clock(pair[1], f"{where}[{i}]")
        if start is None or (end is not None and end <= start):
            raise InvalidOptions(f"{where}[{i}] {pair[0]}-{pair[1]} ends before it starts")
        periods.append(WorkingPeriod(start, end))
    return tuple(periods)


def _positive_int(value: Any, default: int, where: str, minimum: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidOptions(f"{where} must be an integer >= {minimum}, not {value!r}")
    return value


def calendar_options(raw: Any) -> CalendarOptions:
    """One entry of ``options["calendars"]``."""
    if not isinstance(raw, dict):
        raise InvalidOptions(f"a calendar entry must be an object, not {raw!r}")
    calendar_id = raw.get("calendar_id")
    if not isinstance(calendar_id, str) or not calendar_id or "/" in calendar_id:
        raise InvalidOptions(f"calendar_id {calendar_id!r} must be a non-empty id without '/'")
    zone_name = raw.get("timezone")
    try:
        ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidOptions(f"calendar {calendar_id}: unknown timezone {zone_name!r}") from None
    hours = raw.get("working_hours") or {}
    if not isinstance(hours, dict):
        raise InvalidOptions(f"calendar {calendar_id}: working_hours must be an object")
    unknown = set(hours) - set(WEEKDAYS)
    if unknown:
        raise InvalidOptions(f"calendar {calendar_id}: unknown weekdays {sorted(unknown)}")
    return CalendarOptions(
        calendar_id=calendar_id,
        practitioner=str(raw.get("practitioner") or calendar_id),
        timezone=str(zone_name),
        working_hours={
            WEEKDAYS.index(day): _periods(periods, f"calendar {calendar_id} {day}")
            for day, periods in hours.items()
        },
        slot_minutes=_positive_int(
            raw.get("slot_minutes"), DEFAULT_SLOT_MINUTES, f"{calendar_id} slot_minutes", 1
        ),
        buffer_minutes=_positive_int(
            raw.get("buffer_minutes"), 0, f"{calendar_id} buffer_minutes", 0
        ),
    )


def calendars_of(options: dict[str, Any]) -> list[CalendarOptions]:
    raw = options.get("calendars")
    if not isinstance(raw, list) or not raw:
        raise InvalidOptions("options.calendars must list at least one calendar")
    calendars = [calendar_options(entry) for entry in raw]
    ids = [c.calendar_id for c in calendars]
    if len(set(ids)) != len(ids):
        raise InvalidOptions("options.calendars names a calendar twice")
    return calendars


def days_ahead(options: dict[str, Any]) -> int:
    return _positive_int(options.get("days_ahead"), DEFAULT_DAYS_AHEAD, "days_ahead", 1)
