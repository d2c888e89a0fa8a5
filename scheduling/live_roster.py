"""Who is on call now and for the next hours, per service and location: pure functions.

Every instant is UTC and every shift is half-open, ``start <= t < end``: at a 07:00 handoff
the incoming physician is on call at 07:00:00 exactly and the outgoing one at 06:59:59, so a
moment never has two owners by accident or none. Shifts are stored in UTC, so a night shift
across a daylight-saving change is simply 11 or 13 hours long; local times are only for
display, in the shift type's own timezone. The query that feeds these functions lives in
``scheduling.live_roster_query``; nothing here touches a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

GroupKey = tuple[str, str]
TICK = timedelta(seconds=60)
"""Recompute at least this often: the look-ahead window slides even when nothing changes."""


def as_utc(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; every one Harmony writes is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ShiftRow:
    """One shift of a published roster with what the roster view shows about it."""

    shift_id: int
    roster_id: int
    service: str
    location: str
    start: datetime
    end: datetime
    physician_id: int | None
    physician_name: str | None
    status: str
    kind: str
    shift_type: str
    timezone: str

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end

    def as_json(self) -> dict[str, Any]:
        zone = ZoneInfo(self.timezone)
        return {
            "shift_id": self.shift_id,
            "roster_id": self.roster_id,
            "physician_id": self.physician_id,
            "physician": self.physician_name,
            "status": self.status,
            "kind": self.kind,
            "shift_type": self.shift_type,
            "start": iso_utc(self.start),
            "end": iso_utc(self.end),
            "start_local": self.start.astimezone(zone).isoformat(),
            "end_local": self.end.astimezone(zone).isoformat(),
            "timezone": self.timezone,
        }


@dataclass(frozen=True, slots=True)
class EventRow:
    """One ``roster_event`` row, with the names of the physicians it concerns."""

    id: int
    kind: str
    roster_id: int | None
    shift_ids: tuple[int, ...]
    request_id: int | None
    physician_ids: tuple[int, ...]
    actor: str
    detail: Mapping[str, Any]
    created_at: datetime
    physician_names: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "roster_id": self.roster_id,
            "shift_ids": list(self.shift_ids),
            "request_id": self.request_id,
            "physician_ids": list(self.physician_ids),
            "physicians": list(self.physician_names),
            "actor": self.actor,
            "detail": dict(self.detail),
            "created_at": iso_utc(self.created_at),
            "summary": summarize(self),
        }


def on_stream(event: EventRow, published_now: set[int] | None) -> bool:
    """Whether ``event`` belongs on the live roster stream: a publish, or a change to a
    roster that was published when the change was written (``detail["published"]``).
    Events from before that field existed fall back to the roster's status now
    (``published_now``, the published roster ids; None when no event needed them)."""
    if event.kind == "publish":
        return True
    if event.kind == "roster_create":
        return False  # a roster is born a draft
    recorded = event.detail.get("published")
    if isinstance(recorded, bool):
        return recorded
    return published_now is not None and event.roster_id in published_now


def needs_status(events: Sequence[EventRow]) -> bool:
    """Whether deciding ``on_stream`` for these events needs the rosters' status now."""
    return any(
        e.kind not in ("publish", "roster_create") and "published" not in e.detail for e in events
    )


def summarize(event: EventRow) -> str:
    """One line a call-center agent can read: what happened, to whom, by whom."""
    who = event.physician_names or tuple(f"physician {p}" for p in event.physician_ids)
    joiner = " \u2194 " if event.kind == "swap" else ", "
    shifts = ", ".join(str(s) for s in event.shift_ids)
    parts = [event.kind]
    if who:
        parts.append(joiner.join(who))
    if shifts:
        parts.append(f"(shift{'s' if len(event.shift_ids) > 1 else ''} {shifts})")
    return f"{' '.join(parts)} by {event.actor}"


@dataclass(slots=True)
class Group:
    """One service at one location: who covers it now, and who comes next."""

    service: str
    location: str
    timezone: str
    on_call: list[ShiftRow] = field(default_factory=list)
    upcoming: list[ShiftRow] = field(default_factory=list)

    @property
    def key(self) -> GroupKey:
        return (self.service, self.location)

    def as_json(self) -> dict[str, Any]:
        covered = any(s.physician_id is not None for s in self.on_call)
        return {
            "key": f"{self.service}|{self.location}",
            "service": self.service,
            "location": self.location,
            "timezone": self.timezone,
            "covered": covered,
            "on_call": [s.as_json() for s in self.on_call],
            "upcoming": [s.as_json() for s in self.upcoming],
        }


@dataclass(slots=True)
class Snapshot:
    """The roster as seen at ``at``, looking ``hours`` ahead; ``next_change_at`` is when a
    shift starts or ends (or the window slides), so a live view knows when to recompute."""

    at: datetime
    until: datetime
    groups: list[Group]
    next_change_at: datetime
    last_event_id: int
    recent: list[EventRow] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": iso_utc(self.at),
            "until": iso_utc(self.until),
            "next_change_at": iso_utc(self.next_change_at),
            "last_event_id": self.last_event_id,
            "groups": [g.as_json() for g in self.groups],
            "recent": [e.as_json() for e in self.recent],
        }


def build_snapshot(
    rows: Iterable[ShiftRow],
    at: datetime,
    hours: float,
    *,
    last_event_id: int = 0,
    recent: Sequence[EventRow] = (),
) -> Snapshot:
    """Group ``rows`` by service and location: shifts covering ``at`` are on call, shifts
    starting in ``(at, at + hours)`` are upcoming (in start order); the rest is ignored."""
    at = as_utc(at)
    until = at + timedelta(hours=hours)
    groups: dict[GroupKey, Group] = {}
    next_change = at + TICK
    for row in rows:
        start, end = as_utc(row.start), as_utc(row.end)
        if end <= start:
            continue  # a zero-length or inverted shift covers no instant
        if start <= at < end:
            bucket = "on_call"
            next_change = min(next_change, end)
        elif at < start < until:
            bucket = "upcoming"
            next_change = min(next_change, start)
        else:
            continue
        group = groups.get((row.service, row.location))
        if group is None:
            group = groups[(row.service, row.location)] = Group(
                row.service, row.location, row.timezone
            )
        getattr(group, bucket).append(row)
    ordered = [groups[k] for k in sorted(groups)]
    for group in ordered:
        group.on_call.sort(key=lambda s: (s.start, s.shift_id))
        group.upcoming.sort(key=lambda s: (s.start, s.shift_id))
    return Snapshot(at, until, ordered, next_change, last_event_id, list(recent))


def on_call_at(rows: Iterable[ShiftRow], at: datetime) -> dict[GroupKey, list[int | None]]:
    """Who is on call at ``at`` per (service, location): physician ids, None for an open shift."""
    snapshot = build_snapshot(rows, at, 0)
    return {g.key: [s.physician_id for s in g.on_call] for g in snapshot.groups}


def diff_groups(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """The groups of ``new`` that differ from ``old`` (whole, so applying is idempotent) and the
    keys of groups that disappeared; what a live view needs to catch up with one change."""
    before = {g["key"]: g for g in old}
    after = {g["key"]: g for g in new}
    changed = [g for k, g in after.items() if before.get(k) != g]
    removed = [k for k in before if k not in after]
    return changed, removed


def local_instant(day: str, hhmm: str, timezone: str) -> datetime:
    """The UTC instant of a wall-clock time on a local date, as a roster is written. A time
    the clocks skip lands an hour later; a repeated one means its first occurrence (fold 0)."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    local = datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=ZoneInfo(timezone))
    return local.astimezone(UTC)
