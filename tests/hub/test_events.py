"""Domain events reach the outbox table exactly as SQLAlchemy would have stored them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select

from hub.events import DomainEvent, record_events
from hub.message_store import as_utc
from hub.tables import domain_events


def test_recorded_events_read_back_like_sqlalchemy_rows(engine: Engine) -> None:
    events = [
        DomainEvent("slot-freed", "Slot", "s1", 2, "epic", 7, "free", "busy"),
        DomainEvent("created", "Schedule", "c1", 1, "epic", None),
    ]
    with engine.begin() as conn:
        record_events(conn, events)
        conn.execute(
            insert(domain_events),
            {
                "event": "created",
                "resource_type": "Schedule",
                "resource_id": "c1",
                "version": 1,
                "source_system": "epic",
                "message_id": None,
                "detail": {"status": None, "previous_status": None},
                "created_at": datetime.fromisoformat("2024-05-06T09:00:00+00:00"),
            },
        )
    with engine.connect() as conn:
        rows = conn.execute(select(domain_events).order_by(domain_events.c.id)).all()
    assert [(r.event, r.resource_id, r.version, r.message_id, r.detail) for r in rows] == [
        ("slot-freed", "s1", 2, 7, {"status": "free", "previous_status": "busy"}),
        ("created", "c1", 1, None, {"status": None, "previous_status": None}),
        ("created", "c1", 1, None, {"status": None, "previous_status": None}),
    ]
    assert as_utc(rows[0].created_at).tzinfo is not None
    assert type(rows[0].created_at) is type(rows[2].created_at)
    assert rows[0].created_at.tzinfo == rows[2].created_at.tzinfo


def test_no_events_write_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        record_events(conn, [])
        assert conn.execute(select(domain_events)).all() == []
