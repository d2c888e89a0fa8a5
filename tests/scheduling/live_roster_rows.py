"""Rows for live-roster tests, written straight into the scheduling tables, and an SSE reader.

The live roster reads the tables, not the shift workflow's code, so its tests write what
that workflow would: a change and its ``roster_event`` in one transaction.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, insert, select, update

from scheduling.tables import physicians, roster_events, rosters, shift_types, shifts


def now() -> datetime:
    return datetime.now(UTC)


def add_physician(engine: Engine, name: str) -> int:
    with engine.begin() as conn:
        values = {
            "name": name,
            "specialties": [],
            "locations": [],
            "services": [],
            "fte": 1.0,
            "blackout_dates": [],
            "active": 1,
            "version": 1,
            "created_at": now(),
            "updated_at": now(),
        }
        return int(conn.execute(insert(physicians).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def add_shift_type(
    engine: Engine, code: str, service: str, location: str, kind: str = "call", tz: str = "UTC"
) -> int:
    with engine.begin() as conn:
        values = {
            "code": code,
            "name": code,
            "kind": kind,
            "start_time": "07:00",
            "duration_minutes": 720,
            "service": service,
            "location": location,
            "timezone": tz,
            "required_specialties": [],
            "version": 1,
        }
        return int(conn.execute(insert(shift_types).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def add_roster(engine: Engine, name: str, status: str = "published") -> int:
    with engine.begin() as conn:
        values = {
            "name": name,
            "period_start": date(2026, 1, 1),
            "period_end": date(2026, 12, 31),
            "status": status,
            "published_at": now() if status == "published" else None,
            "version": 1,
            "created_at": now(),
            "updated_at": now(),
        }
        return int(conn.execute(insert(rosters).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def add_shift(
    engine: Engine,
    roster_id: int,
    type_id: int,
    physician_id: int | None,
    start: datetime,
    end: datetime,
) -> int:
    with engine.begin() as conn:
        kind = conn.execute(select(shift_types).where(shift_types.c.id == type_id)).one()
        values = {
            "roster_id": roster_id,
            "shift_type_id": type_id,
            "physician_id": physician_id,
            "start": start,
            "end": end,
            "service": kind.service,
            "location": kind.location,
            "status": "assigned" if physician_id is not None else "open",
            "version": 1,
            "created_at": now(),
            "updated_at": now(),
        }
        return int(conn.execute(insert(shifts).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def write_event(
    conn: Connection,
    kind: str,
    roster_id: int | None,
    shift_ids: list[int],
    physician_ids: list[int],
    actor: str = "admin",
) -> int:
    values = {
        "kind": kind,
        "roster_id": roster_id,
        "shift_ids": shift_ids,
        "request_id": None,
        "physician_ids": physician_ids,
        "actor": actor,
        "detail": {},
        "created_at": now(),
    }
    return int(conn.execute(insert(roster_events).values(**values)).inserted_primary_key[0])  # type: ignore[index]


def swap(engine: Engine, first: int, second: int, actor: str = "admin") -> int:
    """Exchange two shifts' physicians and log it, in one transaction, as a swap approval
    would; returns the event id."""
    with engine.begin() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                select(shifts.c.id, shifts.c.physician_id, shifts.c.roster_id).where(
                    shifts.c.id.in_([first, second])
                )
            )
        }
        a, b = rows[first], rows[second]
        conn.execute(update(shifts).where(shifts.c.id == first).values(physician_id=b.physician_id))
        conn.execute(
            update(shifts).where(shifts.c.id == second).values(physician_id=a.physician_id)
        )
        return write_event(
            conn, "swap", a.roster_id, [first, second], [a.physician_id, b.physician_id], actor
        )


@dataclass
class SseMessage:
    event: str
    id: str | None
    data: Any


@dataclass
class SseReader:
    """Reads a live SSE response on a thread; ``next()`` waits for the next message."""

    response: httpx.Response
    messages: queue.Queue[SseMessage] = field(default_factory=queue.Queue)
    comments: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, event_id, data = "message", None, []
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    self.messages.put(SseMessage(event, event_id, json.loads("\n".join(data))))
                    event, event_id, data = "message", None, []
        except (httpx.HTTPError, RuntimeError):
            pass  # the test closed the stream

    def next(self, timeout: float = 5.0, kind: str | None = None) -> SseMessage:
        """The next message (of ``kind``, skipping others); queue.Empty after ``timeout``."""
        while True:
            message = self.messages.get(timeout=timeout)
            if kind is None or message.event == kind:
                return message
