"""Rosters: a named period of shifts, drafted by an admin, then published."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine, insert, select

from scheduling.errors import InvalidInput
from scheduling.records import Actor, get_row, roster_json
from scheduling.roster_events import write_event
from scheduling.tables import rosters
from scheduling.times import utcnow


def _day(value: Any, what: str) -> date:
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{what} {value!r} is not YYYY-MM-DD") from None


def create_roster(
    engine: Engine, actor: Actor, name: str, period_start: Any, period_end: Any
) -> dict[str, Any]:
    """A new draft roster for [period_start, period_end] (both inclusive)."""
    actor.require_admin()
    first, last = _day(period_start, "period_start"), _day(period_end, "period_end")
    if last < first:
        raise InvalidInput("period_end is before period_start")
    if not name.strip():
        raise InvalidInput("a roster needs a name")
    now = utcnow()
    with engine.begin() as conn:
        new_id = int(
            conn.execute(
                insert(rosters).values(
                    name=name,
                    period_start=first,
                    period_end=last,
                    status="draft",
                    version=1,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )
        roster = roster_json(get_row(conn, rosters, new_id, "roster"))
        write_event(
            conn,
            "roster_create",
            actor=actor.name,
            roster_id=new_id,
            detail={"summary": f"{actor.name} drafted roster {name}", "roster": roster},
        )
    return roster


def get_roster(engine: Engine, roster_id: int, *, include_drafts: bool) -> dict[str, Any]:
    from scheduling.errors import NotFound

    with engine.connect() as conn:
        row = get_row(conn, rosters, roster_id, "roster")
    if row.status != "published" and not include_drafts:
        raise NotFound(f"roster {roster_id} does not exist")
    return roster_json(row)


def list_rosters(engine: Engine, *, include_drafts: bool) -> list[dict[str, Any]]:
    query = select(rosters).order_by(rosters.c.period_start, rosters.c.id)
    if not include_drafts:
        query = query.where(rosters.c.status == "published")
    with engine.connect() as conn:
        return [roster_json(r) for r in conn.execute(query)]
