"""The Google Calendar sandbox's memory: calendars, events, tokens, channels and faults.

Tests seed it and change it behind the API's back (as a person editing the calendar in
Google's own UI would), and make the next answers fail on purpose.
"""

from __future__ import annotations

import base64
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from adapters.google.times import parse_rfc3339

TOKEN_LIFETIME = 3600
_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"


def new_event_id() -> str:
    return "".join(secrets.choice(_BASE32HEX) for _ in range(26))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode()


def decode_token(text: str) -> dict[str, Any] | None:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Fault:
    status: int
    retry_after: float | None = None
    reason: str | None = None
    message: str | None = None
    path: str | None = None
    """Only requests whose path contains this fail (None: any API request)."""


@dataclass
class Faults:
    pending: list[Fault] = field(default_factory=list)
    served: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        times: int = 1,
        reason: str | None = None,
        message: str | None = None,
        path: str | None = None,
    ) -> None:
        """The next ``times`` matching API requests answer ``status`` with Google's body."""
        with self.lock:
            self.pending += [
                Fault(status, retry_after, reason, message, path) for _ in range(times)
            ]

    def take(self, path: str) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.pending):
                if fault.path is None or fault.path in path:
                    self.served.append(fault)
                    return self.pending.pop(i)
        return None


@dataclass
class Channel:
    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str | None
    expiration_ms: int
    resource_uri: str
    messages: int = 0


@dataclass
class Calendar:
    id: str
    summary: str
    time_zone: str


class PushSender:
    """Delivers push notifications in order from one thread, as Google's own POSTs."""

    def __init__(self, log: list[dict[str, Any]]) -> None:
        self._queue: queue.Queue[tuple[str, dict[str, str], dict[str, Any]]] = queue.Queue()
        self._log = log
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def send(self, address: str, headers: dict[str, str], entry: dict[str, Any]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="push")
                self._thread.start()
        self._queue.put((address, headers, entry))

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                address, headers, entry = self._queue.get()
                try:
                    entry["status"] = client.post(address, headers=headers, content=b"").status_code
                except httpx.HTTPError as exc:
                    entry["error"] = repr(exc)
                self._log.append(entry)
                self._queue.task_done()

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until every queued notification has been attempted."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


@dataclass
class GoogleSandboxState:
    client_id: str = "harmony-sandbox.apps.googleusercontent.com"
    client_secret: str = "sandbox-secret"
    refresh_token: str = "1//sandbox-refresh-token"
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    calendars: dict[str, Calendar] = field(default_factory=dict)
    events: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """calendar id -> event id -> event (deleted ones stay, as Google keeps tombstones)."""
    seq: dict[tuple[str, str], int] = field(default_factory=dict)
    tombstones: set[tuple[str, str]] = field(default_factory=set)
    changes: int = 0
    generation: int = 1
    tokens: dict[str, float] = field(default_factory=dict)
    """Access token -> expiry (``time.monotonic()``)."""
    token_grants: int = 0
    channels: dict[str, Channel] = field(default_factory=dict)
    push_log: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    """(method, path and query) of every API request, for tests to see what was fetched."""
    bodies: list[tuple[str, Any]] = field(default_factory=list)
    """(path, JSON body) of every API request that had one."""
    faults: Faults = field(default_factory=Faults)
    base_url: str = "https://www.googleapis.com"
    lock: threading.RLock = field(default_factory=threading.RLock)
    pusher: PushSender = field(init=False)

    def __post_init__(self) -> None:
        self.pusher = PushSender(self.push_log)

    # --- auth -------------------------------------------------------------------------
    def issue_token(self, lifetime: float = TOKEN_LIFETIME) -> str:
        with self.lock:
            token = "ya29.sandbox-" + secrets.token_urlsafe(24)
            self.tokens[token] = time.monotonic() + lifetime
            return token

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.tokens.get(token)
            return expiry is not None and expiry > time.monotonic()

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401)."""
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def credentials(self) -> dict[str, str]:
        """What an IntegrationConfig holds to talk to this sandbox."""
        return {
            "access_token": self.issue_token(),
            "refresh_token": self.refresh_token,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }

    # --- calendars and events -----------------------------------------------------------
    def add_calendar(self, calendar_id: str, summary: str, time_zone: str) -> Calendar:
        with self.lock:
            calendar = Calendar(calendar_id, summary, time_zone)
            self.calendars[calendar_id] = calendar
            self.events.setdefault(calendar_id, {})
            return calendar

    def _touch(self, calendar_id: str, event_id: str) -> None:
        self.changes += 1
        self.seq[(calendar_id, event_id)] = self.changes

    def store_event(self, calendar_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Insert an event as Google would complete it; pushes ``exists`` to watchers."""
        with self.lock:
            now = rfc3339(self.clock())
            event_id = body.get("id") or new_event_id()
            event = {
                "kind": "calendar#event",
                "etag": f'"{secrets.randbits(52)}"',
                "id": event_id,
                "status": "confirmed",
                "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
                "created": now,
                "updated": now,
                "creator": {"email": calendar_id, "self": True},
                "organizer": {"email": calendar_id, "self": True},
                **{k: v for k, v in body.items() if k != "id"},
                "iCalUID": f"{event_id}@google.com",
                "sequence": 0,
                "reminders": {"useDefault": True},
                "eventType": "default",
            }
            if "date" in event.get("start", {}) and "transparency" not in body:
                event["transparency"] = "transparent"  # Google's default for all-day events
            self.events[calendar_id][event_id] = event
            self._touch(calendar_id, event_id)
        self.notify(calendar_id)
        return event

    def add_event(
        self,
        calendar_id: str,
        start: datetime | date,
        end: datetime | date,
        summary: str = "Busy",
        **extra: Any,
    ) -> dict[str, Any]:
        """An event made outside the API (aware datetimes, or dates for all-day events)."""
        zone = self.calendars[calendar_id].time_zone
        body: dict[str, Any] = {"summary": summary, **extra}
        for key, value in (("start", start), ("end", end)):
            if isinstance(value, datetime):
                local = value.astimezone(ZoneInfo(zone))
                body[key] = {"dateTime": local.isoformat(), "timeZone": zone}
            else:
                body[key] = {"date": value.isoformat()}
        return self.store_event(calendar_id, body)

    def patch_event(
        self, calendar_id: str, event_id: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        with self.lock:
            event = self.events[calendar_id][event_id]
            event.update({k: v for k, v in changes.items() if k not in ("id", "kind", "iCalUID")})
            event["updated"] = rfc3339(self.clock())
            event["sequence"] = int(event.get("sequence", 0)) + 1
            event["etag"] = f'"{secrets.randbits(52)}"'
            self._touch(calendar_id, event_id)
        self.notify(calendar_id)
        return event

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with self.lock:
            self.events[calendar_id][event_id]["status"] = "cancelled"
            self.tombstones.add((calendar_id, event_id))
            self._touch(calendar_id, event_id)
        self.notify(calendar_id)

    def invalidate_sync_tokens(self) -> None:
        """Every sync token given out so far gets 410 fullSyncRequired."""
        with self.lock:
            self.generation += 1

    def event_span(self, calendar_id: str, event: dict[str, Any]) -> tuple[datetime, datetime]:
        """An event's [start, end) in UTC; all-day events span their days in the calendar zone."""
        zone = ZoneInfo(self.calendars[calendar_id].time_zone)
        out = []
        for key in ("start", "end"):
            value = event[key]
            if value.get("dateTime"):
                out.append(parse_rfc3339(value["dateTime"], key, value.get("timeZone")))
            else:
                day = date.fromisoformat(value["date"])
                out.append(datetime(day.year, day.month, day.day, tzinfo=zone))
        return out[0].astimezone(UTC), out[1].astimezone(UTC)

    def busy(
        self, calendar_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """Opaque, live events overlapping [start, end), clipped and merged (freeBusy)."""
        spans = []
        with self.lock:
            for event in self.events[calendar_id].values():
                if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                    continue
                begin, finish = self.event_span(calendar_id, event)
                if finish > start and begin < end:
                    spans.append((max(begin, start), min(finish, end)))
        merged: list[tuple[datetime, datetime]] = []
        for begin, finish in sorted(spans):
            if merged and begin <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(finish, merged[-1][1]))
            else:
                merged.append((begin, finish))
        return merged

    # --- push channels --------------------------------------------------------------------
    def notify(self, calendar_id: str) -> None:
        with self.lock:
            watchers = [c for c in self.channels.values() if c.calendar_id == calendar_id]
        for channel in watchers:
            self.push(channel, "exists")

    def push(self, channel: Channel, state: str) -> None:
        with self.lock:
            channel.messages += 1
            number = channel.messages
        expiration = datetime.fromtimestamp(channel.expiration_ms / 1000, UTC)
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": channel.resource_uri,
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        entry = {"channel": channel.id, "state": state, "number": number}
        self.pusher.send(channel.address, headers, entry)

    # --- demo data ------------------------------------------------------------------------
    def seed_demo(self, now: datetime | None = None, days: int = 5) -> list[dict[str, Any]]:
        """Two practitioner calendars with booked events over the next days; returns the
        ``options["calendars"]`` entries that describe them."""
        now = (now or self.clock()).astimezone(UTC)
        hours = {
            d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
        }
        specs = [
            ("dr.ada.lovelace@clinic.example", "Dr Ada Lovelace", "America/New_York", 30, 0),
            ("dr.grace.hopper@clinic.example", "Dr Grace Hopper", "Europe/London", 20, 10),
        ]
        options = []
        for n, (cid, name, zone_name, slot, buffer) in enumerate(specs):
            self.add_calendar(cid, name, zone_name)
            zone = ZoneInfo(zone_name)
            today = now.astimezone(zone).date()
            for offset in range(1, days + 1):
                day = today + timedelta(days=offset)
                at = datetime(day.year, day.month, day.day, 10 + n, 0, tzinfo=zone)
                self.add_event(cid, at, at + timedelta(minutes=45), "Clinic: follow-up")
            day = today + timedelta(days=2)
            self.add_event(cid, day, day + timedelta(days=1), "Conference (all day)")
            at = datetime(day.year, day.month, day.day, 15, 0, tzinfo=zone)
            self.add_event(
                cid, at, at + timedelta(hours=1), "Admin time", transparency="transparent"
            )
            options.append(
                {
                    "calendar_id": cid,
                    "practitioner": name,
                    "timezone": zone_name,
                    "working_hours": hours,
                    "slot_minutes": slot,
                    "buffer_minutes": buffer,
                }
            )
        return options
