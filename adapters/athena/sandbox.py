"""An athenahealth REST v1 sandbox: the paths, paging, auth and error bodies the client meets.

Paged lists answer ``totalcount`` and, while more remain, a ``next`` link relative to the
server root (``/v1/195900/departments?limit=1&offset=1``, as athena sends it). Errors are
athena's JSON (``{"error": ..., "detailedmessage": ...}``). The changed feed hands out
pending changes and marks them processed as it does (``leaveunprocessed`` keeps them), so its
``next`` link asks again from the start of what is left. With ``showprocessedstartdatetime``
(and ``showprocessedenddatetime``, default now; 'MM/DD/YYYY HH24:MI:SS', Eastern) it lists
instead the changes it already handed out in that window, paged by offset, marking nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.athena.sandbox_state import (
    DATE_FORMAT,
    STAMP_FORMAT,
    SUBSCRIPTION_EVENTS,
    Appointment,
    AthenaSandboxState,
    SandboxRefusal,
    appointment_json,
    eastern_now,
    open_json,
)

__all__ = ["AthenaSandboxState", "create_sandbox"]

Handler = Callable[[Request, AthenaSandboxState], Awaitable[Response]]


class _Failed(Exception):
    def __init__(self, status: int, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.body = status, {"error": error, **extra}


def create_sandbox(state: AthenaSandboxState | None = None) -> Starlette:
    """The ASGI app; ``app.state.athena`` is the state it serves (seed it, inject faults)."""
    athena = state if state is not None else AthenaSandboxState()

    def route(path: str, handler: Handler, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            return await _guarded(request, athena, handler)

        return Route(path, endpoint, methods=methods)

    v1 = "/v1/{practiceid}"
    app = Starlette(
        routes=[
            route("/oauth2/v1/token", _token, ["POST"]),
            route(f"{v1}/departments", _departments, ["GET"]),
            route(f"{v1}/providers", _providers, ["GET"]),
            route(f"{v1}/appointmenttypes", _appointment_types, ["GET"]),
            route(f"{v1}/appointments/open", _open, ["GET"]),
            route(f"{v1}/appointments/booked", _booked, ["GET"]),
            route(f"{v1}/appointments/changed", _changed, ["GET"]),
            route(
                f"{v1}/appointments/changed/subscription", _subscription, ["GET", "POST", "DELETE"]
            ),
            route(f"{v1}/appointments/{{appointmentid:int}}", _appointment, ["GET", "PUT"]),
            route(f"{v1}/appointments/{{appointmentid:int}}/cancel", _cancel, ["PUT"]),
            route(f"{v1}/appointments/{{appointmentid:int}}/reschedule", _reschedule, ["PUT"]),
        ]
    )
    app.state.athena = athena
    return app


async def _guarded(request: Request, state: AthenaSandboxState, handler: Handler) -> Response:
    path = request.url.path
    state.record(request.method, path, dict(request.query_params))
    if state.faults.slow_seconds:
        await asyncio.sleep(state.faults.slow_seconds)
    failure = state.faults.take(path)
    if failure is not None:
        headers = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = str(int(failure.retry_after))
        message = failure.error or _STATUS_TEXT.get(failure.status, "Error")
        return JSONResponse({"error": message}, failure.status, headers=headers)
    if state.over_rate_limit():
        return JSONResponse(
            {"error": "Rate limit exceeded", "detailedmessage": "Too many requests per second."},
            429,
            headers={"Retry-After": str(state.rate_retry_after)},
        )
    try:
        if path.startswith("/v1/"):
            _authorize(request, state)
        return await handler(request, state)
    except _Failed as failed:
        return JSONResponse(failed.body, failed.status)
    except SandboxRefusal as refusal:
        return JSONResponse({"error": str(refusal)}, refusal.status)


_STATUS_TEXT = {
    429: "Rate limit exceeded",
    500: "An internal error occurred.",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}


def _authorize(request: Request, state: AthenaSandboxState) -> None:
    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else ""
    if not token or not state.token_valid(token):
        raise _Failed(
            401, "Unauthorized", detailedmessage="The access token is missing, invalid or expired."
        )
    if request.path_params.get("practiceid") != state.practiceid:
        raise _Failed(403, "Practice ID is not authorized for this client.")


async def _form(request: Request) -> dict[str, str]:
    """athena takes write parameters as a form body or in the query; both are read."""
    fields = dict(request.query_params)
    body = (await request.body()).decode()
    fields.update(parse_qsl(body, keep_blank_values=True))
    return fields


async def _token(request: Request, state: AthenaSandboxState) -> Response:
    header = request.headers.get("authorization", "")
    try:
        client_id, _, secret = (
            base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError):
        client_id = secret = ""
    if not header.startswith("Basic ") or state.clients.get(client_id) != secret:
        return JSONResponse({"error": "invalid_client"}, 401)
    form = await _form(request)
    if form.get("grant_type") != "client_credentials":
        return JSONResponse({"error": "unsupported_grant_type"}, 400)
    if not form.get("scope"):
        return JSONResponse({"error": "invalid_scope"}, 400)
    return JSONResponse(
        {
            "access_token": state.issue_token(),
            "token_type": "Bearer",
            "expires_in": str(state.token_lifetime),
            "scope": form["scope"],
        }
    )


def _paged(request: Request, state: AthenaSandboxState, key: str, items: list[Any]) -> Response:
    query = dict(request.query_params)
    offset, limit = _int(query, "offset", 0), _int(query, "limit", state.default_limit)
    if limit <= 0:
        raise _Failed(400, "The limit must be a positive number.")
    failure = state.faults.page_failure(request.url.path, offset, limit)
    if failure is not None:
        return JSONResponse({"error": failure.error}, failure.status)
    body: dict[str, Any] = {"totalcount": len(items), key: items[offset : offset + limit]}
    if offset + limit < len(items):
        body["next"] = _link(request, {**query, "offset": offset + limit, "limit": limit})
    if offset > 0:
        body["previous"] = _link(
            request, {**query, "offset": max(0, offset - limit), "limit": limit}
        )
    return JSONResponse(body)


def _link(request: Request, query: dict[str, Any]) -> str:
    return f"{request.url.path}?{urlencode(query)}"


def _int(query: dict[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _Failed(400, f"The {name} must be a number.") from None


def _date(query: dict[str, str], name: str, required: bool) -> date | None:
    value = query.get(name)
    if not value:
        if required:
            raise _Failed(400, "Additional fields are required.", missingfields=[name])
        return None
    try:
        return datetime.strptime(value, DATE_FORMAT).date()
    except ValueError:
        raise _Failed(400, f"The {name} is invalid ({value}); use mm/dd/yyyy.") from None


def _moment(query: dict[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return datetime.strptime(value, STAMP_FORMAT)
    except ValueError:
        raise _Failed(400, f"The {name} is invalid ({value}); use mm/dd/yyyy hh24:mi:ss.") from None


def _ids(query: dict[str, str], name: str) -> set[str] | None:
    value = query.get(name)
    return {part.strip() for part in value.split(",") if part.strip()} if value else None


def _within(
    item: Appointment, query: dict[str, str], first: date | None, last: date | None
) -> bool:
    departments, providers = _ids(query, "departmentid"), _ids(query, "providerid")
    kinds = _ids(query, "appointmenttypeid")
    return (
        (departments is None or item.departmentid in departments)
        and (providers is None or str(item.providerid) in providers)
        and (kinds is None or item.appointmenttypeid in kinds)
        and (first is None or item.day >= first)
        and (last is None or item.day <= last)
    )


def _ordered(items: list[Appointment]) -> list[Appointment]:
    return sorted(items, key=lambda a: (a.day, a.starttime, a.appointmentid))


async def _departments(request: Request, state: AthenaSandboxState) -> Response:
    with state.lock:
        items = [
            {
                "departmentid": d.departmentid,
                "name": d.name,
                "patientdepartmentname": d.patientdepartmentname,
                "timezonename": d.timezonename,
                "timezone": d.timezone,
                "timezoneoffset": d.timezone,
                "address": d.address,
                "city": d.city,
                "state": d.state,
                "zip": d.zip,
                "phone": d.phone,
                "placeofservicefacility": "false",
                "clinicals": "ON",
            }
            for d in sorted(state.departments.values(), key=lambda d: int(d.departmentid))
        ]
    return _paged(request, state, "departments", items)


async def _providers(request: Request, state: AthenaSandboxState) -> Response:
    with state.lock:
        items = [
            {
                "providerid": p.providerid,
                "firstname": p.firstname,
                "lastname": p.lastname,
                "displayname": f"{p.firstname} {p.lastname}, {p.providertype}",
                "providertype": p.providertype,
                "specialty": p.specialty,
                "sex": p.sex,
                "entitytype": "Person",
                "billable": True,
                **({"npi": p.npi} if p.npi else {}),
            }
            for p in sorted(state.providers.values(), key=lambda p: p.providerid)
        ]
    return _paged(request, state, "providers", items)


async def _appointment_types(request: Request, state: AthenaSandboxState) -> Response:
    with state.lock:
        items = [
            {
                "appointmenttypeid": t.appointmenttypeid,
                "name": t.name,
                "shortname": t.shortname,
                "duration": str(t.duration),
                "patientdisplayname": t.name,
                "generic": "false",
                "patient": "true",
                "templatetypeonly": "false",
            }
            for t in state.appointment_types.values()
        ]
    return _paged(request, state, "appointmenttypes", items)


async def _open(request: Request, state: AthenaSandboxState) -> Response:
    query = dict(request.query_params)
    if not query.get("departmentid"):
        raise _Failed(400, "Additional fields are required.", missingfields=["departmentid"])
    first, last = _date(query, "startdate", False), _date(query, "enddate", False)
    with state.lock:
        chosen = [
            a
            for a in state.appointments.values()
            if a.status == "o" and _within(a, query, first, last)
        ]
        items = [open_json(a, state.appointment_types) for a in _ordered(chosen)]
    return _paged(request, state, "appointments", items)


async def _booked(request: Request, state: AthenaSandboxState) -> Response:
    query = dict(request.query_params)
    first, last = _date(query, "startdate", True), _date(query, "enddate", True)
    statuses = {"f", "2", "3", "4"} | ({"x"} if query.get("showcancelled") == "true" else set())
    with state.lock:
        chosen = [
            a
            for a in state.appointments.values()
            if a.status in statuses and _within(a, query, first, last)
        ]
        items = [appointment_json(a, state.appointment_types) for a in _ordered(chosen)]
    return _paged(request, state, "appointments", items)


async def _changed(request: Request, state: AthenaSandboxState) -> Response:
    if not state.subscribed:
        raise _Failed(
            403,
            "There is no active subscription for appointments.",
            detailedmessage="Subscribe with POST /appointments/changed/subscription first.",
        )
    query = dict(request.query_params)
    start = _moment(query, "showprocessedstartdatetime")
    end = _moment(query, "showprocessedenddatetime")
    if end is not None and start is None:
        raise _Failed(
            400, "Additional fields are required.", missingfields=["showprocessedstartdatetime"]
        )
    if start is not None:
        replayed = state.processed_changes(start, end or eastern_now())
        with state.lock:
            items = [appointment_json(a, state.appointment_types) for a in replayed]
        return _paged(request, state, "appointments", items)
    limit = _int(query, "limit", state.default_limit)
    taken, pending = state.take_changes(limit, keep=query.get("leaveunprocessed") == "true")
    with state.lock:
        body: dict[str, Any] = {
            "totalcount": pending,
            "appointments": [appointment_json(a, state.appointment_types) for a in taken],
        }
    if pending > len(taken):
        body["next"] = _link(request, {k: v for k, v in query.items() if k != "offset"})
    return JSONResponse(body)


async def _subscription(request: Request, state: AthenaSandboxState) -> Response:
    if request.method == "POST":
        state.subscribed = True
        return JSONResponse({"success": "true"})
    if request.method == "DELETE":
        state.subscribed = False
        return JSONResponse({"success": "true"})
    if not state.subscribed:
        return JSONResponse({"status": "INACTIVE"})
    return JSONResponse(
        {"status": "ACTIVE", "subscriptions": [{"eventname": e} for e in SUBSCRIPTION_EVENTS]}
    )


def _existing(state: AthenaSandboxState, appointmentid: int) -> Appointment:
    found = state.appointments.get(appointmentid)
    if found is None:
        raise _Failed(404, "The appointment ID is invalid.")
    return found


async def _appointment(request: Request, state: AthenaSandboxState) -> Response:
    appointmentid = request.path_params["appointmentid"]
    if request.method == "GET":
        with state.lock:
            found = _existing(state, appointmentid)
            return JSONResponse([appointment_json(found, state.appointment_types)])
    form = await _form(request)
    if not form.get("patientid"):
        raise _Failed(400, "Additional fields are required.", missingfields=["patientid"])
    with state.lock:
        _existing(state, appointmentid)
        booked = state.book(appointmentid, form["patientid"], form.get("appointmenttypeid"))
        return JSONResponse([appointment_json(booked, state.appointment_types)])


async def _cancel(request: Request, state: AthenaSandboxState) -> Response:
    form = await _form(request)
    missing = [name for name in ("patientid",) if not form.get(name)]
    if missing:
        raise _Failed(400, "Additional fields are required.", missingfields=missing)
    state.cancel(
        request.path_params["appointmentid"], form["patientid"], form.get("cancellationreason", "")
    )
    return JSONResponse({"status": "x"})


async def _reschedule(request: Request, state: AthenaSandboxState) -> Response:
    form = await _form(request)
    missing = [name for name in ("patientid", "newappointmentid") if not form.get(name)]
    if missing:
        raise _Failed(400, "Additional fields are required.", missingfields=missing)
    try:
        new_id = int(form["newappointmentid"])
    except ValueError:
        raise _Failed(400, "The new appointment ID is invalid.") from None
    with state.lock:
        moved = state.reschedule(request.path_params["appointmentid"], new_id, form["patientid"])
        return JSONResponse([appointment_json(moved, state.appointment_types)])
