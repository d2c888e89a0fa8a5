"""The roster event log: one row per state change, written in the change's own transaction.

The live roster stream and the notification dispatcher read these rows in id order, so what
they announce has happened, and nothing happens unannounced.

Kinds and what ``detail`` carries (always ``summary``, a sentence for people):

- ``create`` / ``edit`` / ``move`` / ``delete``: ``shifts`` (after; for delete, before),
  ``before`` (edit, move: the shifts as they were), ``bulk`` (true inside a bulk request),
  ``published``.
- ``roster_create`` and ``publish``: ``roster`` (id, name, period), publish also
  ``shift_count`` and ``outbound_message_ids``. A roster is created a draft, and a publish
  is the roster becoming published: the kind says which, so they carry no ``published``.
- ``drop``: ``shifts``, ``eligible_physician_ids`` (the pool the open shift is offered to),
  ``published``.
- ``pickup`` / ``swap`` (a request made), ``accept`` / ``decline`` (the counterparty),
  ``approve`` / ``reject`` (an admin), ``withdraw`` (the requester): ``request`` (id, kind,
  status, shift ids, requester, counterparty), ``note``, ``published``; approve also
  ``shifts`` (after).
- ``rules``: ``rules`` (the rule set now in force).

``published`` is whether the event's roster was published when the event was written (in
its transaction). Readers that come later (the notification dispatcher, the live roster
stream) decide on it, not on the roster's status when they read: a draft's shifts created
before a publish stay a draft's, however late they are read. Events written before the
field existed lack it; readers then fall back to the roster's status at read time.

``physician_ids`` lists every physician the change concerns (owner before and after,
requester, counterparty); ``actor`` is the user name (or ``service``) who made it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, insert, select

from scheduling.tables import roster_events
from scheduling.times import as_utc, utcnow

KINDS = frozenset(
    {
        "create",
        "edit",
        "move",
        "delete",
        "roster_create",
        "publish",
        "drop",
        "pickup",
        "swap",
        "accept",
        "decline",
        "approve",
        "reject",
        "withdraw",
        "rules",
    }
)


def write_event(
    conn: Connection,
    kind: str,
    *,
    actor: str,
    roster_id: int | None = None,
    shift_ids: Iterable[int] = (),
    request_id: int | None = None,
    physician_ids: Iterable[int | None] = (),
    detail: dict[str, Any] | None = None,
) -> int:
    """Append one event inside the caller's transaction; returns its id."""
    if kind not in KINDS:
        raise ValueError(f"unknown roster event kind {kind!r}")
    result = conn.execute(
        insert(roster_events).values(
            kind=kind,
            roster_id=roster_id,
            shift_ids=sorted(set(shift_ids)),
            request_id=request_id,
            physician_ids=sorted({p for p in physician_ids if p is not None}),
            actor=actor,
            detail=detail or {},
            created_at=utcnow(),
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def events_after(conn: Connection, after_id: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """Events with an id above ``after_id``, oldest first (what a reader resumes from)."""
    rows = conn.execute(
        select(roster_events)
        .where(roster_events.c.id > after_id)
        .order_by(roster_events.c.id)
        .limit(limit)
    )
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "roster_id": r.roster_id,
            "shift_ids": r.shift_ids,
            "request_id": r.request_id,
            "physician_ids": r.physician_ids,
            "actor": r.actor,
            "detail": r.detail,
            "created_at": as_utc(r.created_at).isoformat(),
        }
        for r in rows
    ]
