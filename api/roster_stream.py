"""One poller per process feeds every live-roster stream client.

``roster_event`` is the source of truth, so a change made by any process reaches every
process's clients: the poller reads new event ids every ``poll_seconds``, recomputes the
roster once, diffs it per look-ahead window, serializes each message once and drops the same
bytes into every client's queue, so a hundred clients cost a hundred queue puts, not a
hundred queries. It also recomputes when a shift starts or ends (a handoff with no event).

On PostgreSQL ids are taken before commit, so id 11 can become visible before id 10; a
skipped id is re-read for ``GAP_SECONDS`` before it is given up as a rolled-back write.

Only changes to published rosters reach the stream (``scheduling.live_roster.on_stream``):
whether a roster was published is what its event recorded when it was written, so a
draft's shifts read after the draft was published are still a draft's, and stay off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine

from scheduling.live_roster import (
    EventRow,
    ShiftRow,
    Snapshot,
    build_snapshot,
    diff_groups,
    needs_status,
    on_stream,
)
from scheduling.live_roster_query import (
    RECENT_EVENTS,
    events_after,
    events_by_id,
    last_event_id,
    load_shifts,
    load_snapshot,
    published_roster_ids,
)

log = logging.getLogger(__name__)

GAP_SECONDS = 30.0
QUEUE_LIMIT = 256
CLOSE = b""
"""Put in a client's queue to end its stream (it fell behind; it reconnects and resumes)."""


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One Server-Sent Events message (JSON data on one line)."""
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


class StreamsClosed(Exception):
    """The app is shutting down: no new stream starts."""


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connected client: its queue of ready-made SSE messages."""

    hours: float
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def offer(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Too slow to keep up: drop what is queued and end the stream; the browser
            # reconnects with Last-Event-ID and gets a fresh snapshot.
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSE)


@dataclass(slots=True)
class Channel:
    """Clients sharing one look-ahead window, and the roster they last received."""

    hours: float
    snapshot: dict[str, Any]
    subscribers: set[Subscriber] = field(default_factory=set)


class RosterBroadcaster:
    """Created per app; starts polling with the first client and stops after the last."""

    def __init__(self, engine: Engine, poll_seconds: float = 0.25) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.cursor = 0
        self._gaps: dict[int, float] = {}
        self._channels: dict[float, Channel] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    @property
    def clients(self) -> int:
        return sum(len(c.subscribers) for c in self._channels.values())

    async def subscribe(self, hours: float) -> tuple[Subscriber, dict[str, Any]]:
        """A new client and the snapshot its first message carries; every later message the
        poller sends it is a diff against exactly that snapshot."""
        async with self._lock:
            if self.closed:
                raise StreamsClosed("the roster stream is shutting down")
            if self._task is None:
                self.cursor = await asyncio.to_thread(self._read_cursor)
                self._gaps.clear()
                self._task = asyncio.create_task(self._run(), name="roster-poller")
            channel = self._channels.get(hours)
            if channel is None:
                snap = await asyncio.to_thread(load_snapshot, self.engine, _now(), hours)
                channel = self._channels[hours] = Channel(hours, snap.as_json())
            subscriber = Subscriber(hours)
            channel.subscribers.add(subscriber)
            return subscriber, channel.snapshot

    def unsubscribe(self, subscriber: Subscriber) -> None:
        channel = self._channels.get(subscriber.hours)
        if channel is None:
            return
        channel.subscribers.discard(subscriber)
        if not channel.subscribers:
            del self._channels[subscriber.hours]

    async def close(self) -> None:
        """End every stream and the poller, for good (app shutdown); idempotent."""
        self.closed = True  # a subscribe waiting for the lock is refused
        async with self._lock:  # a subscribe or a poll under way finishes first
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
            for channel in list(self._channels.values()):
                for subscriber in list(channel.subscribers):
                    subscriber.offer(CLOSE)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _read_cursor(self) -> int:
        with self.engine.connect() as conn:
            return last_event_id(conn)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            async with self._lock:
                if not self._channels:
                    self._task = None  # the next client starts a new poller
                    return
                try:
                    await self.poll_once()
                except Exception:  # a database hiccup must not end every client's stream
                    log.exception("live roster poll failed; retrying")

    async def poll_once(self) -> None:
        """Read new events; if any (or a shift boundary passed), recompute and fan out."""
        now = _now()
        due = any(_parse(c.snapshot["next_change_at"]) <= now for c in self._channels.values())
        horizon = max((c.hours for c in self._channels.values()), default=0.0)
        events, rows, published = await asyncio.to_thread(self._read, now, horizon, due)
        if rows is None:
            return
        visible = [e for e in events if on_stream(e, published)]
        payload_events = [e.as_json() for e in visible]
        for channel in list(self._channels.values()):
            snap = build_snapshot(rows, now, channel.hours, last_event_id=self.cursor)
            self._send(channel, snap, payload_events)

    def _read(
        self, now: datetime, horizon: float, due: bool
    ) -> tuple[list[EventRow], list[ShiftRow] | None, set[int] | None]:
        with self.engine.connect() as conn:
            events = events_after(conn, self.cursor)
            late = events_by_id(conn, self._gaps) if self._gaps else []
            self._track(events, late)
            if not events and not late and not due:
                return [], None, None
            published = published_roster_ids(conn) if needs_status(events + late) else None
            rows = load_shifts(conn, now, now + timedelta(hours=horizon))
        return sorted(events + late, key=lambda e: e.id), rows, published

    def _track(self, events: Sequence[EventRow], late: Sequence[EventRow]) -> None:
        clock = time.monotonic()
        for event in late:
            self._gaps.pop(event.id, None)
        for event in events:
            for missing in range(self.cursor + 1, event.id):
                self._gaps[missing] = clock + GAP_SECONDS
            self.cursor = max(self.cursor, event.id)
        for gap, deadline in list(self._gaps.items()):
            if deadline < clock:
                del self._gaps[gap]  # a rolled-back transaction's id: nothing will fill it

    def _send(self, channel: Channel, snap: Snapshot, events: list[dict[str, Any]]) -> None:
        new = snap.as_json()
        changed, removed = diff_groups(channel.snapshot["groups"], new["groups"])
        fresh = {e["id"] for e in events}
        older = [e for e in channel.snapshot["recent"] if e["id"] not in fresh]
        recent = (events[::-1] + older)[:RECENT_EVENTS]
        channel.snapshot = {**new, "recent": recent}
        if not (changed or removed or events):
            return
        message = sse(
            "change",
            {
                "at": new["at"],
                "until": new["until"],
                "next_change_at": new["next_change_at"],
                "last_event_id": self.cursor,
                "events": events,
                "changed": changed,
                "removed": removed,
            },
            self.cursor,
        )
        for subscriber in channel.subscribers:
            subscriber.offer(message)


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
