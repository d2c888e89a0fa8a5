"""HL7 v2 times and durations as GMED sends them.

FHIR instants need an offset and HL7 times often have none, so a time without one is read in
the source's timezone (the mapping set's zone). Wall-clock times that a DST change makes
ambiguous or skips are resolved with ``fold=0``, deterministically:

* ambiguous (clocks go back, the hour happens twice): the first occurrence, at the summer
  offset;
* non-existent (clocks go forward, the hour is skipped): read with the offset in force
  before the change, so 02:30 on a spring-forward night in New York becomes 07:30 UTC
  (03:30 summer time).

The text as sent is always kept next to the UTC value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from adapters.gmed.errors import InvalidDuration, InvalidTime

__all__ = ["HL7Time", "parse_duration", "parse_tq_duration", "parse_ts", "to_hl7_ts"]

_TS = re.compile(
    r"(?P<year>\d{4})(?P<month>\d{2})?(?P<day>\d{2})?(?P<hour>\d{2})?(?P<minute>\d{2})?"
    r"(?P<second>\d{2})?(?:\.(?P<fraction>\d{1,4}))?(?P<offset>[+-]\d{4})?"
)


class HL7Time(NamedTuple):
    """A TS/DTM read into UTC, with the source's own text and whether it carried an offset.

    A named tuple, not a frozen dataclass: as immutable, and several times cheaper to make.
    """

    utc: datetime
    original: str
    had_offset: bool


_new = tuple.__new__
"""``HL7Time(*fields)`` without the Python frame of the named tuple's ``__new__``."""

_SCALE = {8: 1_000_000, 10: 10_000, 12: 100, 14: 1}
"""Digits of a date-only to full-seconds TS, scaled to YYYYMMDDHHMMSS."""


def parse_ts(text: str, zone: tzinfo) -> HL7Time:
    """Read ``YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]`` into an aware UTC datetime.

    The usual shapes (8 to 14 ASCII digits, optional +/-ZZZZ) are read arithmetically, the
    rest by the regex; both accept and reject the same texts with the same reasons.
    """
    raw = text.strip()
    body, offset = raw, None
    if len(raw) > 5 and raw[-5] in "+-":
        body, offset = raw[:-5], raw[-5:]
    scale = _SCALE.get(len(body))
    if (
        scale is not None
        and body.isdigit()
        and body.isascii()
        and (offset is None or (offset[1:].isdigit() and offset[1:].isascii()))
    ):
        # Times with hours (minutes > 59 in the offset is refused below, not rolled over):
        # one C call for the usual texts; anything it rejects gets the full path's reasons.
        if scale < 1_000_000 and (offset is None or offset[3] < "6"):
            iso = f"{body[:8]}T{body[8:]}"
            try:
                if offset is None:
                    # combine, not replace(tzinfo=...): same datetime, a third of the cost
                    naive = datetime.fromisoformat(iso)
                    moment = datetime.combine(naive, naive.time(), zone)
                else:
                    moment = datetime.fromisoformat(iso + offset)
                return _new(HL7Time, (moment.astimezone(UTC), raw, offset is not None))
            except (ValueError, OverflowError):
                pass
        rest, second = divmod(int(body) * scale, 100)
        rest, minute = divmod(rest, 100)
        rest, hour = divmod(rest, 100)
        rest, day = divmod(rest, 100)
        year, month = divmod(rest, 100)
        micro = 0
    else:
        match = _TS.fullmatch(raw)
        if match is None or (match["fraction"] and not match["second"]):
            raise InvalidTime(f"{text!r} is not an HL7 date/time (YYYYMMDD[HHMM[SS[.S]]][+ZZZZ])")
        parts = match.groupdict()
        year = int(parts["year"])
        month = int(parts["month"] or 1)
        day = int(parts["day"] or 1)
        hour = int(parts["hour"] or 0)
        minute = int(parts["minute"] or 0)
        second = int(parts["second"] or 0)
        micro = int((parts["fraction"] or "0").ljust(6, "0"))
        offset = parts["offset"]
    try:
        # fold=0 (the datetime default): see the module docstring for DST gaps and overlaps
        moment = datetime(
            year, month, day, hour, minute, second, micro, zone if offset is None else UTC
        )
    except ValueError as exc:
        raise InvalidTime(f"{text!r} is not a valid date/time: {exc}") from None
    if offset is not None:
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 23 or minutes > 59:
            raise InvalidTime(f"{text!r} has an impossible UTC offset {offset}")
        delta = timedelta(0, hours * 3600 + minutes * 60)
        moment = moment - delta if offset[0] == "+" else moment + delta
    return HL7Time(moment.astimezone(UTC), raw, offset is not None)


def to_hl7_ts(moment: datetime, zone: tzinfo) -> str:
    """An aware datetime as HL7 DTM in ``zone``, with that zone's offset at the moment."""
    local = moment.astimezone(zone)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{local:%Y%m%d%H%M%S}{sign}{minutes // 60:02d}{minutes % 60:02d}"


_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)

# Duration unit codes, case-insensitive. 'm' is minutes here although UCUM reads it as metre:
# a scheduling duration is never a length, and senders using it mean minutes ('m^Minutes').
# Uppercase 'M' is also minutes (ANSI+); months cannot be a fixed duration and are refused.
_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), _SECOND),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes", "mn"), _MINUTE),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), _HOUR),
    **dict.fromkeys(("d", "day", "days"), _DAY),
    **dict.fromkeys(("wk", "w", "week", "weeks"), 7 * _DAY),
}


def _unit(code: str, text: str) -> timedelta:
    found = _UNITS.get(code)  # already a canonical spelling: the usual case
    if found is not None:
        return found
    for candidate in (code, text):
        found = _UNITS.get(candidate.strip().casefold())
        if found is not None:
            return found
    shown = code if not text else f"{code}^{text}"
    raise InvalidDuration(
        f"duration unit {shown!r} is not one we read (s, min, h, d, wk and their spellings)"
    )


def parse_duration(amount: str, unit_code: str, unit_text: str = "") -> timedelta | None:
    """A duration field plus its units field (CE: code^text^system); None when no amount.

    With an amount and no unit at all, seconds are assumed, as HL7 says for SCH-10 and the
    AIx duration units.
    """
    amount = amount.strip()
    if not amount:
        return None
    if amount.isascii() and amount.isdigit() and len(amount) < 7:  # the usual case, cheaply
        unit = _unit(unit_code, unit_text) if (unit_code.strip() or unit_text.strip()) else _SECOND
        return unit * int(amount)
    try:
        number = Decimal(amount)
    except InvalidOperation:
        raise InvalidDuration(f"duration {amount!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise InvalidDuration(f"duration {amount!r} is not a non-negative number")
    if not unit_code.strip() and not unit_text.strip():
        unit = _SECOND
    else:
        unit = _unit(unit_code, unit_text)
    try:
        return timedelta(seconds=float(number * Decimal(int(unit.total_seconds()))))
    except OverflowError:
        raise InvalidDuration(f"duration {amount!r} is too long to be an appointment") from None


_TQ_PREFIX = {"S": _SECOND, "M": _MINUTE, "H": _HOUR, "D": _DAY, "W": 7 * _DAY}
_TQ_WORDS = re.compile(r"(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]+)")


def parse_tq_duration(text: str, bare_unit: timedelta = _MINUTE) -> timedelta | None:
    """TQ-3 duration: 'M30', 'H2', a bare number (read in ``bare_unit``) or '2 hours'.

    Returns None for 'INDEF', empty or unreadable text; the caller notes what it skipped.
    """
    text = text.strip()
    if not text or text.upper() == "INDEF":
        return None
    try:
        if text[0].upper() in _TQ_PREFIX and text[1:].replace(".", "", 1).isdigit():
            return _TQ_PREFIX[text[0].upper()] * float(text[1:])
        if text.replace(".", "", 1).isdigit():
            return bare_unit * float(text)
    except (ValueError, OverflowError):
        return None
    words = _TQ_WORDS.fullmatch(text)
    if words is not None:
        unit = _UNITS.get(words["unit"].casefold())
        if unit is not None:
            return unit * float(words["n"])
    return None
