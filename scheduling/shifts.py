"""Admin changes to shifts (create, edit, move, delete, and all of those in bulk) and reads.

Every change is written first and then judged as a whole by the conflict checker, inside one
transaction: a refusal rolls everything back, and a bulk request is all-or-nothing with the
errors of every item reported. Locks are taken physicians first, then shifts, then requests,
everywhere, so concurrent changes serialise instead of deadlocking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select
from sqlalchemy.orm import Session

from scheduling.conflicts import Conflict, check, planned_from_row
from scheduling.context import SchedulingContext
from scheduling.eligibility import is_eligible
from scheduling.errors import (
    BulkRefused,
    Forbidden,
    InvalidInput,
    NotFound,
    RuleConflict,
    SchedulingError,
)
from scheduling.outcome import Outcome
from scheduling.publish import LIVE, announce
from scheduling.records import (
    Actor,
    get_row,
    lock_physicians,
    roster_of,
    shift_json,
    shift_with_type,
    shifts_with_types,
    versioned_update,
)
from scheduling.roster_events import write_event
from scheduling.rules import load_rules
from scheduling.tables import physicians, rosters, shift_requests, shift_types, shifts
from scheduling.times import local, parse_instant, shift_bounds, utcnow

_EDITABLE = frozenset({"physician_id", "date", "start", "end", "shift_type_id"})


@dataclass(slots=True)
class _Change:
    kind: str
    shift_id: int
    roster_id: int
    published: bool
    trigger: str
    before: dict[str, Any] | None
    physician_ids: set[int] = field(default_factory=set)


def _physician_exists(conn: Connection, physician_id: Any) -> int | None:
    if physician_id is None:
        return None
    if not isinstance(physician_id, int):
        raise InvalidInput("physician_id must be an integer or null")
    get_row(conn, physicians, physician_id, "physician")
    return physician_id


def _times(type_row: Row[Any], values: dict[str, Any], fallback_day: date | None) -> Any:
    if "start" in values or "end" in values:
        if "start" not in values or "end" not in values:
            raise InvalidInput("give both start and end, or a date")
        start, end = parse_instant(str(values["start"])), parse_instant(str(values["end"]))
        if end <= start:
            raise InvalidInput("the shift ends before it starts")
        return start, end
    if "date" in values or fallback_day is not None:
        try:
            day = date.fromisoformat(str(values["date"])) if "date" in values else fallback_day
        except ValueError:
            raise InvalidInput(f"date {values['date']!r} is not YYYY-MM-DD") from None
        assert day is not None
        return shift_bounds(day, type_row.start_time, type_row.duration_minutes, type_row.timezone)
    raise InvalidInput("a shift needs a date (the shift type gives the times) or start and end")


def _in_period(roster: Row[Any], start: Any, tz: str) -> None:
    day = local(start, tz).date()
    if not roster.period_start <= day <= roster.period_end:
        raise InvalidInput(
            f"the shift starts on {day}, outside roster {roster.name} "
            f"({roster.period_start} to {roster.period_end})"
        )


def _create(conn: Connection, actor: Actor, values: dict[str, Any]) -> _Change:
    unknown = set(values) - _EDITABLE - {"roster_id"}
    if unknown:
        raise InvalidInput(f"unknown shift fields {sorted(unknown)}")
    for needed in ("roster_id", "shift_type_id"):
        if not isinstance(values.get(needed), int):
            raise InvalidInput(f"a shift needs {needed}")
    roster = roster_of(conn, values["roster_id"])
    type_row = get_row(conn, shift_types, values["shift_type_id"], "shift type")
    physician_id = _physician_exists(conn, values.get("physician_id"))
    start, end = _times(type_row, values, None)
    _in_period(roster, start, type_row.timezone)
    now = utcnow()
    new_id = int(
        conn.execute(
            insert(shifts).values(
                roster_id=roster.id,
                shift_type_id=type_row.id,
                physician_id=physician_id,
                start=start,
                end=end,
                service=type_row.service,
                location=type_row.location,
                status="assigned" if physician_id is not None else "open",
                version=1,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )
    return _Change(
        "create",
        new_id,
        roster.id,
        roster.status == "published",
        "S12",
        None,
        {physician_id} if physician_id is not None else set(),
    )


def _edit(
    conn: Connection, shift_id: int, changes: dict[str, Any], expected_version: int
) -> _Change:
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise InvalidInput(f"unknown or read-only shift fields {sorted(unknown)}")
    row = shift_with_type(conn, shift_id)
    if row.status not in LIVE:
        raise NotFound(f"shift {shift_id} was deleted")
    roster = roster_of(conn, row.roster_id)
    type_id = changes.get("shift_type_id", row.shift_type_id)
    type_row = get_row(conn, shift_types, type_id, "shift type")
    values: dict[str, Any] = {}
    if type_id != row.shift_type_id:
        values.update(shift_type_id=type_id, service=type_row.service, location=type_row.location)
    timed = {"date", "start", "end"} & set(changes) or type_id != row.shift_type_id
    if timed:
        old_day = local(row.start, row.type_timezone).date()
        values["start"], values["end"] = _times(type_row, changes, old_day)
        _in_period(roster, values["start"], type_row.timezone)
    if "physician_id" in changes:
        new_owner = _physician_exists(conn, changes["physician_id"])
        values["physician_id"] = new_owner
        values["status"] = "assigned" if new_owner is not None else "open"
    before = shift_json(row)
    after = versioned_update(conn, shifts, shift_id, expected_version, "shift", **values)
    moved = after.physician_id != row.physician_id or after.start != row.start
    retimed = after.start != row.start or after.end != row.end
    return _Change(
        "move" if moved or retimed else "edit",
        shift_id,
        row.roster_id,
        roster.status == "published",
        "S13" if retimed else "S14",
        before,
        {p for p in (row.physician_id, after.physician_id) if p is not None},
    )


def _delete(conn: Connection, actor: Actor, shift_id: int, expected_version: int) -> _Change:
    row = shift_with_type(conn, shift_id)
    if row.status not in LIVE:
        raise NotFound(f"shift {shift_id} was deleted")
    roster = roster_of(conn, row.roster_id)
    before = shift_json(row)
    versioned_update(conn, shifts, shift_id, expected_version, "shift", status="deleted")
    _close_requests(conn, actor, [shift_id], f"shift {shift_id} was deleted")
    return _Change(
        "delete",
        shift_id,
        row.roster_id,
        roster.status == "published",
        "S15",
        before,
        {row.physician_id} if row.physician_id is not None else set(),
    )


def _close_requests(conn: Connection, actor: Actor, shift_ids: list[int], why: str) -> None:
    """Reject the undecided requests that name these shifts: they can no longer happen."""
    from scheduling.requests import close_requests_for

    close_requests_for(conn, actor, shift_ids, why)


def _involved(conn: Connection, item: dict[str, Any]) -> set[int]:
    """Physicians an item touches, to lock before writing (see the module docstring)."""
    found: set[int] = set()
    if isinstance(item.get("physician_id"), int):
        found.add(item["physician_id"])
    if isinstance(item.get("id"), int):
        owner = conn.execute(
            select(shifts.c.physician_id).where(shifts.c.id == item["id"])
        ).scalar()
        if owner is not None:
            found.add(owner)
    return found


def _apply(conn: Connection, actor: Actor, item: dict[str, Any]) -> _Change:
    op = item.get("op")
    body = {k: v for k, v in item.items() if k not in ("op", "id", "version")}
    if op == "create":
        return _create(conn, actor, body)
    if op not in ("edit", "delete"):
        raise InvalidInput("op must be create, edit or delete")
    if not isinstance(item.get("id"), int) or not isinstance(item.get("version"), int):
        raise InvalidInput(f"{op} needs the shift's id and the version it was read at")
    if op == "edit":
        return _edit(conn, item["id"], body, item["version"])
    return _delete(conn, actor, item["id"], item["version"])


def _error(index: int, exc: SchedulingError) -> dict[str, Any]:
    out: dict[str, Any] = {"index": index, "error": type(exc).__name__, "detail": str(exc)}
    if isinstance(exc, RuleConflict):
        out["conflicts"] = [c.as_json() for c in exc.conflicts]
    return out


def run_changes(
    engine: Engine, context: SchedulingContext, actor: Actor, items: list[dict[str, Any]]
) -> Outcome:
    """Apply items (``{"op": "create" | "edit" | "delete", ...}``) all-or-nothing.

    One item: its refusal is raised as it is (RuleConflict, StaleVersion ...). Several:
    BulkRefused with every item's error (``index``, ``error``, ``detail``, ``conflicts``).
    """
    actor.require_admin()
    if not items:
        raise InvalidInput("nothing to do")
    single = len(items) == 1
    with Session(engine) as session, session.begin():
        conn = session.connection()
        lock_physicians(conn, set().union(*(_involved(conn, i) for i in items)))
        changes: list[_Change | None] = []
        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            try:
                with conn.begin_nested():
                    changes.append(_apply(conn, actor, item))
            except SchedulingError as exc:
                if single:
                    raise
                errors.append(_error(index, exc))
                changes.append(None)
        conflicts = _judge(conn, context, [c for c in changes if c is not None])
        if conflicts:
            if single:
                raise RuleConflict(conflicts)
            for index, change in enumerate(changes):
                mine = [
                    c
                    for c in conflicts
                    if change and change.shift_id in (c.shift_id, c.other_shift_id)
                ]
                if mine:
                    errors.append(_error(index, RuleConflict(mine)))
        if errors:
            raise BulkRefused(sorted(errors, key=lambda e: e["index"]))
        done = [c for c in changes if c is not None]
        outbound = announce(
            session,
            context,
            [(c.trigger, c.shift_id) for c in done if c.published],
            "roster edited",
        )
        results = []
        for change in done:
            after = shift_json(shift_with_type(conn, change.shift_id))
            results.append(after)
            _log(conn, actor, change, after, bulk=not single)
    return Outcome(results[0] if single else results, outbound)


def _judge(conn: Connection, context: SchedulingContext, changes: list[_Change]) -> list[Conflict]:
    ids = sorted({c.shift_id for c in changes})
    if not ids:
        return []
    rows = conn.execute(
        shifts_with_types().where(shifts.c.id.in_(ids), shifts.c.status == "assigned")
    ).all()
    return check(conn, load_rules(conn, context.default_rules), [planned_from_row(r) for r in rows])


def _log(
    conn: Connection, actor: Actor, change: _Change, after: dict[str, Any], bulk: bool
) -> None:
    verb = {"create": "created", "edit": "edited", "move": "moved", "delete": "deleted"}
    detail: dict[str, Any] = {
        "summary": f"{actor.name} {verb[change.kind]} shift {change.shift_id}",
        "shifts": [change.before if change.kind == "delete" else after],
        "bulk": bulk,
        "published": change.published,
    }
    if change.before is not None and change.kind != "delete":
        detail["before"] = [change.before]
    write_event(
        conn,
        change.kind,
        actor=actor.name,
        roster_id=change.roster_id,
        shift_ids=[change.shift_id],
        physician_ids=change.physician_ids,
        detail=detail,
    )


# ---------------------------------------------------------------- reads


def _visible(conn: Connection, actor: Actor, row: Row[Any]) -> bool:
    if actor.is_admin:
        return True
    status = conn.execute(select(rosters.c.status).where(rosters.c.id == row.roster_id)).scalar()
    return status == "published"


def get_shift(engine: Engine, actor: Actor, shift_id: int) -> dict[str, Any]:
    """A shift; drafts and deleted shifts are visible to admins only."""
    with engine.connect() as conn:
        row = shift_with_type(conn, shift_id)
        if not _visible(conn, actor, row) or (row.status not in LIVE and not actor.is_admin):
            raise NotFound(f"shift {shift_id} does not exist")
        return shift_json(row)


def list_shifts(
    engine: Engine,
    actor: Actor,
    *,
    roster_id: int | None = None,
    physician_id: int | None = None,
    status: str | None = None,
    start_from: str | None = None,
    start_to: str | None = None,
) -> list[dict[str, Any]]:
    """Shifts in start order; non-admins see published rosters only."""
    query = shifts_with_types().order_by(shifts.c.start, shifts.c.id)
    if status is not None:
        query = query.where(shifts.c.status == status)
    else:
        query = query.where(shifts.c.status.in_(LIVE))
    if roster_id is not None:
        query = query.where(shifts.c.roster_id == roster_id)
    if physician_id is not None:
        query = query.where(shifts.c.physician_id == physician_id)
    if start_from is not None:
        query = query.where(shifts.c.start >= parse_instant(start_from))
    if start_to is not None:
        query = query.where(shifts.c.start < parse_instant(start_to))
    if not actor.is_admin:
        published = select(rosters.c.id).where(rosters.c.status == "published")
        query = query.where(shifts.c.roster_id.in_(published))
    with engine.connect() as conn:
        return [shift_json(r) for r in conn.execute(query)]


def open_shifts_for(
    engine: Engine, context: SchedulingContext, actor: Actor
) -> list[dict[str, Any]]:
    """Open shifts of published rosters, still ahead, that the caller could pick up."""
    me = actor.require_physician()
    published = select(rosters.c.id).where(rosters.c.status == "published")
    query = (
        shifts_with_types()
        .where(
            shifts.c.status == "open",
            shifts.c.roster_id.in_(published),
            shifts.c.start > utcnow(),
        )
        .order_by(shifts.c.start, shifts.c.id)
    )
    with engine.connect() as conn:
        rules = load_rules(conn, context.default_rules)
        return [
            shift_json(r) for r in conn.execute(query).all() if is_eligible(conn, r.id, me, rules)
        ]


def pending_request_ids(conn: Connection, shift_id: int) -> list[int]:
    undecided = ("pending", "accepted")
    query = select(shift_requests.c.id).where(
        shift_requests.c.status.in_(undecided),
        (shift_requests.c.shift_id == shift_id)
        | (shift_requests.c.counterparty_shift_id == shift_id),
    )
    return list(conn.execute(query).scalars())


def require_owner(actor: Actor, row: Row[Any]) -> int:
    me = actor.require_physician()
    if row.physician_id != me:
        raise Forbidden(f"shift {row.id} is not yours")
    return me
