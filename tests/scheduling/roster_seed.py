"""A small clinic for scheduling tests: three physicians, four shift types, a draft roster.

March 2027 in New York, so the DST change (2027-03-14) falls inside the roster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from bench.month_seed import shift_type as hospital_shift_type
from hub.scheduling_context import scheduling_context
from hub.settings import Settings
from scheduling.context import SchedulingContext
from scheduling.physicians import create_physician
from scheduling.records import Actor
from scheduling.rosters import create_roster
from scheduling.shifts import run_changes

ADMIN = Actor("alice.admin", is_admin=True)
TZ = "America/New_York"


@dataclass
class Clinic:
    lee: int
    patel: int
    kim: int
    night: int
    clinic: int
    cardio: int
    remote: int
    roster: int

    def actor(self, physician_id: int) -> Actor:
        return Actor(f"dr.{physician_id}", physician_id=physician_id)


def settings_for(engine: Engine, **overrides: Any) -> Settings:
    return Settings(database_url=engine.url.render_as_string(hide_password=False), **overrides)


def context_for(engine: Engine, **overrides: Any) -> SchedulingContext:
    """The scheduling context a hub with these settings would use."""
    return scheduling_context(settings_for(engine, **overrides))


def seed(engine: Engine) -> Clinic:
    def physician(name: str, **extra: Any) -> int:
        values = {"name": name, "specialties": ["internal"], "locations": ["Main"], **extra}
        return int(create_physician(engine, values)["id"])

    def shift_type(code: str, kind: str, start: str, minutes: int, **extra: Any) -> int:
        return hospital_shift_type(engine, code, kind, start, minutes, **extra)

    return Clinic(
        lee=physician("Dr Lee"),
        patel=physician("Dr Patel"),
        kim=physician("Dr Kim", specialties=["internal", "cardiology"]),
        night=shift_type("NIGHT", "night", "19:00", 12 * 60, name="Night call"),
        clinic=shift_type("CLINIC", "clinic", "08:00", 9 * 60, name="Clinic"),
        cardio=shift_type(
            "CARDIO",
            "clinic",
            "08:00",
            8 * 60,
            name="Cardio clinic",
            required_specialties=["cardiology"],
        ),
        remote=shift_type("REMOTE", "clinic", "08:00", 8 * 60, name="Remote", location="North"),
        roster=int(create_roster(engine, ADMIN, "March 2027", "2027-03-01", "2027-03-31")["id"]),
    )


def add_shift(
    engine: Engine,
    context: SchedulingContext,
    clinic: Clinic,
    type_id: int,
    day: str,
    who: int | None,
) -> dict[str, Any]:
    item = {
        "op": "create",
        "roster_id": clinic.roster,
        "shift_type_id": type_id,
        "date": day,
        "physician_id": who,
    }
    data: dict[str, Any] = run_changes(engine, context, ADMIN, [item]).data
    return data
