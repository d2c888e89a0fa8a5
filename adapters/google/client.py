"""The Google Calendar client the hub calls: sync, book, cancel, and push channels.

Built on google-api-python-client with the bundled (static) discovery document, pointed at
``config.base_url`` + ``/calendar/v3/`` (Google: https://www.googleapis.com). OAuth user
credentials refresh against ``options["token_uri"]`` when Google answers 401.

Sync, one round: a ``freebusy`` page for all calendars (free slots are computed from it by
the normalizer), then each calendar's events.list pages: a full listing from now the first
time, then incremental with the calendar's sync token. Each page carries the cursor that
resumes after it. A 410 fullSyncRequired drops that calendar's token and lists it in full.
Cancelling patches the event's status to ``cancelled`` instead of deleting it: the answer
still has the event's times, so its slot is freed in the same page.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import google_auth_httplib2
import httplib2
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from adapters.contract import (
    BookingRequest,
    BookingResult,
    FetchedPage,
    IntegrationConfig,
    SlotUnavailable,
    SourceError,
    envelope,
    require_credentials,
)
from adapters.google.booking import event_body, slot_calendar, slot_window
from adapters.google.cursor import Listing, SyncCursor
from adapters.google.errors import error_parts
from adapters.google.options import CalendarOptions, calendars_of, days_ahead
from adapters.google.push import WatchChannel, read_channel
from adapters.google.resources import event_source_id, split_event_source_id
from adapters.google.times import instant
from adapters.google.transport import RetryingTransport, should_retry
from adapters.http import RetryPolicy

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
DEFAULT_PAGE_SIZE = 250


class FullSyncRequired(SourceError):
    """Google no longer accepts a calendar's sync token (410)."""


def token_uri(config: IntegrationConfig) -> str:
    """The configured token endpoint; Google's own for googleapis.com, else the sandbox's."""
    if config.options.get("token_uri"):
        return str(config.options["token_uri"])
    host = urlparse(config.base_url).hostname or ""
    if host == "googleapis.com" or host.endswith(".googleapis.com"):
        return GOOGLE_TOKEN_URI
    return config.base_url.rstrip("/") + "/token"


def source_error(exc: HttpError, what: str) -> SourceError:
    """Google's own words, and whether trying later may help."""
    status = int(exc.resp.status)
    _, reason, message = error_parts(exc.content)
    text = f"{what} -> {status} {reason or ''}: {message or exc.reason}".replace("  ", " ")
    if status == 410 and reason == "fullSyncRequired":
        return FullSyncRequired(text, retryable=True, status=status)
    return SourceError(text, retryable=should_retry(status, exc.content), status=status)


class GoogleCalendarClient:
    """A ``SourceClient`` for one Google integration (blocking; one thread at a time)."""

    def __init__(
        self, config: IntegrationConfig, transport: RetryingTransport, service: Any
    ) -> None:
        self.config = config
        self.transport = transport
        self.service = service
        self.calendars: list[CalendarOptions] = calendars_of(config.options)
        self._raw = {str(c["calendar_id"]): dict(c) for c in config.options["calendars"]}
        self.days_ahead = days_ahead(config.options)
        self.page_size = int(config.options.get("page_size", DEFAULT_PAGE_SIZE))
        self.clock = lambda: datetime.now(UTC)

    # --- plumbing ---------------------------------------------------------------------------
    def _execute(self, request: Any) -> Any:
        what = f"{request.method} {request.uri}"
        try:
            return request.execute()
        except HttpError as exc:
            raise source_error(exc, what) from None
        except RefreshError as exc:
            raise SourceError(
                f"{what}: Google refused to refresh the access token ({exc})",
                retryable=False,
                status=401,
            ) from None
        except TransportError as exc:
            raise SourceError(f"{what}: token refresh failed ({exc})") from None

    def _calendar(self, calendar_id: str) -> CalendarOptions:
        for calendar in self.calendars:
            if calendar.calendar_id == calendar_id:
                return calendar
        raise SourceError(
            f"calendar {calendar_id!r} is not configured for {self.config.name}", retryable=False
        )

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(second=0, microsecond=0)

    # --- sync ------------------------------------------------------------------------------
    def sync(self, cursor: dict[str, Any] | None) -> Iterator[FetchedPage]:
        """Pages since ``cursor``: freebusy first, then each calendar's changed events."""
        state = SyncCursor.read(cursor)
        if not state.in_pass:
            state.in_pass, state.freebusy_done, state.done, state.listing = True, False, [], {}
        if not state.freebusy_done:
            page = self._freebusy_page()
            state.freebusy_done = True
            yield FetchedPage(page, state.dump())
        for calendar in self.calendars:
            if calendar.calendar_id not in state.done:
                yield from self._list(calendar, state)

    def _freebusy_page(self) -> Any:
        start = self._now()
        end = start + timedelta(days=self.days_ahead)
        body = {
            "timeMin": instant(start),
            "timeMax": instant(end),
            "items": [{"id": c.calendar_id} for c in self.calendars],
        }
        request = self.service.freebusy().query(body=body)
        answer = self._execute(request)
        context = {
            "calendars": [self._raw[c.calendar_id] for c in self.calendars],
            "time_min": body["timeMin"],
            "time_max": body["timeMax"],
        }
        return envelope(self.config, "freebusy", f"POST {request.uri}", answer, context)

    def _list(self, calendar: CalendarOptions, state: SyncCursor) -> Iterator[FetchedPage]:
        cid = calendar.calendar_id
        listing = state.listing.get(cid)
        if listing is None:
            token = state.sync_tokens.get(cid)
            listing = Listing(None, token, None if token else instant(self._now()))
        resynced = False
        while True:
            params: dict[str, Any] = {
                "calendarId": cid,
                "singleEvents": True,
                "maxResults": self.page_size,
            }
            if listing.sync_token:
                params["syncToken"] = listing.sync_token
            else:
                params["timeMin"] = listing.time_min
            if listing.page_token:
                params["pageToken"] = listing.page_token
            request = self.service.events().list(**params)
            try:
                answer = self._execute(request)
            except FullSyncRequired:
                if resynced:
                    raise
                resynced = True
                state.sync_tokens.pop(cid, None)
                listing = Listing(None, None, instant(self._now()))
                continue
            kind = "incremental" if listing.sync_token else "full"
            if answer.get("nextPageToken"):
                listing.page_token = answer["nextPageToken"]
                state.listing[cid] = listing
            else:
                if not answer.get("nextSyncToken"):
                    raise SourceError(f"events.list of {cid} ended without nextSyncToken")
                state.sync_tokens[cid] = answer["nextSyncToken"]
                state.listing.pop(cid, None)
                state.done.append(cid)
                if all(c.calendar_id in state.done for c in self.calendars):
                    state.in_pass, state.freebusy_done, state.done = False, False, []
                    state.listing = {}
            context = {"calendar": self._raw[cid], "listing": kind}
            page = envelope(self.config, "events", f"GET {request.uri}", answer, context)
            yield FetchedPage(page, state.dump())
            if not answer.get("nextPageToken"):
                return

    # --- write-back --------------------------------------------------------------------------
    def book(self, request: BookingRequest) -> BookingResult:
        """Insert the event for the slot, after freebusy confirms the window is still free."""
        calendar = self._calendar(slot_calendar(request.slot_source_id))
        start, end = slot_window(request)
        buffer = timedelta(minutes=calendar.buffer_minutes)
        check = {
            "timeMin": instant(start - buffer),
            "timeMax": instant(end + buffer),
            "items": [{"id": calendar.calendar_id}],
        }
        answer = self._execute(self.service.freebusy().query(body=check))
        busy = (answer.get("calendars") or {}).get(calendar.calendar_id) or {}
        if busy.get("errors"):
            reasons = ", ".join(str(e.get("reason")) for e in busy["errors"])
            raise SourceError(f"freebusy of {calendar.calendar_id}: {reasons}", retryable=False)
        if busy.get("busy"):
            taken = ", ".join(f"{b['start']}-{b['end']}" for b in busy["busy"])
            raise SlotUnavailable(
                f"slot {request.slot_source_id} is no longer free in Google Calendar (busy {taken})"
            )
        body = event_body(request, start, end, calendar.timezone)
        insert = self.service.events().insert(calendarId=calendar.calendar_id, body=body)
        event = self._execute(insert)
        page = envelope(
            self.config,
            "event",
            f"POST {insert.uri}",
            event,
            {"calendar": self._raw[calendar.calendar_id]},
        )
        return BookingResult(
            event_source_id(calendar.calendar_id, event["id"]), FetchedPage(page, {})
        )

    def cancel(self, appointment_source_id: str, reason: str | None) -> FetchedPage:
        """Patch the event to ``cancelled`` (an event already cancelled is answered as is)."""
        try:
            calendar_id, event_id = split_event_source_id(appointment_source_id)
        except ValueError as exc:
            raise SourceError(str(exc), retryable=False) from None
        calendar = self._calendar(calendar_id)
        get = self.service.events().get(calendarId=calendar_id, eventId=event_id)
        event = self._execute(get)
        request = get
        if event.get("status") != "cancelled":
            private = dict((event.get("extendedProperties") or {}).get("private") or {})
            if reason:
                private["harmonyCancelReason"] = reason
            changes = {"status": "cancelled", "extendedProperties": {"private": private}}
            request = self.service.events().patch(
                calendarId=calendar_id, eventId=event_id, body=changes
            )
            event = self._execute(request)
        context = {"calendar": self._raw[calendar.calendar_id]}
        page = envelope(self.config, "event", f"{request.method} {request.uri}", event, context)
        return FetchedPage(page, {})

    # --- push channels ---------------------------------------------------------------------
    def watch(
        self, calendar_id: str, address: str, token: str, ttl_seconds: int = 604800
    ) -> WatchChannel:
        """Open a push channel on a calendar's events; Google first posts a ``sync`` to it."""
        self._calendar(calendar_id)
        expiration = self.clock() + timedelta(seconds=ttl_seconds)
        body = {
            "id": str(uuid.uuid4()),
            "type": "web_hook",
            "address": address,
            "token": token,
            "expiration": int(expiration.timestamp() * 1000),
        }
        request = self.service.events().watch(calendarId=calendar_id, body=body)
        return read_channel(self._execute(request))

    def stop_channel(self, channel_id: str, resource_id: str) -> None:
        """Stop a channel; Google stops posting to its address."""
        body = {"id": channel_id, "resourceId": resource_id}
        self._execute(self.service.channels().stop(body=body))

    def close(self) -> None:
        self.transport.close()


def make_client(
    config: IntegrationConfig, *, policy: RetryPolicy | None = None, timeout: float = 10.0
) -> GoogleCalendarClient:
    """A client for one configured Google integration (or the sandbox at ``base_url``)."""
    secrets = require_credentials(config, "Google", "refresh_token", "client_id", "client_secret")
    credentials = Credentials(
        token=secrets.get("access_token"),
        refresh_token=secrets["refresh_token"],
        token_uri=token_uri(config),
        client_id=secrets["client_id"],
        client_secret=secrets["client_secret"],
    )
    authorized = google_auth_httplib2.AuthorizedHttp(
        credentials, http=httplib2.Http(timeout=timeout)
    )
    transport = RetryingTransport(authorized, policy or RetryPolicy())
    service = build(
        "calendar",
        "v3",
        http=transport,
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": config.base_url.rstrip("/") + "/calendar/v3/"},
    )
    return GoogleCalendarClient(config, transport, service)
