"""Physician requests: drop, pickup, swap; the counterparty's answer; the admin's decision.

Lifecycle: a pickup is ``pending`` until an admin approves or rejects it; a swap is
``pending`` until the counterparty accepts (``accepted``) or declines, and takes effect only
when an admin then approves it. The requester may withdraw while undecided. A drop needs no
approval: the shift becomes open at once and is offered to the eligible pool.

Approval takes its locks physicians, shifts, then the request, and every update is
conditional (the shift still open / still with the same physician, the request still at the
version the admin saw), so of two racing approvals exactly one wins.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, insert, select, update
from sqlalchemy.orm import Session

from scheduling.conflicts import check, planned_from_row
from scheduling.context import SchedulingContext
from scheduling.eligibility import eligible_physicians
from scheduling.errors import Forbidden, RuleConflict, StaleVersion, StateConflict
from scheduling.outcome import Outcome
from scheduling.publish import announce
from scheduling.records import (
    Actor,
    lock_physicians,
    request_json,
    request_row,
    roster_of,
    shift_json,
    shift_with_type,
    shifts_with_types,
)
from scheduling.roster_events import write_event
from scheduling.rules import RosterRules, load_rules
from scheduling.tables import physicians, rosters, shift_requests, shifts
from scheduling.times import as_utc, span_text, utcnow

UNDECIDED = ("pending", "accepted")


def _name(conn: Connection, physician_id: int | None) -> str:
    if physician_id is None:
        return "nobody"
    found = conn.execute(select(physicians.c.name).where(physicians.c.id == physician_id))
    return found.scalar() or f"physician {physician_id}"


def _published_shift(conn: Connection, shift_id: int) -> Row[Any]:
    row = shift_with_type(conn, shift_id)
    if row.status not in ("assigned", "open") or roster_of(conn, row.roster_id).status != (
        "published"
    ):
        raise StateConflict(f"shift {shift_id} is not part of a published roster")
    return row


def _lead_time(conn: Connection, rules: RosterRules, row: Row[Any], action: str) -> None:
    """Drops and swaps need ``swap_lead_days`` of notice (StateConflict, rule lead_time)."""
    notice = as_utc(row.start) - utcnow()
    if notice < timedelta(days=rules.swap_lead_days):
        days = max(notice.total_seconds(), 0) / 86400
        raise StateConflict(
            f"Refused (lead_time): {_name(conn, row.physician_id)}'s shift "
            f"{span_text(row.start, row.end, row.type_timezone)} ({row.type_name}) starts in "
            f"{days:.1f} days; a {action} needs at least {rules.swap_lead_days} days' notice",
            rule="lead_time",
        )


def _owned(actor: Actor, row: Row[Any]) -> int:
    me = actor.require_physician()
    if row.physician_id != me or row.status != "assigned":
        raise Forbidden(f"shift {row.id} is not yours")
    return me


def _request_event(
    conn: Connection, kind: str, actor: Actor, request: Row[Any], summary: str, **extra: Any
) -> None:
    shift_ids = [request.shift_id]
    if request.counterparty_shift_id is not None:
        shift_ids.append(request.counterparty_shift_id)
    roster = conn.execute(
        select(rosters.c.id, rosters.c.status)
        .join(shifts, shifts.c.roster_id == rosters.c.id)
        .where(shifts.c.id == request.shift_id)
    ).first()
    write_event(
        conn,
        kind,
        actor=actor.name,
        roster_id=roster.id if roster is not None else None,
        shift_ids=shift_ids,
        request_id=request.id,
        physician_ids=[request.requester_id, request.counterparty_id, *extra.pop("also", [])],
        detail={
            "summary": summary,
            "request": request_json(request),
            "published": roster is not None and roster.status == "published",
            **extra,
        },
    )


def _new_request(conn: Connection, **values: Any) -> Row[Any]:
    now = utcnow()
    new_id = conn.execute(
        insert(shift_requests).values(
            **values, status="pending", version=1, created_at=now, updated_at=now
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return request_row(conn, int(new_id))


def _transition(
    conn: Connection,
    request: Row[Any],
    expected_version: int | None,
    allowed: tuple[str, ...],
    **values: Any,
) -> Row[Any]:
    """Move the request on if it is still in ``allowed`` at the version the caller saw."""
    seen = request.version if expected_version is None else expected_version
    done = conn.execute(
        update(shift_requests)
        .where(
            shift_requests.c.id == request.id,
            shift_requests.c.version == seen,
            shift_requests.c.status.in_(allowed),
        )
        .values(version=shift_requests.c.version + 1, updated_at=utcnow(), **values)
    )
    if done.rowcount != 1:
        now = request_row(conn, request.id)
        if now.status not in allowed:
            raise StateConflict(f"request {request.id} is already {now.status}")
        raise StaleVersion(f"request {request.id} changed since version {seen}; read it again")
    return request_row(conn, request.id)


# ------------------------------------------------------------------ physicians


def drop_shift(
    engine: Engine,
    context: SchedulingContext,
    actor: Actor,
    shift_id: int,
    expected_version: int | None = None,
) -> Outcome:
    """Give up one's own published shift: it becomes open and is offered to the pool."""
    with Session(engine) as session, session.begin():
        conn = session.connection()
        row = _published_shift(conn, shift_id)
        me = _owned(actor, row)
        rules = load_rules(conn, context.default_rules)
        _lead_time(conn, rules, row, "drop")
        if expected_version is not None and row.version != expected_version:
            raise StaleVersion(f"shift {shift_id} is at version {row.version}")
        busy = conn.execute(
            select(shift_requests.c.id).where(
                shift_requests.c.status.in_(UNDECIDED),
                (shift_requests.c.shift_id == shift_id)
                | (shift_requests.c.counterparty_shift_id == shift_id),
                shift_requests.c.kind == "swap",
            )
        ).first()
        if busy is not None:
            raise StateConflict(f"shift {shift_id} is in swap request {busy.id}; settle it first")
        done = conn.execute(
            update(shifts)
            .where(
                shifts.c.id == shift_id,
                shifts.c.version == row.version,
                shifts.c.physician_id == me,
            )
            .values(
                physician_id=None,
                status="open",
                version=shifts.c.version + 1,
                updated_at=utcnow(),
            )
        )
        if done.rowcount != 1:
            raise StaleVersion(f"shift {shift_id} changed meanwhile; read it again")
        outbound = announce(session, context, [("S14", shift_id)], "dropped")
        pool = [p for p in eligible_physicians(conn, shift_id, rules) if p != me]
        after = shift_json(shift_with_type(conn, shift_id))
        write_event(
            conn,
            "drop",
            actor=actor.name,
            roster_id=row.roster_id,
            shift_ids=[shift_id],
            physician_ids=[me],
            detail={
                "summary": f"{_name(conn, me)} dropped {row.type_name} "
                f"{span_text(row.start, row.end, row.type_timezone)}; it is open",
                "shifts": [after],
                "eligible_physician_ids": pool,
                "published": True,  # _published_shift saw to it
            },
        )
    return Outcome(after, outbound)


def request_pickup(
    engine: Engine, context: SchedulingContext, actor: Actor, shift_id: int, note: str | None = None
) -> Outcome:
    """Ask for an open shift; refused at once if the checker would refuse the approval."""
    me = actor.require_physician()
    with engine.begin() as conn:
        row = _published_shift(conn, shift_id)
        if row.status != "open":
            raise StateConflict(f"shift {shift_id} is not open")
        again = conn.execute(
            select(shift_requests.c.id).where(
                shift_requests.c.shift_id == shift_id,
                shift_requests.c.requester_id == me,
                shift_requests.c.status == "pending",
            )
        ).first()
        if again is not None:
            raise StateConflict(f"you already asked for shift {shift_id} (request {again.id})")
        conflicts = check(
            conn, load_rules(conn, context.default_rules), [planned_from_row(row, physician_id=me)]
        )
        if conflicts:
            raise RuleConflict(conflicts)
        request = _new_request(conn, kind="pickup", shift_id=shift_id, requester_id=me, note=note)
        _request_event(
            conn,
            "pickup",
            actor,
            request,
            f"{_name(conn, me)} asked to pick up {row.type_name} "
            f"{span_text(row.start, row.end, row.type_timezone)}",
            note=note,
        )
        return Outcome(request_json(request))


def _swap_plan(row: Row[Any], other: Row[Any]) -> list[Any]:
    return [
        planned_from_row(row, physician_id=other.physician_id),
        planned_from_row(other, physician_id=row.physician_id),
    ]


def propose_swap(
    engine: Engine,
    context: SchedulingContext,
    actor: Actor,
    shift_id: int,
    counterparty_shift_id: int,
    note: str | None = None,
) -> Outcome:
    """Offer one's own shift for another physician's; they answer, then an admin decides."""
    with engine.begin() as conn:
        mine = _published_shift(conn, shift_id)
        me = _owned(actor, mine)
        theirs = _published_shift(conn, counterparty_shift_id)
        if theirs.status != "assigned" or theirs.physician_id in (None, me):
            raise StateConflict(f"shift {counterparty_shift_id} is not another physician's")
        rules = load_rules(conn, context.default_rules)
        _lead_time(conn, rules, mine, "swap")
        _lead_time(conn, rules, theirs, "swap")
        conflicts = check(conn, rules, _swap_plan(mine, theirs))
        if conflicts:
            raise RuleConflict(conflicts)
        request = _new_request(
            conn,
            kind="swap",
            shift_id=shift_id,
            requester_id=me,
            counterparty_id=theirs.physician_id,
            counterparty_shift_id=counterparty_shift_id,
            note=note,
        )
        _request_event(
            conn,
            "swap",
            actor,
            request,
            f"{_name(conn, me)} offers {mine.type_name} "
            f"{span_text(mine.start, mine.end, mine.type_timezone)} to "
            f"{_name(conn, theirs.physician_id)} for {theirs.type_name} "
            f"{span_text(theirs.start, theirs.end, theirs.type_timezone)}",
            note=note,
        )
        return Outcome(request_json(request))


def answer_swap(
    engine: Engine,
    context: SchedulingContext,
    actor: Actor,
    request_id: int,
    accept: bool,
    expected_version: int | None,
) -> Outcome:
    """The counterparty accepts (checked again by the conflict checker) or declines."""
    me = actor.require_physician()
    with engine.begin() as conn:
        request = request_row(conn, request_id)
        if request.kind != "swap" or request.counterparty_id != me:
            raise Forbidden(f"request {request_id} is not a swap offered to you")
        if accept:
            mine = shift_with_type(conn, request.shift_id)
            theirs = shift_with_type(conn, request.counterparty_shift_id)
            conflicts = check(
                conn, load_rules(conn, context.default_rules), _swap_plan(mine, theirs)
            )
            if conflicts:
                raise RuleConflict(conflicts)
        status = "accepted" if accept else "declined"
        request = _transition(conn, request, expected_version, ("pending",), status=status)
        _request_event(
            conn,
            "accept" if accept else "decline",
            actor,
            request,
            f"{_name(conn, me)} {status} swap request {request_id}",
        )
        return Outcome(request_json(request))


def withdraw_request(
    engine: Engine, actor: Actor, request_id: int, expected_version: int | None
) -> Outcome:
    me = actor.require_physician()
    with engine.begin() as conn:
        request = request_row(conn, request_id)
        if request.requester_id != me:
            raise Forbidden(f"request {request_id} is not yours")
        request = _transition(conn, request, expected_version, UNDECIDED, status="withdrawn")
        _request_event(
            conn, "withdraw", actor, request, f"{_name(conn, me)} withdrew request {request_id}"
        )
        return Outcome(request_json(request))


# ------------------------------------------------------------------ admins


def decide_request(
    engine: Engine,
    context: SchedulingContext,
    actor: Actor,
    request_id: int,
    approve: bool,
    expected_version: int,
    note: str | None = None,
) -> Outcome:
    """Approve (the shifts change hands, checked once more) or reject a request."""
    actor.require_admin()
    with Session(engine) as session, session.begin():
        conn = session.connection()
        request = request_row(conn, request_id)
        if request.version != expected_version and request.status in UNDECIDED:
            raise StaleVersion(f"request {request_id} is at version {request.version}")
        if not approve:
            request = _transition(
                conn, request, expected_version, UNDECIDED, status="rejected", decided_by=actor.name
            )
            _request_event(
                conn,
                "reject",
                actor,
                request,
                f"{actor.name} rejected request {request_id}",
                note=note,
            )
            return Outcome(request_json(request))
        if request.kind == "pickup":
            changed = _approve_pickup(conn, request)
        else:
            changed = _approve_swap(conn, context, request)
        rows = conn.execute(shifts_with_types().where(shifts.c.id.in_(changed))).all()
        conflicts = check(
            conn, load_rules(conn, context.default_rules), [planned_from_row(r) for r in rows]
        )
        if conflicts:
            raise RuleConflict(conflicts)
        request = _transition(
            conn,
            request,
            expected_version,
            ("pending",) if request.kind == "pickup" else ("accepted",),
            status="approved",
            decided_by=actor.name,
        )
        outbound = []
        if roster_of(conn, rows[0].roster_id).status == "published":
            outbound = announce(session, context, [("S14", sid) for sid in changed], request.kind)
        after = [shift_json(shift_with_type(conn, sid)) for sid in changed]
        _request_event(
            conn,
            "approve",
            actor,
            request,
            f"{actor.name} approved {request.kind} request {request_id}",
            note=note,
            shifts=after,
            outbound_message_ids=outbound,
        )
        close_requests_for(conn, actor, changed, f"request {request_id} was approved")
        return Outcome(request_json(request), outbound)


def _approve_pickup(conn: Connection, request: Row[Any]) -> list[int]:
    if request.status != "pending":
        raise StateConflict(f"request {request.id} is already {request.status}")
    lock_physicians(conn, {request.requester_id})
    taken = conn.execute(
        update(shifts)
        .where(shifts.c.id == request.shift_id, shifts.c.status == "open")
        .values(
            physician_id=request.requester_id,
            status="assigned",
            version=shifts.c.version + 1,
            updated_at=utcnow(),
        )
    )
    if taken.rowcount != 1:
        raise StateConflict(f"shift {request.shift_id} is no longer open")
    return [request.shift_id]


def _approve_swap(conn: Connection, context: SchedulingContext, request: Row[Any]) -> list[int]:
    if request.status == "pending":
        raise StateConflict(
            f"swap request {request.id} waits for {_name(conn, request.counterparty_id)} "
            "to accept it"
        )
    if request.status != "accepted":
        raise StateConflict(f"request {request.id} is already {request.status}")
    lock_physicians(conn, {request.requester_id, request.counterparty_id})
    rules = load_rules(conn, context.default_rules)
    owners = {
        request.shift_id: (request.requester_id, request.counterparty_id),
        request.counterparty_shift_id: (request.counterparty_id, request.requester_id),
    }
    for shift_id in sorted(owners):
        _lead_time(conn, rules, shift_with_type(conn, shift_id), "swap")
        was, becomes = owners[shift_id]
        moved = conn.execute(
            update(shifts)
            .where(
                shifts.c.id == shift_id,
                shifts.c.physician_id == was,
                shifts.c.status == "assigned",
            )
            .values(physician_id=becomes, version=shifts.c.version + 1, updated_at=utcnow())
        )
        if moved.rowcount != 1:
            raise StateConflict(
                f"shift {shift_id} is no longer {_name(conn, was)}'s; the swap cannot happen"
            )
    return sorted(owners)


def close_requests_for(conn: Connection, actor: Actor, shift_ids: list[int], why: str) -> None:
    """Reject undecided requests naming these shifts (after they changed hands or went)."""
    found = conn.execute(
        select(shift_requests).where(
            shift_requests.c.status.in_(UNDECIDED),
            shift_requests.c.shift_id.in_(shift_ids)
            | shift_requests.c.counterparty_shift_id.in_(shift_ids),
        )
    ).all()
    for request in found:
        closed = _transition(
            conn, request, None, UNDECIDED, status="rejected", decided_by=actor.name, note=why
        )
        _request_event(conn, "reject", actor, closed, f"request {request.id} closed: {why}")


def list_requests(engine: Engine, actor: Actor, status: str | None = None) -> list[dict[str, Any]]:
    """Admins see every request; a physician those they made or were offered."""
    query = select(shift_requests).order_by(shift_requests.c.id)
    if status is not None:
        query = query.where(shift_requests.c.status == status)
    if not actor.is_admin:
        me = actor.require_physician()
        query = query.where(
            (shift_requests.c.requester_id == me) | (shift_requests.c.counterparty_id == me)
        )
    with engine.connect() as conn:
        return [request_json(r) for r in conn.execute(query)]


def get_request(engine: Engine, actor: Actor, request_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        request = request_row(conn, request_id)
    if not actor.is_admin and actor.physician_id not in (
        request.requester_id,
        request.counterparty_id,
    ):
        raise Forbidden(f"request {request_id} is not yours")
    return request_json(request)
