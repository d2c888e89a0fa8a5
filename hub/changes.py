"""Canonical changes made inside Harmony (API, scheduling) rather than by an inbound message.

The change, its domain events and the outbound messages it causes commit together, so a
change is never sent without being stored, nor stored without being sent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from canonical.records import Provenance
from canonical.repository import CanonicalRepository, UpsertResult
from hub.events import events_from_results, record_events
from hub.message_store import utcnow
from hub.outbound import route_changes
from hub.settings import Settings


def save_change(
    engine: Engine,
    settings: Settings,
    resource_type: str,
    resource: dict[str, Any],
    *,
    source_system: str,
    expected_version: int | None = None,
) -> tuple[UpsertResult, list[int]]:
    """Store the change; returns it and the ids of the outbound messages to publish."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        provenance = Provenance(
            source_system=source_system, message_id=None, mapping_version=None, received_at=utcnow()
        )
        result = CanonicalRepository(session).save(
            resource_type, resource, provenance, expected_version
        )
        events = events_from_results([result], "", source_system, None)
        record_events(session.connection(), events)
        outbound = route_changes(session, settings, events)
    return result, outbound
