"""Turns ``roster_event`` rows into notifications, in id order, from a stored high-water mark.

Each pass locks the cursor row, reads the events after it, writes their notifications and
deliveries and moves the cursor, all in one transaction: a crash before the commit leaves
the cursor where it was and the pass is simply done again; the unique (event, user, kind)
key makes a repeat (or a second dispatcher in another process) write nothing twice.

Ids on PostgreSQL come from a sequence, so a transaction may commit event 11 while event 10
is still being written. A hole in the ids is therefore waited for (``gap_grace`` seconds)
before it is taken to be a rolled-back insert and passed over. SQLite has one writer at a
time and hands out ids in commit order, so a hole there is never filled later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, update

from hub.db import write_turn
from hub.message_store import utcnow
from hub.notifications.outbox import Channels, insert_ignoring_duplicates, store
from hub.notifications.routing import Eligibility, RosterEvent, resolve_eligibility, route
from hub.notifications.tables import cursors
from scheduling.tables import roster_events

log = logging.getLogger(__name__)

CURSOR = "roster_event"


@dataclass(frozen=True, slots=True)
class DispatchStatus:
    """Where the dispatcher is, for operators: a growing lag means it is stuck or slow."""

    last_event_id: int
    latest_event_id: int
    last_error: str | None

    @property
    def lag(self) -> int:
        return max(0, self.latest_event_id - self.last_event_id)


class Dispatcher:
    """Reads roster events and writes the notifications they call for."""

    def __init__(
        self,
        engine: Engine,
        channels: Channels,
        *,
        eligible: Eligibility | None = None,
        batch: int = 100,
        gap_grace: float = 10.0,
        max_failures: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.channels = channels
        self.eligible = eligible or resolve_eligibility()
        self.batch = batch
        self.gap_grace = gap_grace
        self.max_failures = max_failures
        self._clock = clock
        self._gaps: dict[int, float] = {}
        self._failures: dict[int, int] = {}
        self.last_error: str | None = None

    def run_once(self) -> int:
        """One pass; the number of events it consumed (0: nothing new, or waiting on a gap)."""
        with write_turn(self.engine), self.engine.begin() as conn:
            last = lock_cursor(conn)
            rows = conn.execute(
                select(roster_events)
                .where(roster_events.c.id > last)
                .order_by(roster_events.c.id)
                .limit(self.batch)
            ).all()
            start = last
            for row in rows:
                if row.id != last + 1 and not self._gap_closed(conn, last + 1):
                    break
                if not self._dispatch(conn, RosterEvent.from_row(row)):
                    break
                last = row.id
            if last != start:
                conn.execute(
                    update(cursors)
                    .where(cursors.c.name == CURSOR)
                    .values(last_event_id=last, updated_at=utcnow())
                )
        return sum(1 for r in rows if start < r.id <= last)

    def _dispatch(self, conn: Connection, event: RosterEvent) -> bool:
        """Write one event's notifications; False to stop the pass here and try again later.

        An event that keeps failing (a bug, bad data) is passed over after ``max_failures``
        passes, loudly, so it cannot silence every notification behind it.
        """
        try:
            with conn.begin_nested():
                store(conn, event.id, route(conn, event, self.eligible), self.channels)
        except Exception as exc:
            count = self._failures.get(event.id, 0) + 1
            self._failures[event.id] = count
            self.last_error = f"roster event {event.id} ({event.kind}): {exc!r}"
            if count < self.max_failures:
                log.warning("notifications for %s failed (%d), retrying", self.last_error, count)
                return False
            log.error("notifications for %s skipped after %d failures", self.last_error, count)
        self._failures.pop(event.id, None)
        return True

    def _gap_closed(self, conn: Connection, missing: int) -> bool:
        """True when ids from ``missing`` on may be passed over: they will never appear."""
        if conn.dialect.name == "sqlite":
            return True
        first_seen = self._gaps.setdefault(missing, self._clock())
        if self._clock() - first_seen < self.gap_grace:
            return False
        log.info("roster event ids from %d on never appeared; going past them", missing)
        self._gaps.pop(missing, None)
        return True

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll until ``stop`` is set; a full batch is followed at once by the next."""
        while not stop.is_set():
            try:
                busy = self.run_once() >= self.batch
            except Exception as exc:  # a database that went away: try again next time
                self.last_error = repr(exc)
                log.warning("notification dispatch failed, trying again: %s", exc)
                busy = False
            if not busy:
                stop.wait(interval)


def lock_cursor(conn: Connection) -> int:
    """The stored high-water mark, locked for this transaction (created at 0 the first time).

    Whoever else writes notifications takes it too, so notification ids become visible in
    order, which the inbox stream relies on ("everything after id N").
    """
    conn.execute(
        insert_ignoring_duplicates(conn, cursors, ("name",)),
        {"name": CURSOR, "last_event_id": 0, "updated_at": utcnow()},
    )
    query = select(cursors.c.last_event_id).where(cursors.c.name == CURSOR)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return int(conn.execute(query).scalar_one())


def dispatch_status(engine: Engine, last_error: str | None = None) -> DispatchStatus:
    """The stored cursor against the newest roster event."""
    with engine.connect() as conn:
        last = conn.execute(select(cursors.c.last_event_id).where(cursors.c.name == CURSOR))
        latest = conn.execute(select(roster_events.c.id).order_by(roster_events.c.id.desc()))
        return DispatchStatus(
            last_event_id=int(last.scalar() or 0),
            latest_event_id=int(latest.scalars().first() or 0),
            last_error=last_error,
        )
