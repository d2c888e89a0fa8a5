"""The live on-call roster: a snapshot, a Server-Sent Events stream, and a page for both.

Read-only for admin, staff, physician and call_center. A browser's EventSource cannot set an
``Authorization`` header, so the roster endpoints also take the access token from an
HttpOnly cookie that ``POST /api/roster/session`` sets (SameSite=Strict, Path=/api/roster,
expiring with the token). Not ``?access_token=``: a token in a URL lands in access logs, the
audit log and browser history. A stream ends with a ``reauth`` event when its token
expires, so a deactivated user or a changed role takes effect within one token lifetime.

A stream also ends within ``DISCONNECT_CHECK_SECONDS`` of its client going away, and at
once when the app shuts down (``close_streams``: ``harmony serve`` calls it when it stops,
and so does the app's lifespan): a server waits for open responses before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy import Engine

from api.deps import NotAuthenticated, Principal, SettingsDep, _principal_for
from api.roster_stream import (
    CLOSE,
    RosterBroadcaster,
    StreamsClosed,
    Subscriber,
    sse,
)
from hub.settings import Settings
from scheduling.live_roster import needs_status, on_stream
from scheduling.live_roster_query import events_after, load_snapshot, published_roster_ids

READ_ROLES = frozenset({"admin", "staff", "physician", "call_center"})
MAX_HOURS = 168.0
STATIC = Path(__file__).parent / "static"
COOKIE = "harmony_roster"
COOKIE_PATH = "/api/roster"
DISCONNECT_CHECK_SECONDS = 0.5
"""How often an idle stream looks whether its client is still there."""


def streams_closing(app: FastAPI) -> bool:
    """Whether the app is shutting down: live streams (roster, notifications) end."""
    return bool(getattr(app.state, "streams_closing", False))


async def close_streams(app: FastAPI) -> None:
    """App shutdown: end every live stream and stop the roster poller. Open streams hold
    the server up (it waits for their responses to end), so call it when shutdown begins."""
    app.state.streams_closing = True
    found: RosterBroadcaster | None = getattr(app.state, "roster_broadcaster", None)
    if found is not None:
        await found.close()


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await close_streams(app)


router = APIRouter(tags=["roster"], lifespan=_lifespan)


def _token(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return token
    cookie = request.cookies.get(COOKIE)
    if cookie:
        return cookie
    raise NotAuthenticated("missing bearer token (header, or the roster session cookie)")


def roster_reader(request: Request, settings: SettingsDep) -> Principal:
    """The caller, from the Authorization header or the roster cookie; 403 unless it may
    read the roster."""
    # the same resolution as every other route (service token, OIDC, Harmony JWT), only
    # with a second place to find the token
    principal = _principal_for(request, settings, _token(request))
    request.state.principal = principal  # for the audit log
    if not principal.has(*READ_ROLES):
        raise HTTPException(403, f"this needs one of the roles: {', '.join(sorted(READ_ROLES))}")
    return principal


Reader = Annotated[Principal, Depends(roster_reader)]
Hours = Annotated[float, Query(gt=0, le=MAX_HOURS, description="look-ahead window")]


def _instant(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise HTTPException(422, f"at={at!r} is not an ISO 8601 instant") from None
    if value.tzinfo is None:
        raise HTTPException(422, "at needs an offset or Z: a wall-clock time is ambiguous")
    return value


@router.get("/api/roster/now")
def roster_now(
    request: Request, _reader: Reader, at: str | None = None, hours: Hours = 12.0
) -> dict[str, Any]:
    """Who is on call at ``at`` (default: now) per service and location, who follows within
    ``hours``, and the latest changes; published rosters only."""
    return load_snapshot(request.app.state.engine, _instant(at), hours).as_json()


def broadcaster(app: FastAPI) -> RosterBroadcaster:
    """The process's one poller (created on first use, inside the serving event loop)."""
    found: RosterBroadcaster | None = getattr(app.state, "roster_broadcaster", None)
    if found is None:
        found = RosterBroadcaster(app.state.engine, app.state.settings.roster_poll_seconds)
        app.state.roster_broadcaster = found
    return found


def _missed(engine: Engine, after: int, upto: int) -> list[dict[str, Any]]:
    """Published-roster events a reconnecting client has not seen, oldest first (as the
    stream would have sent them: ``on_stream``)."""
    with engine.connect() as conn:
        events = [e for e in events_after(conn, after) if e.id <= upto]
        published = published_roster_ids(conn) if needs_status(events) else None
    return [e.as_json() for e in events if on_stream(e, published)]


def _expiry(settings: Settings, token: str) -> float | None:
    from hub.tokens import InvalidToken, TokenService

    if token in settings.accepted_tokens():
        return None
    try:
        return float(TokenService(settings.secret_key).verify(token)["exp"])
    except (InvalidToken, KeyError):
        return None


def _resume_from(request: Request, last_event_id: int | None) -> int | None:
    header = request.headers.get("last-event-id")
    if header and header.strip().isdigit():
        return int(header)
    return last_event_id


@router.get("/api/roster/stream")
async def roster_stream(
    request: Request,
    settings: SettingsDep,
    _reader: Reader,
    hours: Hours = 12.0,
    last_event_id: int | None = None,
) -> StreamingResponse:
    """``snapshot`` first (after ``missed`` events when resuming from ``Last-Event-ID`` or
    ``?last_event_id=``), then a ``change`` for every change: the event(s) plus the groups
    that changed, whole. Heartbeat comments keep proxies from closing an idle stream."""
    app = request.app
    resume = _resume_from(request, last_event_id)
    expires = _expiry(settings, _token(request))
    heartbeat = settings.roster_heartbeat_seconds

    async def body() -> AsyncIterator[bytes]:
        if streams_closing(app):
            return
        hub = broadcaster(app)
        try:
            subscriber, snapshot = await hub.subscribe(hours)
        except StreamsClosed:
            return
        try:
            yield b"retry: 2000\n\n"
            if resume is not None:
                upto = int(snapshot["last_event_id"])
                missed = await asyncio.to_thread(_missed, hub.engine, resume, upto)
                yield sse("missed", {"after": resume, "events": missed})
            yield sse("snapshot", snapshot, snapshot["last_event_id"])
            follow = _follow(request, subscriber, heartbeat, expires)
            async with contextlib.aclosing(follow):
                async for item in follow:
                    yield item
        finally:
            hub.unsubscribe(subscriber)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _follow(
    request: Request, subscriber: Subscriber, heartbeat: float, expires: float | None
) -> AsyncGenerator[bytes]:
    """The messages the poller queues for one client, heartbeats when it is quiet, until
    the client goes, the token expires (``reauth``) or the stream is closed (``CLOSE``).

    A server notices a client gone only when it next writes to it; waiting on the queue
    in short steps and asking the request in between ends the stream within
    ``DISCONNECT_CHECK_SECONDS`` instead of at the next heartbeat."""
    getter: asyncio.Future[bytes] = asyncio.ensure_future(subscriber.queue.get())
    quiet_until = time.monotonic() + heartbeat
    try:
        while True:
            if expires is not None and expires <= time.time():
                yield sse("reauth", {"reason": "the access token expired"})
                return
            wait = min(DISCONNECT_CHECK_SECONDS, max(quiet_until - time.monotonic(), 0.0))
            if expires is not None:
                wait = min(wait, max(expires - time.time(), 0.0))
            # wait on one getter across timeouts: a message is never lost to a timeout
            done, _ = await asyncio.wait({getter}, timeout=wait)
            if getter in done:
                message = getter.result()
                if message == CLOSE:
                    return
                yield message
                getter = asyncio.ensure_future(subscriber.queue.get())
                quiet_until = time.monotonic() + heartbeat
            elif await request.is_disconnected() or streams_closing(request.app):
                return
            elif time.monotonic() >= quiet_until:
                yield b": heartbeat\n\n"
                quiet_until = time.monotonic() + heartbeat
    finally:
        getter.cancel()


@router.post("/api/roster/session", status_code=204)
def open_session(request: Request, settings: SettingsDep, _reader: Reader) -> Response:
    """Put the caller's access token (from the Authorization header) in the roster cookie,
    for EventSource; it lives as long as the token."""
    token = _token(request)
    expires = _expiry(settings, token)
    response = Response(status_code=204)
    response.set_cookie(
        COOKIE,
        token,
        max_age=None if expires is None else max(0, int(expires - time.time())),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.delete("/api/roster/session", status_code=204)
def close_session() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@cache
def _page() -> str:
    return (STATIC / "roster.html").read_text(encoding="utf-8")


@router.get("/roster", response_class=HTMLResponse, include_in_schema=False)
def roster_page() -> str:
    """The live roster page: static, no data of its own (it signs in, then streams)."""
    return _page()
