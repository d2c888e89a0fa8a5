"""When an SIU appointment happens, from the several places a sender may say it.

Precedence: TQ1 (TQ1-7 start, TQ1-8 end), else SCH-11 (TQ: component 4 start, 5 end,
3 duration), else the resource segments (earliest AIx start to latest AIx end). Without an
end, the end is start + duration, the duration coming from the chosen source (TQ1-13,
SCH-11.3, AIx), else SCH-9/10, else the first AIx duration. Every other place that disagrees
with the chosen window is reported in the bundle notes, e.g. fhirconv SIU-S12-01, where
SCH-9/10 says 60 s and TQ1 says 50 min: TQ1 wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import NamedTuple

from adapters.gmed.errors import InvalidTime
from adapters.gmed.parser import Message, Segment
from adapters.gmed.times import HL7Time, parse_duration, parse_tq_duration, parse_ts

__all__ = [
    "AIX_FIELDS",
    "AixTiming",
    "DurationMemo",
    "TimeMemo",
    "Window",
    "aix_timing",
    "appointment_window",
    "read_time",
]

# segment -> (start, duration, duration units, filler status) field numbers
AIX_FIELDS = {
    "AIS": (4, 7, 8, 10),
    "AIG": (8, 11, 12, 14),
    "AIL": (6, 9, 10, 12),
    "AIP": (6, 9, 10, 12),
}


class AixTiming(NamedTuple):
    """An AIx segment's own time; ``end`` is start + duration, None without either.

    Named tuples (here and in Window) stay immutable and cost a fraction of a frozen
    dataclass to make, which matters at several per message.
    """

    start: HL7Time | None
    duration: timedelta | None
    end: datetime | None


class Window(NamedTuple):
    """The appointment's time; start is None when the message gives none at all."""

    start: HL7Time | None
    end: datetime | None
    source: str
    original_text: str | None


_MINUTE = timedelta(minutes=1)
_new = tuple.__new__
"""``Window(*fields)`` as ``_new(Window, fields)``: the same named tuple without the Python
frame of its ``__new__``."""

TimeMemo = dict[str, HL7Time]
"""Times already read in this message: its AIx segments usually repeat one start."""


def read_time(text: str, zone: tzinfo, memo: TimeMemo) -> HL7Time | None:
    """parse_ts once per distinct text of a message; None for empty text."""
    if not text:
        return None
    found = memo.get(text)
    if found is None:
        found = memo[text] = parse_ts(text, zone)
    return found


DurationMemo = dict[tuple[str, str, str], timedelta | None]
"""Durations already read in this message: its AIx segments usually repeat one length."""


def aix_timing(
    seg: Segment, zone: tzinfo, memo: TimeMemo, durations: DurationMemo | None = None
) -> AixTiming:
    """An AIS/AIG/AIL/AIP segment's own start and duration."""
    start_f, dur_f, unit_f, _ = AIX_FIELDS[seg.name]
    text = seg.component(start_f)
    start = (memo.get(text) or read_time(text, zone, memo)) if text else None
    amount = seg.component(dur_f)
    duration = None
    if amount:  # parse_duration reads no units without an amount
        unit_code, unit_text = seg.components(unit_f, 2)[:2]
        if durations is None:
            duration = parse_duration(amount, unit_code, unit_text)
        else:
            key = (amount, unit_code, unit_text)
            if key in durations:
                duration = durations[key]
            else:
                duration = durations[key] = parse_duration(amount, unit_code, unit_text)
    end = start.utc + duration if start is not None and duration is not None else None
    return _new(AixTiming, (start, duration, end))


def _fmt(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def appointment_window(
    message: Message,
    sch: Segment,
    aix: list[tuple[Segment, AixTiming]],
    zone: tzinfo,
    notes: list[str],
    memo: TimeMemo,
) -> Window:
    """Choose the appointment's window and note every source that disagrees with it."""
    unit_code, unit_text = sch.components(10, 2)[:2]
    sch_duration = parse_duration(sch.component(9), unit_code, unit_text)
    sch11 = sch.components(11, 5)
    sch11_start = read_time(sch11[3], zone, memo)
    sch11_end = read_time(sch11[4], zone, memo)
    sch11_text = sch11[2]
    bare_unit = None
    # A bare TQ number is in SCH-10 units. Read them when SCH-11.3 needs them, or to refuse
    # bad units that an SCH-9 duration has not already been refused for.
    if (unit_code or unit_text) and (sch11_text or sch_duration is None):
        bare_unit = parse_duration("1", unit_code, unit_text)
    sch11_duration = None
    if sch11_text:
        sch11_duration = parse_tq_duration(sch11_text, bare_unit or _MINUTE)
        if sch11_duration is None:
            notes.append(f"SCH-11.3 duration {sch11_text!r} is not readable; ignored")

    start: HL7Time | None = None
    end: HL7Time | None = None
    own: timedelta | None = None
    source = ""
    for tq1 in message.segments("TQ1"):
        if text := tq1.component(7):
            start = read_time(text, zone, memo)
            end = read_time(tq1.component(8), zone, memo)
            if amount := tq1.component(13, 1):
                own = parse_duration(amount, tq1.component(13, 2, 1), tq1.component(13, 2, 2))
            source = "TQ1"
            break
    if start is None and sch11_start is not None:
        start, end, own, source = sch11_start, sch11_end, sch11_duration, "SCH-11"
    aix_end: datetime | None = None
    if start is None:
        timed = [t for _, t in aix if t.start is not None]
        if timed:
            first = min(timed, key=lambda t: t.start.utc if t.start else datetime.max)
            start, source = first.start, "AIx"
            ends = [t.end for t in timed if t.end is not None]
            aix_end = max(ends) if ends else None
    if start is None:
        return _new(Window, (None, None, "", None))

    stop: datetime | None
    if end is not None:
        stop = end.utc
    elif aix_end is not None:
        stop = aix_end
    else:
        duration = (
            own
            or sch_duration
            or next((t.duration for _, t in aix if t.duration is not None), None)
        )
        stop = start.utc + duration if duration is not None else None
    if stop is not None and stop < start.utc:
        raise InvalidTime(f"{source} ends ({stop:%Y-%m-%d %H:%M}Z) before it starts")

    _note_disagreements(
        notes, source, start.utc, stop, sch_duration, own, sch11_start, sch11_end, aix
    )
    original = start.original + (f"/{end.original}" if end is not None else "")
    return _new(Window, (start, stop, source, original))


def _note_disagreements(
    notes: list[str],
    source: str,
    start: datetime,
    stop: datetime | None,
    sch_duration: timedelta | None,
    own: timedelta | None,
    sch11_start: HL7Time | None,
    sch11_end: HL7Time | None,
    aix: list[tuple[Segment, AixTiming]],
) -> None:
    length = stop - start if stop is not None else None
    if length is not None:
        if sch_duration is not None and sch_duration != length:
            notes.append(
                f"SCH-9/10 says {_fmt(sch_duration)} but {source} says {_fmt(length)}; "
                f"{source} wins"
            )
        if own is not None and own != length:
            notes.append(
                f"{source} duration says {_fmt(own)} but its start/end span {_fmt(length)}; "
                "start/end win"
            )
    if (
        source != "SCH-11"
        and sch11_start is not None
        and (sch11_start.utc != start or (sch11_end is not None and sch11_end.utc != stop))
    ):
        notes.append(
            f"SCH-11 window {sch11_start.original}"
            f"{'/' + sch11_end.original if sch11_end else ''} differs from {source}; "
            f"{source} wins"
        )
    if source == "AIx":  # the window is the AIx span itself: nothing to disagree with
        return
    for seg, timing in aix:
        if timing.start is None:
            continue
        differs = timing.start.utc != start
        if not differs and stop is not None:
            end = timing.end
            differs = end is not None and end != stop
        if differs:
            notes.append(
                f"{seg.name} ({seg.component(3)}) starts {timing.start.original}"
                f"{' for ' + _fmt(timing.duration) if timing.duration else ''}, unlike "
                f"{source}; kept on its participant period"
            )
