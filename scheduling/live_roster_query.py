"""The live roster's reads: published shifts around an instant, and roster events by id.

Only ``published`` rosters count: a draft is a plan, and the call center must never page a
physician from one. Events are read in id order from ``roster_event`` (written in the same
transaction as the change it records), so any process sees the same history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select

from scheduling.live_roster import (
    EventRow,
    ShiftRow,
    Snapshot,
    as_utc,
    build_snapshot,
    on_stream,
)
from scheduling.tables import physicians, roster_events, rosters, shift_types, shifts

LONGEST_SHIFT = timedelta(days=7)
"""Shifts starting this long before the window are still looked at (weekend call is ~62 h);
the bound lets the query use the index on ``start``."""
RECENT_EVENTS = 20


def shifts_query(start: datetime, end: datetime) -> Select[Any]:
    """Published shifts overlapping ``[start, end)``, with their type and physician's name."""
    return (
        select(
            shifts.c.id,
            shifts.c.roster_id,
            shifts.c.service,
            shifts.c.location,
            shifts.c.start,
            shifts.c.end,
            shifts.c.physician_id,
            physicians.c.name.label("physician_name"),
            shifts.c.status,
            shift_types.c.kind,
            shift_types.c.code,
            shift_types.c.timezone,
        )
        .join(rosters, rosters.c.id == shifts.c.roster_id)
        .join(shift_types, shift_types.c.id == shifts.c.shift_type_id)
        .outerjoin(physicians, physicians.c.id == shifts.c.physician_id)
        .where(
            rosters.c.status == "published",
            shifts.c.start > start - LONGEST_SHIFT,
            shifts.c.start < end,
            shifts.c.end > start,
        )
    )


def load_shifts(conn: Connection, start: datetime, end: datetime) -> list[ShiftRow]:
    """The rows :func:`build_snapshot` needs for a window; an open shift has no physician."""
    return [
        ShiftRow(
            shift_id=int(r.id),
            roster_id=int(r.roster_id),
            service=r.service,
            location=r.location,
            start=as_utc(r.start),
            end=as_utc(r.end),
            physician_id=None if r.physician_id is None else int(r.physician_id),
            physician_name=r.physician_name,
            status=r.status,
            kind=r.kind,
            shift_type=r.code,
            timezone=r.timezone,
        )
        for r in conn.execute(shifts_query(start, end))
    ]


def last_event_id(conn: Connection) -> int:
    return int(conn.execute(select(func.max(roster_events.c.id))).scalar() or 0)


def published_roster_ids(conn: Connection) -> set[int]:
    rows = conn.execute(select(rosters.c.id).where(rosters.c.status == "published"))
    return {int(r[0]) for r in rows}


def events_after(conn: Connection, after_id: int, limit: int = 500) -> list[EventRow]:
    """Every roster event with an id above ``after_id``, in id order (drafts' too)."""
    query = (
        select(roster_events)
        .where(roster_events.c.id > after_id)
        .order_by(roster_events.c.id)
        .limit(limit)
    )
    return _with_names(conn, conn.execute(query))


def events_by_id(conn: Connection, ids: Iterable[int]) -> list[EventRow]:
    """Events with these ids (ones committed late, behind a higher id), in id order."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    query = select(roster_events).where(roster_events.c.id.in_(wanted)).order_by(roster_events.c.id)
    return _with_names(conn, conn.execute(query))


def recent_events(conn: Connection, limit: int = RECENT_EVENTS) -> list[EventRow]:
    """The latest changes to published rosters, newest first, as the stream showed them
    (``on_stream``: a draft's events stay out even after the roster is published)."""
    published = select(rosters.c.id).where(rosters.c.status == "published")
    # a membership test, not a join: the planner walks the id index backwards and stops
    # after enough hits instead of sorting every published event (2.1 -> 0.2 ms); a
    # roster's draft events are skipped below, so read a few more than asked for
    query = (
        select(roster_events)
        .where(roster_events.c.roster_id.in_(published.scalar_subquery()))
        .order_by(roster_events.c.id.desc())
        .limit(limit * 4)
    )
    events = _with_names(conn, conn.execute(query))
    published_ids = {e.roster_id for e in events if e.roster_id is not None}
    return [e for e in events if on_stream(e, published_ids)][:limit]


def _with_names(conn: Connection, rows: Iterable[Any]) -> list[EventRow]:
    raw = list(rows)
    ids = {int(p) for r in raw for p in (r.physician_ids or ())}
    names: dict[int, str] = {}
    if ids:
        found = conn.execute(
            select(physicians.c.id, physicians.c.name).where(physicians.c.id.in_(sorted(ids)))
        )
        names = {int(i): n for i, n in found}
    events = []
    for r in raw:
        physician_ids = tuple(int(p) for p in (r.physician_ids or ()))
        events.append(
            EventRow(
                id=int(r.id),
                kind=r.kind,
                roster_id=None if r.roster_id is None else int(r.roster_id),
                shift_ids=tuple(int(s) for s in (r.shift_ids or ())),
                request_id=None if r.request_id is None else int(r.request_id),
                physician_ids=physician_ids,
                actor=r.actor,
                detail=r.detail or {},
                created_at=as_utc(r.created_at),
                physician_names=tuple(names.get(p, f"physician {p}") for p in physician_ids),
            )
        )
    return events


def load_snapshot(engine: Engine, at: datetime, hours: float) -> Snapshot:
    """The live roster at ``at`` from one consistent read (one transaction)."""
    at = as_utc(at)
    with engine.connect() as conn:
        cursor = last_event_id(conn)
        rows = load_shifts(conn, at, at + timedelta(hours=hours))
        recent = recent_events(conn)
    return build_snapshot(rows, at, hours, last_event_id=cursor, recent=recent)
