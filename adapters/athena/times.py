"""athena's local dates and clock times to FHIR instants.

athena sends 'MM/DD/YYYY' and 'HH:MM' in the department's local time, never an offset. The
zone comes from the department (its ``timezonename``, carried in the envelope context as
``department_timezones``), else the integration's ``timezone`` option, else the mapping set.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from canonical.errors import RejectedInput
from mappings.model import MappingSet


class BadTime(RejectedInput):
    """A date or time athena sent that cannot be read."""


def zone_for(
    departmentid: str, context: dict[str, Any], mapping: MappingSet, default_timezone: str
) -> ZoneInfo:
    """The department's zone if known, else the integration's, else the mapping set's."""
    names = context.get("department_timezones") or {}
    for name in (names.get(departmentid), context.get("timezone")):
        if name:
            try:
                return ZoneInfo(str(name))
            except (ZoneInfoNotFoundError, ValueError):
                raise RejectedInput(
                    f"department {departmentid}: unknown timezone {name!r}"
                ) from None
    return mapping.zone(default_timezone)


def local_start(day: str, clock: str, zone: ZoneInfo) -> datetime:
    """'05/30/2023' and '09:00' as an aware datetime in ``zone``."""
    try:
        naive = datetime.strptime(f"{day.strip()} {clock.strip()}", "%m/%d/%Y %H:%M")
    except ValueError:
        raise BadTime(
            f"date {day!r} and start time {clock!r} are not MM/DD/YYYY and HH:MM"
        ) from None
    return naive.replace(tzinfo=zone)


def instant(moment: datetime) -> str:
    """A FHIR instant with the local offset, seconds included."""
    return moment.isoformat(timespec="seconds")


def window(start: datetime, minutes: int) -> tuple[str, str]:
    """Start and end instants; the end is computed in UTC so a DST change inside is right."""
    end = (start.astimezone(ZoneInfo("UTC")) + timedelta(minutes=minutes)).astimezone(start.tzinfo)
    return instant(start), instant(end)
