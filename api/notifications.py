"""Notifications for the signed-in user (list, read marks, live stream, push devices) and the
delivery outbox for operators."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.deps import AdminPrincipal, CurrentPrincipal, Principal
from api.roster import streams_closing
from hub.notifications import inbox, outbox
from hub.notifications.dispatcher import dispatch_status

router = APIRouter(prefix="/api/notifications", tags=["notifications"])

STREAM_POLL_SECONDS = 0.25
STREAM_KEEPALIVE_SECONDS = 15.0


def _user_id(principal: Principal) -> int:
    if principal.user_id is None:
        raise HTTPException(403, "notifications belong to users; sign in as one")
    return principal.user_id


class ReadMarks(BaseModel):
    """Ids to mark read; omitted: every unread notification of the caller."""

    ids: list[int] | None = None


class Device(BaseModel):
    token: str = Field(min_length=1, max_length=512)
    platform: str | None = Field(default=None, max_length=16)


class RetryRequest(BaseModel):
    ids: list[int] = Field(min_length=1)


@router.get("")
def list_notifications(
    request: Request,
    principal: CurrentPrincipal,
    unread: bool = False,
    before: int | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    engine = request.app.state.engine
    user_id = _user_id(principal)
    items = inbox.list_for(engine, user_id, unread_only=unread, before=before, limit=limit)
    return {"items": items, "unread": inbox.unread_count(engine, user_id)}


@router.get("/unread-count")
def unread_count(request: Request, principal: CurrentPrincipal) -> dict[str, int]:
    return {"unread": inbox.unread_count(request.app.state.engine, _user_id(principal))}


@router.post("/{notification_id}/read")
def mark_one_read(
    request: Request, principal: CurrentPrincipal, notification_id: int
) -> dict[str, int]:
    engine = request.app.state.engine
    user_id = _user_id(principal)
    if not inbox.owns(engine, user_id, notification_id):
        raise HTTPException(404, f"no notification {notification_id} for you")
    inbox.mark_read(engine, user_id, [notification_id])
    return {"unread": inbox.unread_count(engine, user_id)}


@router.post("/read")
def mark_read(request: Request, principal: CurrentPrincipal, body: ReadMarks) -> dict[str, int]:
    engine = request.app.state.engine
    user_id = _user_id(principal)
    marked = inbox.mark_read(engine, user_id, body.ids)
    return {"marked": marked, "unread": inbox.unread_count(engine, user_id)}


@router.get("/stream")
async def stream(
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: Annotated[str | None, Header()] = None,
    after: int | None = None,
) -> StreamingResponse:
    """Server-sent events: each new notification of the caller as ``event: notification``.

    A reconnecting client sends ``Last-Event-ID`` (browsers do) and gets what it missed;
    a new one starts from now. The table is polled, so a dispatcher in any process counts.
    The stream ends within a poll of the client going away or the app shutting down
    (``api.roster.close_streams``).
    """
    user_id = _user_id(principal)
    engine = request.app.state.engine
    if last_event_id and last_event_id.strip().isdigit():
        start = int(last_event_id)
    elif after is not None:
        start = after
    else:
        start = await asyncio.to_thread(inbox.latest_id, engine, user_id)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(
        _events(request, user_id, start), media_type="text/event-stream", headers=headers
    )


async def _events(request: Request, user_id: int, after: int) -> AsyncIterator[str]:
    engine = request.app.state.engine
    yield "retry: 2000\n\n"
    quiet_since = time.monotonic()
    while not streams_closing(request.app) and not await request.is_disconnected():
        rows = await asyncio.to_thread(inbox.since, engine, user_id, after)
        for row in rows:
            after = row["id"]
            yield f"id: {after}\nevent: notification\ndata: {json.dumps(row)}\n\n"
        if rows:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= STREAM_KEEPALIVE_SECONDS:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await asyncio.sleep(STREAM_POLL_SECONDS)


@router.get("/devices")
def list_devices(request: Request, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    return inbox.devices(request.app.state.engine, _user_id(principal))


@router.post("/devices", status_code=201)
def register_device(request: Request, principal: CurrentPrincipal, body: Device) -> dict[str, str]:
    """Register this device's FCM token for the caller's push notifications."""
    inbox.register_device(request.app.state.engine, _user_id(principal), body.token, body.platform)
    return {"token": body.token}


@router.delete("/devices/{token}", status_code=204)
def unregister_device(request: Request, principal: CurrentPrincipal, token: str) -> Response:
    if not inbox.unregister_device(request.app.state.engine, _user_id(principal), token):
        raise HTTPException(404, "no such device token for you")
    return Response(status_code=204)


@router.get("/deliveries")
def list_deliveries(
    request: Request,
    principal: AdminPrincipal,
    status: str | None = None,
    channel: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Operators: email and push deliveries (parked ones need a look), newest first."""
    engine = request.app.state.engine
    return {
        "counts": outbox.delivery_counts(engine),
        "items": outbox.list_deliveries(engine, status=status, channel=channel, limit=limit),
    }


@router.post("/deliveries/retry")
def retry_deliveries(
    request: Request, principal: AdminPrincipal, body: RetryRequest
) -> dict[str, list[int]]:
    """Operators: send parked deliveries again (after fixing SMTP, say)."""
    return {"retried": outbox.retry_now(request.app.state.engine, body.ids)}


@router.get("/dispatcher")
def dispatcher(request: Request, principal: AdminPrincipal) -> dict[str, Any]:
    """Operators: how far the dispatcher has read the roster events, and its last error."""
    runtime = request.app.state.runtime
    service = getattr(runtime, "notifications", None)
    last_error = service.dispatcher.last_error if service is not None else None
    status = dispatch_status(request.app.state.engine, last_error)
    return {
        "last_event_id": status.last_event_id,
        "latest_event_id": status.latest_event_id,
        "lag": status.lag,
        "last_error": status.last_error,
    }
