"""Google's EventDateTime and RFC 3339 text to aware datetimes and FHIR instants."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from canonical.errors import RejectedInput


class BadTime(RejectedInput):
    """A time Google sent that cannot be read (a bad field, not a transient failure)."""


def parse_rfc3339(text: Any, where: str, zone: str | None = None) -> datetime:
    """An aware datetime; text without an offset is read in ``zone`` (Google's ``timeZone``)."""
    if not isinstance(text, str) or not text:
        raise BadTime(f"{where} is missing")
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise BadTime(f"{where} {text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None:
        if zone is None:
            raise BadTime(f"{where} {text!r} has no offset and no timeZone")
        try:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise BadTime(f"{where} names unknown timeZone {zone!r}") from None
    return moment


def instant(moment: datetime) -> str:
    """A FHIR instant in UTC, whole seconds (Google never sends finer for event times)."""
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def event_time(value: Any, where: str, calendar_zone: str) -> datetime | date:
    """An EventDateTime: a datetime for timed events, a date for all-day ones."""
    if not isinstance(value, dict):
        raise BadTime(f"{where} is missing")
    if value.get("dateTime"):
        return parse_rfc3339(
            value["dateTime"], f"{where}.dateTime", value.get("timeZone") or calendar_zone
        )
    if value.get("date"):
        try:
            return date.fromisoformat(str(value["date"]))
        except ValueError:
            raise BadTime(f"{where}.date {value['date']!r} is not a date") from None
    raise BadTime(f"{where} has neither dateTime nor date")
