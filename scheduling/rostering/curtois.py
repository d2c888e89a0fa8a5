"""Reader for the Curtois & Qu nurse-rostering benchmark format (schedulingbenchmarks.org).

Fills the generic :class:`~scheduling.rostering.problem.Problem`, so the benchmark measures
the same model that generates Harmony's rosters. Day 0 is a Monday in every instance.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from scheduling.rostering.problem import Cover, Problem, Request, ShiftType, Staff


class CurtoisFormatError(ValueError):
    """The file is not in the Curtois & Qu format; the message names the line."""


def _sections(text: str) -> dict[str, list[tuple[int, list[str]]]]:
    """Rows of comma-separated fields per ``SECTION_*``, with their line numbers."""
    sections: dict[str, list[tuple[int, list[str]]]] = defaultdict(list)
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("SECTION_"):
            current = line
            sections[current]  # an empty section is still a section
            continue
        if current is None:
            raise CurtoisFormatError(f"line {number}: data before the first SECTION_")
        sections[current].append((number, [field.strip() for field in line.split(",")]))
    return sections


def _int(value: str, number: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise CurtoisFormatError(f"line {number}: {value!r} is not an integer") from None


def _max_shifts(value: str, number: int) -> dict[str, int]:
    limits: dict[str, int] = {}
    for part in filter(None, value.split("|")):
        shift, _, count = part.partition("=")
        limits[shift.strip()] = _int(count, number)
    return limits


def parse_curtois(text: str) -> Problem:
    """The problem described by ``text`` (an instance file's content)."""
    sections = _sections(text)
    horizon = sections.get("SECTION_HORIZON")
    if not horizon:
        raise CurtoisFormatError("no SECTION_HORIZON")
    days = _int(horizon[0][1][0], horizon[0][0])

    shifts = tuple(
        ShiftType(
            id=row[0],
            minutes=_int(row[1], number),
            forbidden_next=frozenset(s.strip() for s in "".join(row[2:]).split("|") if s.strip()),
        )
        for number, row in sections.get("SECTION_SHIFTS", [])
    )
    days_off: dict[str, frozenset[int]] = {
        row[0]: frozenset(_int(day, number) for day in row[1:] if day)
        for number, row in sections.get("SECTION_DAYS_OFF", [])
    }
    staff = []
    for number, row in sections.get("SECTION_STAFF", []):
        if len(row) < 8:
            raise CurtoisFormatError(f"line {number}: a staff row has 8 fields")
        limits = _max_shifts(row[1], number)
        staff.append(
            Staff(
                id=row[0],
                max_shifts=limits,
                max_minutes=_int(row[2], number),
                min_minutes=_int(row[3], number),
                max_consecutive_work=_int(row[4], number),
                min_consecutive_work=_int(row[5], number),
                min_consecutive_off=_int(row[6], number),
                max_weekends=_int(row[7], number),
                days_off=days_off.get(row[0], frozenset()),
                eligible=frozenset(s.id for s in shifts if limits.get(s.id, 1) > 0),
            )
        )
    requests = [
        Request(row[0], _int(row[1], number), row[2], _int(row[3], number), on=on)
        for section, on in (
            ("SECTION_SHIFT_ON_REQUESTS", True),
            ("SECTION_SHIFT_OFF_REQUESTS", False),
        )
        for number, row in sections.get(section, [])
    ]
    cover = [
        Cover(
            day=_int(row[0], number),
            shift=row[1],
            requirement=_int(row[2], number),
            under_weight=_int(row[3], number),
            over_weight=_int(row[4], number),
        )
        for number, row in sections.get("SECTION_COVER", [])
    ]
    return Problem(
        days=days,
        shift_types=shifts,
        staff=tuple(staff),
        cover=tuple(cover),
        requests=tuple(requests),
        first_weekday=0,
    )


def read_curtois(path: Path) -> Problem:
    """The problem in the instance file at ``path``."""
    return parse_curtois(path.read_text(encoding="utf-8"))
