"""Who hears what: one roster event in, the users to tell (and what to tell them) out.

The issue's rules: a dropped shift goes to the physicians eligible for it; a pickup request
to the admins; an approval or rejection to the requester; a swap request to the counterparty
and the admins; an approved swap to both physicians and the call center. Where it is silent
we tell the people a physician or an admin would expect (accept/decline to the requester,
a withdrawal to whoever was asked, a published roster or a changed published shift to the
physicians it concerns). Nobody is told about their own action.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, or_, select

from hub.message_store import as_utc
from hub.users import users
from scheduling.tables import physicians, rosters, shift_requests, shift_types, shifts

log = logging.getLogger(__name__)

Eligibility = Callable[[Connection, int], list[int]]
"""``eligible_physicians(conn, shift_id)``: physician ids that may take an open shift."""


@dataclass(frozen=True, slots=True)
class RosterEvent:
    """One ``roster_event`` row, as the dispatcher reads it."""

    id: int
    kind: str
    roster_id: int | None
    shift_ids: list[int]
    request_id: int | None
    physician_ids: list[int]
    actor: str
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: Any) -> RosterEvent:
        return cls(
            id=int(row.id),
            kind=str(row.kind),
            roster_id=row.roster_id,
            shift_ids=[int(i) for i in row.shift_ids or ()],
            request_id=row.request_id,
            physician_ids=[int(i) for i in row.physician_ids or ()],
            actor=str(row.actor),
            detail=dict(row.detail or {}),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """What one user is told about one event."""

    user_id: int
    kind: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)


def resolve_eligibility() -> Eligibility:
    """The scheduling module's eligibility rule, or, until it exists, every active physician.

    Telling too many physicians about an open shift is the safer mistake: the shift still
    needs an approval before anyone gets it, while telling nobody leaves it uncovered.
    """
    try:
        from scheduling.eligibility import eligible_physicians
    except ImportError:
        log.warning("scheduling.eligibility is missing; open shifts go to every physician")
        return _every_active_physician
    rule: Eligibility = eligible_physicians
    return rule


def _every_active_physician(conn: Connection, shift_id: int) -> list[int]:
    rows = conn.execute(select(physicians.c.id).where(physicians.c.active == 1))
    return [int(r.id) for r in rows]


@dataclass(frozen=True, slots=True)
class _Request:
    kind: str | None
    requester_id: int | None
    counterparty_id: int | None


def route(conn: Connection, event: RosterEvent, eligible: Eligibility) -> list[Message]:
    """The messages ``event`` produces; empty for changes nobody needs to hear about."""
    shift_text = describe_shifts(conn, event.shift_ids)
    request = _request(conn, event)
    who = _names(conn, [event.physician_ids, [request.requester_id, request.counterparty_id]])
    requester = who.get(request.requester_id or -1, "A physician")
    counterparty = who.get(request.counterparty_id or -1, "another physician")
    plan: list[tuple[Iterable[int], str, str, str]] = []

    def tell(user_ids: Iterable[int], kind: str, title: str, body: str) -> None:
        plan.append((user_ids, kind, title, body))

    kind = event.kind
    if kind == "drop":
        concerned = set(event.physician_ids)
        open_to = set(_offered_to(conn, event, eligible)) - concerned
        tell(_physician_users(conn, open_to), "shift_open", "Open shift", shift_text)
    elif kind == "pickup":
        tell(
            _role_users(conn, "admin"),
            "pickup_requested",
            "Pickup request",
            f"{requester} asks to pick up {shift_text}. It needs your approval.",
        )
    elif kind == "swap":
        tell(
            _physician_users(conn, [request.counterparty_id]),
            "swap_offered",
            "Swap request",
            f"{requester} asks to swap {shift_text} with you.",
        )
        tell(
            _role_users(conn, "admin"),
            "swap_requested",
            "Swap request",
            f"{requester} asks to swap {shift_text} with {counterparty}.",
        )
    elif kind in ("accept", "decline"):
        verb = "accepted" if kind == "accept" else "declined"
        tell(
            _physician_users(conn, [request.requester_id]),
            f"swap_{verb}",
            f"Swap {verb}",
            f"{counterparty} {verb} your swap of {shift_text}.",
        )
        if kind == "accept":
            tell(
                _role_users(conn, "admin"),
                "swap_awaiting_approval",
                "Swap awaiting approval",
                f"{counterparty} accepted {requester}'s swap of {shift_text}.",
            )
    elif kind == "approve" and request.kind == "swap":
        both = [request.requester_id, request.counterparty_id]
        tell(
            _physician_users(conn, both),
            "swap_approved",
            "Swap approved",
            f"The swap of {shift_text} between {requester} and {counterparty} is approved.",
        )
        tell(
            _role_users(conn, "call_center"),
            "swap_approved",
            "On-call change",
            f"{requester} and {counterparty} swapped {shift_text}.",
        )
    elif kind in ("approve", "reject"):
        verb = "approved" if kind == "approve" else "rejected"
        told = [request.requester_id]
        if kind == "reject" and request.kind == "swap":
            told.append(request.counterparty_id)
        what = f"{request.kind or 'shift'} request"
        tell(
            _physician_users(conn, told),
            f"request_{verb}",
            f"Request {verb}",
            f"Your {what} for {shift_text} was {verb}.",
        )
    elif kind == "withdraw":
        tell(
            _physician_users(conn, [request.counterparty_id]),
            "request_withdrawn",
            "Request withdrawn",
            f"{requester} withdrew the swap of {shift_text}.",
        )
        tell(
            _role_users(conn, "admin"),
            "request_withdrawn",
            "Request withdrawn",
            f"{requester} withdrew the {request.kind or 'shift'} request for {shift_text}.",
        )
    elif kind == "publish":
        tell(
            _physician_users(conn, event.physician_ids),
            "roster_published",
            "Roster published",
            f"{_roster_name(conn, event.roster_id)} is published.",
        )
    elif kind in ("create", "edit", "move", "delete") and _was_published(conn, event):
        tell(
            _physician_users(conn, event.physician_ids),
            "shift_changed",
            "Shift changed",
            f"A published shift of yours changed ({kind}): {shift_text}.",
        )
    return _messages(conn, event, plan)


def _messages(
    conn: Connection, event: RosterEvent, plan: list[tuple[Iterable[int], str, str, str]]
) -> list[Message]:
    actors = _actor_user_ids(conn, event.actor)
    data = {
        "event_id": event.id,
        "event_kind": event.kind,
        "roster_id": event.roster_id,
        "shift_ids": event.shift_ids,
        "request_id": event.request_id,
    }
    out: list[Message] = []
    seen: set[tuple[int, str]] = set()
    for user_ids, kind, title, body in plan:
        for user_id in sorted(set(user_ids)):
            if user_id in actors or (user_id, kind) in seen:
                continue
            seen.add((user_id, kind))
            out.append(Message(user_id, kind, title, body, dict(data)))
    return out


def _offered_to(conn: Connection, event: RosterEvent, eligible: Eligibility) -> list[int]:
    """The pool scheduling offered the open shift to when it was dropped (the event says);
    for an event without it, the eligibility rule asked now."""
    pool = event.detail.get("eligible_physician_ids")
    if isinstance(pool, list):
        return [int(p) for p in pool]
    return [p for shift_id in event.shift_ids for p in eligible(conn, shift_id)]


def _request(conn: Connection, event: RosterEvent) -> _Request:
    """The request an event is about: the snapshot in its detail, else the request row."""
    snapshot = event.detail.get("request")
    if isinstance(snapshot, dict):
        return _Request(
            snapshot.get("kind"), snapshot.get("requester_id"), snapshot.get("counterparty_id")
        )
    if event.request_id is not None:
        row = conn.execute(
            select(
                shift_requests.c.kind,
                shift_requests.c.requester_id,
                shift_requests.c.counterparty_id,
            ).where(shift_requests.c.id == event.request_id)
        ).first()
        if row is not None:
            return _Request(row.kind, row.requester_id, row.counterparty_id)
    return _Request(None, None, None)


def _physician_users(conn: Connection, physician_ids: Iterable[int | None]) -> list[int]:
    """Active users linked to these physicians (from either side of the link)."""
    ids = sorted({int(p) for p in physician_ids if p is not None})
    if not ids:
        return []
    linked = select(physicians.c.user_id).where(
        physicians.c.id.in_(ids), physicians.c.user_id.is_not(None)
    )
    rows = conn.execute(
        select(users.c.id).where(
            users.c.active == 1,
            or_(users.c.physician_id.in_(ids), users.c.id.in_(linked.scalar_subquery())),
        )
    )
    return [int(r.id) for r in rows]


def _role_users(conn: Connection, role: str) -> list[int]:
    """Active users holding ``role`` (roles are a JSON list: filtered here, portably)."""
    rows = conn.execute(select(users.c.id, users.c.roles).where(users.c.active == 1))
    return [int(r.id) for r in rows if role in (r.roles or ())]


def _actor_user_ids(conn: Connection, actor: str) -> set[int]:
    rows = conn.execute(select(users.c.id).where(users.c.username == actor))
    return {int(r.id) for r in rows}


def _names(conn: Connection, groups: Iterable[Iterable[int | None]]) -> dict[int, str]:
    ids = {int(p) for group in groups for p in group if p is not None}
    if not ids:
        return {}
    rows = conn.execute(select(physicians.c.id, physicians.c.name).where(physicians.c.id.in_(ids)))
    return {int(r.id): str(r.name) for r in rows}


def _was_published(conn: Connection, event: RosterEvent) -> bool:
    """Whether the event's roster was published when the event was written: the event
    records it (``detail["published"]``), since the roster may have been published between
    the write and this read (a draft's shifts are nobody's news). Events from before the
    field existed: the roster's status now."""
    recorded = event.detail.get("published")
    if isinstance(recorded, bool):
        return recorded
    if event.roster_id is None:
        return False
    status = conn.execute(select(rosters.c.status).where(rosters.c.id == event.roster_id)).scalar()
    return status == "published"


def _roster_name(conn: Connection, roster_id: int | None) -> str:
    if roster_id is None:
        return "The roster"
    row = conn.execute(
        select(rosters.c.name, rosters.c.period_start, rosters.c.period_end).where(
            rosters.c.id == roster_id
        )
    ).first()
    if row is None:
        return "The roster"
    return f"Roster {row.name} ({row.period_start:%d %b} to {row.period_end:%d %b %Y})"


def describe_shifts(conn: Connection, shift_ids: list[int]) -> str:
    """``Tue 4 Mar 08:00-16:00 (cardiology, main)`` in the shift's own timezone."""
    if not shift_ids:
        return "a shift"
    rows = conn.execute(
        select(
            shifts.c.id,
            shifts.c.start,
            shifts.c.end,
            shifts.c.service,
            shifts.c.location,
            shift_types.c.timezone,
        )
        .join(shift_types, shift_types.c.id == shifts.c.shift_type_id)
        .where(shifts.c.id.in_(shift_ids))
        .order_by(shifts.c.start)
    ).all()
    if not rows:
        return "a shift" if len(shift_ids) == 1 else f"{len(shift_ids)} shifts"
    return " and ".join(_one_shift(r) for r in rows)


def _one_shift(row: Any) -> str:
    try:
        zone = ZoneInfo(row.timezone)
    except (ValueError, KeyError, OSError):
        zone = ZoneInfo("UTC")
    start: datetime = as_utc(row.start).astimezone(zone)
    end: datetime = as_utc(row.end).astimezone(zone)
    return (
        f"{start:%a} {start.day} {start:%b} {start:%H:%M}-{end:%H:%M} "
        f"({row.service}, {row.location})"
    )
