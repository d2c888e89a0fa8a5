"""A Google Calendar v3 sandbox: the paths, paging, sync tokens, auth and error bodies of
the real API, served from ``GoogleSandboxState`` (see ``sandbox_state``).

Routes (under ``/calendar/v3`` as the discovery document's servicePath puts them):
``POST freeBusy``; ``GET/POST calendars/{id}/events``; ``GET/PATCH/DELETE
calendars/{id}/events/{eventId}``; ``POST calendars/{id}/events/watch``; ``POST
channels/stop``. ``POST /token`` is the OAuth token endpoint (refresh_token grant).
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.google.sandbox_state import (
    Channel,
    GoogleSandboxState,
    decode_token,
    encode_token,
    rfc3339,
)
from adapters.google.times import BadTime, parse_rfc3339

__all__ = ["GoogleSandboxState", "create_sandbox"]

PREFIX = "/calendar/v3"
_DEFAULT_REASONS = {
    400: ("invalid", "Invalid Value"),
    401: ("authError", "Invalid Credentials"),
    403: ("rateLimitExceeded", "Rate Limit Exceeded"),
    404: ("notFound", "Not Found"),
    409: ("duplicate", "The requested identifier already exists."),
    410: ("deleted", "Resource has been deleted"),
    429: ("rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("backendError", "Backend Error"),
    503: ("backendError", "The service is currently unavailable."),
}
CHANNEL_TTL = timedelta(days=7)


class ApiError(Exception):
    def __init__(
        self, status: int, reason: str | None = None, message: str | None = None, **extra: str
    ):
        default = _DEFAULT_REASONS.get(status, ("error", HTTPStatus(status).phrase))
        self.status = status
        self.reason = reason or default[0]
        self.message = message or default[1]
        self.extra = extra


def error_response(error: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    """Google's JSON error body (the shape googleapiclient's HttpError reads)."""
    domain = "usageLimits" if error.reason.endswith("RateLimitExceeded") else "global"
    if error.reason in ("fullSyncRequired",):
        domain = "calendar"
    detail = {"domain": domain, "reason": error.reason, "message": error.message, **error.extra}
    body = {"error": {"errors": [detail], "code": error.status, "message": error.message}}
    return JSONResponse(body, status_code=error.status, headers=headers)


def create_sandbox(state: GoogleSandboxState | None = None) -> Starlette:
    """The ASGI app; ``state`` is created (empty) when not given."""
    state = state or GoogleSandboxState()
    api = _Api(state)
    routes = [
        Route("/token", api.token, methods=["POST"]),
        Route(f"{PREFIX}/freeBusy", api.guard(api.freebusy), methods=["POST"]),
        Route(f"{PREFIX}/channels/stop", api.guard(api.stop), methods=["POST"]),
        Route(
            PREFIX + "/calendars/{calendar_id}/events/watch",
            api.guard(api.watch),
            methods=["POST"],
        ),
        Route(
            PREFIX + "/calendars/{calendar_id}/events",
            api.guard(api.events),
            methods=["GET", "POST"],
        ),
        Route(
            PREFIX + "/calendars/{calendar_id}/events/{event_id}",
            api.guard(api.event),
            methods=["GET", "PATCH", "PUT", "DELETE"],
        ),
    ]
    app = Starlette(routes=routes)
    app.state.google = state
    return app


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        raise ApiError(400, "parseError", "Parse Error") from None
    if not isinstance(body, dict):
        raise ApiError(400, "parseError", "Parse Error")
    return body


def _time(value: Any, name: str) -> datetime:
    if value is None:
        raise ApiError(400, "required", f"Missing {name} parameter.")
    try:
        return parse_rfc3339(value, name).astimezone(UTC)
    except BadTime:
        raise ApiError(400, "invalid", f"Invalid {name} value.") from None


class _Api:
    def __init__(self, state: GoogleSandboxState) -> None:
        self.state = state

    def guard(self, handler: Any) -> Any:
        """Record, inject faults, check the bearer token, turn ApiError into Google's body."""

        async def endpoint(request: Request) -> Response:
            state = self.state
            state.base_url = str(request.base_url).rstrip("/")
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raw = await request.body()
            with state.lock:
                state.requests.append((request.method, target))
                if raw:
                    try:
                        state.bodies.append((target, orjson.loads(raw)))
                    except orjson.JSONDecodeError:
                        state.bodies.append((target, raw))
            fault = state.faults.take(target)
            if fault is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(int(fault.retry_after))
                return error_response(ApiError(fault.status, fault.reason, fault.message), headers)
            auth = request.headers.get("authorization", "")
            token = auth[7:] if auth.lower().startswith("bearer ") else ""
            if not token or not state.token_valid(token):
                return error_response(
                    ApiError(
                        401,
                        "authError",
                        "Invalid Credentials",
                        location="Authorization",
                        locationType="header",
                    ),
                    {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                )
            try:
                return await handler(request)
            except ApiError as exc:
                return error_response(exc)

        return endpoint

    def _calendar(self, request: Request) -> str:
        calendar_id = request.path_params["calendar_id"]
        if calendar_id not in self.state.calendars:
            raise ApiError(404)
        return str(calendar_id)

    # --- OAuth ----------------------------------------------------------------------------
    async def token(self, request: Request) -> Response:
        # The token endpoint takes application/x-www-form-urlencoded, read without extras.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        state = self.state
        if form.get("client_id") != state.client_id or form.get("client_secret") != (
            state.client_secret
        ):
            body = {
                "error": "invalid_client",
                "error_description": "The OAuth client was not found.",
            }
            return JSONResponse(body, status_code=401)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != (
            state.refresh_token
        ):
            body = {
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            }
            return JSONResponse(body, status_code=400)
        with state.lock:
            state.token_grants += 1
        return JSONResponse(
            {
                "access_token": state.issue_token(),
                "expires_in": 3599,
                "scope": "https://www.googleapis.com/auth/calendar",
                "token_type": "Bearer",
            }
        )

    # --- freeBusy ---------------------------------------------------------------------------
    async def freebusy(self, request: Request) -> Response:
        body = await _json(request)
        start, end = _time(body.get("timeMin"), "timeMin"), _time(body.get("timeMax"), "timeMax")
        if end <= start:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
        calendars: dict[str, Any] = {}
        for item in body.get("items") or []:
            cid = str(item.get("id"))
            if cid not in self.state.calendars:
                calendars[cid] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            busy = self.state.busy(cid, start, end)
            calendars[cid] = {"busy": [{"start": rfc3339(b), "end": rfc3339(e)} for b, e in busy]}
        return JSONResponse(
            {
                "kind": "calendar#freeBusy",
                "timeMin": rfc3339(start),
                "timeMax": rfc3339(end),
                "calendars": calendars,
            }
        )

    # --- events -------------------------------------------------------------------------------
    async def events(self, request: Request) -> Response:
        cid = self._calendar(request)
        if request.method == "POST":
            return JSONResponse(self._insert(cid, await _json(request)))
        return JSONResponse(self._list(cid, request.query_params))

    def _insert(self, cid: str, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("start", "end"):
            value = body.get(key)
            if not isinstance(value, dict) or not (value.get("dateTime") or value.get("date")):
                raise ApiError(400, "required", f"Missing {key} time.")
        if "id" in body and body["id"] in self.state.events[cid]:
            raise ApiError(409)
        probe = {"start": body["start"], "end": body["end"]}
        try:
            begin, finish = self.state.event_span(cid, probe)
        except (BadTime, ValueError):
            raise ApiError(400, "invalid", "Invalid start or end time.") from None
        if finish <= begin:
            raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
        return self.state.store_event(cid, body)

    def _list(self, cid: str, params: Any) -> dict[str, Any]:
        state = self.state
        sync_token = params.get("syncToken")
        page = decode_token(params["pageToken"]) if params.get("pageToken") else {"o": 0}
        if page is None:
            raise ApiError(400, "invalid", "Invalid pageToken value.")
        try:
            size = min(int(params.get("maxResults", 250)), 2500)
        except ValueError:
            raise ApiError(400, "invalid", "Invalid maxResults value.") from None
        with state.lock:
            high = int(page.get("h", state.changes))
            events = state.events[cid]
            if sync_token:
                if params.get("timeMin") or params.get("timeMax"):
                    raise ApiError(
                        400,
                        "invalid",
                        "Sync token cannot be used together with timeMin or timeMax.",
                    )
                since = decode_token(sync_token)
                if since is None or since.get("c") != cid or since.get("g") != state.generation:
                    raise ApiError(
                        410,
                        "fullSyncRequired",
                        "Sync token is no longer valid, a full sync is required.",
                    )
                chosen = [
                    (state.seq[(cid, eid)], eid)
                    for eid in events
                    if since["s"] < state.seq[(cid, eid)] <= high
                ]
                ordered = [eid for _, eid in sorted(chosen)]
            else:
                start = _time(params["timeMin"], "timeMin") if params.get("timeMin") else None
                end = _time(params["timeMax"], "timeMax") if params.get("timeMax") else None
                deleted = params.get("showDeleted") == "true"
                spans = []
                for eid, event in events.items():
                    if state.seq[(cid, eid)] > high:
                        continue
                    if event.get("status") == "cancelled" and not deleted:
                        continue
                    begin, finish = state.event_span(cid, event)
                    if (start is None or finish > start) and (end is None or begin < end):
                        spans.append((begin, eid))
                ordered = [eid for _, eid in sorted(spans)]
            offset = int(page.get("o", 0))
            chunk = ordered[offset : offset + size]
            items = [self._shown(cid, eid, events[eid]) for eid in chunk]
            calendar = state.calendars[cid]
            body: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": f'"{high}"',
                "summary": calendar.summary,
                "description": "",
                "updated": rfc3339(state.clock()),
                "timeZone": calendar.time_zone,
                "accessRole": "owner",
                "defaultReminders": [],
                "items": items,
            }
            if offset + size < len(ordered):
                body["nextPageToken"] = encode_token({"o": offset + size, "h": high})
            else:
                body["nextSyncToken"] = encode_token({"c": cid, "s": high, "g": state.generation})
            return body

    def _shown(self, cid: str, eid: str, event: dict[str, Any]) -> dict[str, Any]:
        if (cid, eid) in self.state.tombstones:
            # Deleted events come back in incremental syncs with little more than their id.
            return {
                "kind": "calendar#event",
                "etag": event["etag"],
                "id": eid,
                "status": "cancelled",
            }
        return dict(event)

    async def event(self, request: Request) -> Response:
        cid = self._calendar(request)
        eid = request.path_params["event_id"]
        state = self.state
        with state.lock:
            event = state.events[cid].get(eid)
            gone = (cid, eid) in state.tombstones
        if event is None:
            raise ApiError(404)
        if request.method == "GET":
            return JSONResponse(self._shown(cid, eid, event))
        if gone:
            raise ApiError(410)
        if request.method == "DELETE":
            state.delete_event(cid, eid)
            return Response(status_code=204)
        changes = await _json(request)
        if request.method == "PUT":
            changes = {k: v for k, v in changes.items() if k not in ("id",)}
        return JSONResponse(state.patch_event(cid, eid, changes))

    # --- push channels ---------------------------------------------------------------------
    async def watch(self, request: Request) -> Response:
        cid = self._calendar(request)
        body = await _json(request)
        state = self.state
        if body.get("type") not in ("web_hook", "webhook"):
            raise ApiError(400, "invalid", "Invalid channel type.")
        if not body.get("id") or not body.get("address"):
            raise ApiError(400, "required", "Required")
        now_ms = int(time.time() * 1000)
        longest = now_ms + int(CHANNEL_TTL.total_seconds() * 1000)
        wanted = body.get("expiration")
        if (body.get("params") or {}).get("ttl"):
            wanted = now_ms + int(body["params"]["ttl"]) * 1000
        expiration = min(int(wanted), longest) if wanted else longest
        with state.lock:
            if body["id"] in state.channels:
                raise ApiError(400, "channelIdNotUnique", "Channel id not unique.")
            channel = Channel(
                id=str(body["id"]),
                resource_id=secrets.token_urlsafe(20),
                calendar_id=cid,
                address=str(body["address"]),
                token=body.get("token"),
                expiration_ms=expiration,
                resource_uri=f"{state.base_url}{PREFIX}/calendars/{cid}/events?alt=json",
            )
            state.channels[channel.id] = channel
        state.push(channel, "sync")
        answer = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": str(channel.expiration_ms),
        }
        if channel.token is not None:
            answer["token"] = channel.token
        return JSONResponse(answer)

    async def stop(self, request: Request) -> Response:
        body = await _json(request)
        state = self.state
        with state.lock:
            channel = state.channels.get(str(body.get("id")))
            if channel is None or channel.resource_id != body.get("resourceId"):
                raise ApiError(404, "notFound", f"Channel '{body.get('id')}' not found for project")
            del state.channels[channel.id]
        return Response(status_code=204)
