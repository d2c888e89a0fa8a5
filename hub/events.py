"""Domain events: what changed in the canonical store, kept in an outbox table and fanned out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from canonical.bulk import columns_of, insert_rows, json_serializer
from hub.message_store import utcnow
from hub.tables import domain_events


@dataclass(frozen=True, slots=True)
class DomainEvent:
    event: str
    resource_type: str
    resource_id: str
    version: int
    source_system: str
    message_id: int | None
    status: str | None = None
    previous_status: str | None = None


def events_from_results(
    results: Iterable[Any], appointment_event: str, source_system: str, message_id: int | None
) -> list[DomainEvent]:
    """One event per record that really changed; a freed slot is worth its own name."""
    out: list[DomainEvent] = []
    for r in results:
        if not r.changed or r.stale:
            continue
        if r.resource_type == "Appointment":
            name = appointment_event or ("created" if r.created else "updated")
        elif r.resource_type == "Slot" and r.status == "free" and r.previous_status != "free":
            name = "slot-freed"
        else:
            name = "created" if r.created else "updated"
        out.append(
            DomainEvent(
                event=name,
                resource_type=r.resource_type,
                resource_id=r.id,
                version=r.version,
                source_system=source_system,
                message_id=message_id,
                status=r.status,
                previous_status=r.previous_status,
            )
        )
    return out


def record_events(conn: Connection, events: Sequence[DomainEvent]) -> None:
    """All of a message's events in one driver-level insert (a sync page has hundreds)."""
    if not events:
        return
    now = utcnow()
    dumps = json_serializer(conn.dialect)
    rows = [
        {
            "event": e.event,
            "resource_type": e.resource_type,
            "resource_id": e.resource_id,
            "version": e.version,
            "source_system": e.source_system,
            "message_id": e.message_id,
            "detail": dumps({"status": e.status, "previous_status": e.previous_status}),
            "created_at": now,
        }
        for e in events
    ]
    insert_rows(conn, domain_events, columns_of(domain_events), rows)
