"""The one conflict checker: every path that puts a physician on a shift asks it.

Manual create / edit / move, bulk edits, pickup and swap (at request and at approval), and
publish all describe the roster they want as a list of ``PlannedShift`` (plus the ids of
shifts that go away) and get back every conflict, not just the first. The checker sees the
planned shifts together with each physician's stored shifts of every roster, so a swap is
judged with both halves done and a bulk edit with all its items.

Rules (codes in ``Conflict.rule``): ``overlap``, ``min_rest``, ``forbidden_sequence``,
``weekly_max_hours``, ``weekly_max_shifts`` (ISO week of the shift's start in the rules'
zone), ``blackout`` (a local date of the shift is one of the physician's blackout dates),
``eligibility_specialty`` (the shift type requires one of its specialties),
``eligibility_location`` (the physician works at the shift's location), ``inactive``,
``unknown_physician``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select

from scheduling.records import shifts_with_types
from scheduling.rules import RosterRules
from scheduling.tables import physicians, shifts
from scheduling.times import as_utc, hours, local, local_dates, span_text

WINDOW = timedelta(days=8)
"""Stored shifts this far around the planned ones matter (a week for the weekly maximum)."""


@dataclass(frozen=True, slots=True)
class PlannedShift:
    """A shift as it would be after the change (``id`` None: not created yet)."""

    id: int | None
    physician_id: int | None
    start: datetime
    end: datetime
    kind: str
    label: str
    timezone: str
    location: str
    required_specialties: tuple[str, ...] = ()
    ref: str = ""
    """How a refusal names a shift not created yet (``item 3`` in a bulk request)."""

    def name(self) -> str:
        return f"shift {self.id}" if self.id is not None else (self.ref or "the new shift")


@dataclass(frozen=True, slots=True)
class Conflict:
    rule: str
    physician_id: int
    physician: str
    dates: tuple[str, ...]
    message: str
    shift_id: int | None = None
    other_shift_id: int | None = None
    ref: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "physician_id": self.physician_id,
            "physician": self.physician,
            "dates": list(self.dates),
            "shift_id": self.shift_id,
            "other_shift_id": self.other_shift_id,
            "ref": self.ref or None,
            "message": self.message,
        }


def planned_from_row(row: Row[Any], **changes: Any) -> PlannedShift:
    """A stored shift (joined with its type, see ``shifts_with_types``) as a PlannedShift."""
    values: dict[str, Any] = {
        "id": row.id,
        "physician_id": row.physician_id,
        "start": as_utc(row.start),
        "end": as_utc(row.end),
        "kind": row.type_kind,
        "label": row.type_name,
        "timezone": row.type_timezone,
        "location": row.location,
        "required_specialties": tuple(row.type_required or ()),
    }
    values.update(changes)
    return PlannedShift(**values)


@dataclass(slots=True)
class _Report:
    found: list[Conflict] = field(default_factory=list)
    seen: set[tuple[Any, ...]] = field(default_factory=set)

    def add(self, key: tuple[Any, ...], conflict: Conflict) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.found.append(conflict)


def _identity(shift: PlannedShift) -> Any:
    return shift.id if shift.id is not None else ("new", id(shift))


def check(
    conn: Connection,
    rules: RosterRules,
    planned: Sequence[PlannedShift],
    removed: Iterable[int] = (),
) -> list[Conflict]:
    """Every conflict the planned shifts would cause; [] when the change is allowed."""
    gone = set(removed) | {p.id for p in planned if p.id is not None}
    by_physician: dict[int, list[PlannedShift]] = defaultdict(list)
    for shift in planned:
        if shift.physician_id is not None:
            by_physician[shift.physician_id].append(shift)
    report = _Report()
    for physician_id in sorted(by_physician):
        mine = by_physician[physician_id]
        person = conn.execute(select(physicians).where(physicians.c.id == physician_id)).first()
        if person is None:
            for shift in mine:
                report.add(
                    ("unknown", physician_id),
                    Conflict(
                        "unknown_physician",
                        physician_id,
                        f"physician {physician_id}",
                        (),
                        f"Conflict (unknown_physician): there is no physician {physician_id}",
                        shift.id,
                        ref=shift.ref,
                    ),
                )
            continue
        stored = _stored_shifts(conn, physician_id, mine, gone)
        _check_person(report, rules, person, mine, stored + mine)
    return report.found


def _stored_shifts(
    conn: Connection, physician_id: int, mine: list[PlannedShift], gone: set[int]
) -> list[PlannedShift]:
    low = min(s.start for s in mine) - WINDOW
    high = max(s.end for s in mine) + WINDOW
    query = shifts_with_types().where(
        shifts.c.physician_id == physician_id,
        shifts.c.status == "assigned",
        shifts.c.start < high,
        shifts.c.end > low,
    )
    return [planned_from_row(r) for r in conn.execute(query) if r.id not in gone]


def _check_person(
    report: _Report,
    rules: RosterRules,
    person: Row[Any],
    mine: list[PlannedShift],
    timeline: list[PlannedShift],
) -> None:
    name = person.name
    pid = person.id
    for shift in mine:
        _check_eligibility(report, person, shift)
        for other in timeline:
            if _identity(other) == _identity(shift):
                continue
            _check_pair(report, rules, pid, name, shift, other)
    _check_weeks(report, rules, pid, name, mine, timeline)


def _check_eligibility(report: _Report, person: Row[Any], shift: PlannedShift) -> None:
    name, pid, ident = person.name, person.id, _identity(shift)
    span = span_text(shift.start, shift.end, shift.timezone)
    day = local(shift.start, shift.timezone).date().isoformat()
    if not person.active:
        report.add(
            ("inactive", pid, ident),
            Conflict(
                "inactive",
                pid,
                name,
                (day,),
                f"Conflict (inactive): {name} is not active and cannot work {span} ({shift.label})",
                shift.id,
                ref=shift.ref,
            ),
        )
    required = set(shift.required_specialties)
    if required and not required & set(person.specialties or ()):
        report.add(
            ("specialty", pid, ident),
            Conflict(
                "eligibility_specialty",
                pid,
                name,
                (day,),
                f"Conflict (eligibility_specialty): {shift.label} {span} needs one of the "
                f"specialties {', '.join(sorted(required))}; {name} has "
                f"{', '.join(person.specialties or ()) or 'none'}",
                shift.id,
                ref=shift.ref,
            ),
        )
    if shift.location not in (person.locations or ()):
        report.add(
            ("location", pid, ident),
            Conflict(
                "eligibility_location",
                pid,
                name,
                (day,),
                f"Conflict (eligibility_location): {shift.label} {span} is at "
                f"{shift.location}; {name} works at "
                f"{', '.join(person.locations or ()) or 'no location'}",
                shift.id,
                ref=shift.ref,
            ),
        )
    blackout = set(person.blackout_dates or ())
    for day_off in local_dates(shift.start, shift.end, shift.timezone):
        if day_off.isoformat() in blackout:
            report.add(
                ("blackout", pid, ident, day_off),
                Conflict(
                    "blackout",
                    pid,
                    name,
                    (day_off.isoformat(),),
                    f"Conflict (blackout): {name} is away on {day_off.isoformat()}; "
                    f"{shift.label} {span} falls on it",
                    shift.id,
                    ref=shift.ref,
                ),
            )


def _check_pair(
    report: _Report,
    rules: RosterRules,
    pid: int,
    name: str,
    shift: PlannedShift,
    other: PlannedShift,
) -> None:
    pair = frozenset({_identity(shift), _identity(other)})
    this_span = span_text(shift.start, shift.end, shift.timezone)
    other_span = span_text(other.start, other.end, other.timezone)
    dates = tuple(
        sorted(
            {
                local(shift.start, shift.timezone).date().isoformat(),
                local(other.start, other.timezone).date().isoformat(),
            }
        )
    )
    if shift.start < other.end and other.start < shift.end:
        report.add(
            ("overlap", pair),
            Conflict(
                "overlap",
                pid,
                name,
                dates,
                f"Conflict (overlap): {name} already works {other_span} ({other.label}); "
                f"{shift.name()} {this_span} ({shift.label}) overlaps it",
                shift.id,
                other.id,
                shift.ref,
            ),
        )
        return
    earlier, later = (other, shift) if other.end <= shift.start else (shift, other)
    gap = hours(later.start - earlier.end)
    earlier_span = span_text(earlier.start, earlier.end, earlier.timezone)
    later_span = span_text(later.start, later.end, later.timezone)
    for sequence in rules.forbidden_sequences:
        if sequence.matches(earlier.kind, later.kind) and gap < sequence.within_hours:
            report.add(
                ("sequence", pair, sequence.text()),
                Conflict(
                    "forbidden_sequence",
                    pid,
                    name,
                    dates,
                    f"Conflict (forbidden_sequence): {name} would start {later.label} "
                    f"{later_span} {gap:g} h after {earlier.label} {earlier_span} ends; "
                    f"a {earlier.kind} shift may not be followed by a {later.kind} shift "
                    f"within {sequence.within_hours:g} h",
                    shift.id,
                    other.id,
                    shift.ref,
                ),
            )
    if gap < rules.min_rest_hours:
        report.add(
            ("rest", pair),
            Conflict(
                "min_rest",
                pid,
                name,
                dates,
                f"Conflict (min_rest): {name} would rest only {gap:g} h between "
                f"{earlier.label} {earlier_span} and {later.label} {later_span}; "
                f"the minimum is {rules.min_rest_hours:g} h",
                shift.id,
                other.id,
                shift.ref,
            ),
        )


def _week_of(shift: PlannedShift, tz: str) -> tuple[int, int]:
    iso = local(shift.start, tz).isocalendar()
    return iso.year, iso.week


def _check_weeks(
    report: _Report,
    rules: RosterRules,
    pid: int,
    name: str,
    mine: list[PlannedShift],
    timeline: list[PlannedShift],
) -> None:
    tz = rules.timezone
    weeks = {_week_of(s, tz) for s in mine}
    for year, week in sorted(weeks):
        in_week = [s for s in timeline if _week_of(s, tz) == (year, week)]
        total = sum(hours(s.end - s.start) for s in in_week)
        monday = date.fromisocalendar(year, week, 1)
        sunday = monday + timedelta(days=6)
        label = f"ISO week {year}-W{week:02d} ({monday.isoformat()} to {sunday.isoformat()})"
        dates = (monday.isoformat(), sunday.isoformat())
        if total > rules.weekly_max_hours:
            report.add(
                ("hours", pid, year, week),
                Conflict(
                    "weekly_max_hours",
                    pid,
                    name,
                    dates,
                    f"Conflict (weekly_max_hours): {name} would work {total:g} h in {label}; "
                    f"the maximum is {rules.weekly_max_hours:g} h",
                ),
            )
        if len(in_week) > rules.weekly_max_shifts:
            report.add(
                ("count", pid, year, week),
                Conflict(
                    "weekly_max_shifts",
                    pid,
                    name,
                    dates,
                    f"Conflict (weekly_max_shifts): {name} would work {len(in_week)} shifts in "
                    f"{label}; the maximum is {rules.weekly_max_shifts}",
                ),
            )
