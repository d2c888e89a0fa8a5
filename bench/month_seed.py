"""A realistic month to generate: 30 physicians, five shift types, March 2027 in New York
(DST on the 14th), the hub's default rules and a coverage that cannot all be met.

Shared by the month test (which checks what the draft must satisfy) and the rostering bench
(which times it), so both judge the very same instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine

from hub.scheduling_context import scheduling_context
from hub.settings import Settings
from scheduling.context import SchedulingContext
from scheduling.physicians import create_physician
from scheduling.records import Actor
from scheduling.rostering.harmony import Coverage, GenerationOptions, Wish
from scheduling.rosters import create_roster
from scheduling.shift_types import create_shift_type
from scheduling.shifts import run_changes

ADMIN = Actor("alice.admin", is_admin=True)
TZ = "America/New_York"
MONTH_START = date(2027, 3, 1)
PHYSICIANS = 30
TIME_LIMIT = 20.0
"""The issue's setting: a month's draft within 20 s."""

WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})
COVERAGE = (
    Coverage("DAY", 4, WEEKDAYS),
    Coverage("DAY", 3, WEEKEND),
    Coverage("EVE", 2),
    Coverage("NIGHT", 2, under_weight=150),
    Coverage("CLINIC", 2, WEEKDAYS),
    Coverage("WKND", 1, WEEKEND),
)
OPTIONS = GenerationOptions(
    full_time_weekly_hours=34, min_load=0.6, max_per_kind_per_fte={"night": 4}, max_weekends=3
)


@dataclass(frozen=True, slots=True)
class MonthSeed:
    """What was seeded, and the generation's inputs (coverage, options, wishes)."""

    roster_id: int
    people: list[int]
    """Physician ids in seeding order (``people[i]`` is "Dr i")."""
    types: dict[str, int]
    """Shift type id by code."""
    context: SchedulingContext
    actor: Actor
    coverage: tuple[Coverage, ...]
    options: GenerationOptions
    wishes: tuple[Wish, ...]


def context_for(engine: Engine) -> SchedulingContext:
    """The scheduling context a hub on this database would use (its default rules)."""
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    return scheduling_context(settings)


def _blackout(i: int) -> list[str]:
    """Every third physician is away for 3 to 7 days somewhere in the month."""
    if i % 3:
        return []
    begin = MONTH_START + timedelta(days=(i * 3) % 26)
    return [(begin + timedelta(days=k)).isoformat() for k in range(3 + i % 5)]


def _physicians(engine: Engine) -> list[int]:
    """30 physicians: every fourth a cardiologist also at North (so are 25 and 26), FTE
    0.5/0.8/1.0 in turn, so that fairness has to scale by FTE."""
    people = []
    for i in range(PHYSICIANS):
        cardio = i % 4 == 0
        values = {
            "name": f"Dr {i:02d}",
            "specialties": ["internal", "cardiology"] if cardio else ["internal"],
            "locations": ["Main", "North"] if cardio or i in (25, 26) else ["Main"],
            "fte": 0.5 if i % 5 == 0 else 0.8 if i % 5 == 1 else 1.0,
            "blackout_dates": _blackout(i),
        }
        people.append(int(create_physician(engine, values)["id"]))
    return people


def shift_type(engine: Engine, code: str, kind: str, start: str, minutes: int, **extra: Any) -> int:
    """A hospital-medicine shift type at Main in New York for internists; ``extra``
    overrides any of that."""
    values = {
        "code": code,
        "name": code.title(),
        "kind": kind,
        "start_time": start,
        "duration_minutes": minutes,
        "service": "Hospital medicine",
        "location": "Main",
        "timezone": TZ,
        "required_specialties": ["internal"],
        **extra,
    }
    return int(create_shift_type(engine, values)["id"])


def _shift_types(engine: Engine) -> dict[str, int]:
    """Day, evening and night overlap one another; the clinic needs a cardiologist at North."""
    return {
        "DAY": shift_type(engine, "DAY", "day", "07:00", 600),
        "EVE": shift_type(engine, "EVE", "evening", "14:00", 600),
        "NIGHT": shift_type(engine, "NIGHT", "night", "20:00", 720),
        "CLINIC": shift_type(
            engine,
            "CLINIC",
            "clinic",
            "08:00",
            480,
            location="North",
            required_specialties=["cardiology"],
        ),
        "WKND": shift_type(engine, "WKND", "weekend", "08:00", 720),
    }


def seed_month(engine: Engine) -> MonthSeed:
    """Seed an empty database: the physicians and shift types, a February roster ending in a
    night (so March 1st's morning is off for Dr 01), and the March draft with one clinic
    already assigned (a lock the generation must keep)."""
    people = _physicians(engine)
    types = _shift_types(engine)
    february = int(create_roster(engine, ADMIN, "February 2027", "2027-02-01", "2027-02-28")["id"])
    march = int(create_roster(engine, ADMIN, "March 2027", "2027-03-01", "2027-03-31")["id"])
    context = context_for(engine)
    run_changes(
        engine,
        context,
        ADMIN,
        [
            {
                "op": "create",
                "roster_id": february,
                "shift_type_id": types["NIGHT"],
                "date": "2027-02-28",
                "physician_id": people[1],
            },
            {
                "op": "create",
                "roster_id": march,
                "shift_type_id": types["CLINIC"],
                "date": "2027-03-15",
                "physician_id": people[4],
            },
        ],
    )
    wishes = (
        Wish(people[7], date(2027, 3, 20), None),
        Wish(people[8], date(2027, 3, 9), "NIGHT"),
    )
    return MonthSeed(march, people, types, context, ADMIN, COVERAGE, OPTIONS, wishes)
