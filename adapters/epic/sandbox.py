"""An Epic FHIR R4 server in miniature, for tests and demos.

Paths are Epic's: ``/oauth2/token`` at the server root and the FHIR API under
``/api/FHIR/R4/`` (the integration's ``base_url`` points there). It answers Schedule, Slot
and Appointment reads and searches with searchset Bundles and opaque ``next`` links (a Slot
search without ``status`` returns every status, ``status=free,busy`` either of them), the
IHE/Argonaut scheduling operations ``Appointment/$find`` and ``Appointment/$book`` (which
also cancels, given an Appointment with status ``cancelled``), OperationOutcome errors, and
the faults of ``EpicSandboxState.faults``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.epic.fhir import FHIR_JSON, outcome
from adapters.epic.sandbox_auth import OAuthError, bearer_ok, issue_token
from adapters.epic.sandbox_state import EpicSandboxState, SlotQuery

__all__ = ["FHIR_BASE", "EpicSandboxState", "create_sandbox"]

FHIR_BASE = "/api/FHIR/R4"
DEFAULT_COUNT = 50
MAX_COUNT = 1000
PAGE_TOKEN = "-pageToken"
SLOT_STATUSES = frozenset(
    {"free", "busy", "busy-unavailable", "busy-tentative", "entered-in-error"}
)

Handler = Callable[[Request, EpicSandboxState], Awaitable[Response]]


class FhirError(Exception):
    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics


def fhir_response(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=FHIR_JSON)


def _error(status: int, code: str, text: str, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps(outcome("error" if status < 500 else "fatal", code, text))
    return Response(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def _guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Faults first (as a gateway would answer them), then the bearer token, then the work."""

    async def endpoint(request: Request) -> Response:
        state: EpicSandboxState = request.app.state.sandbox
        path = request.url.path
        with state.lock:
            state.requests.append(f"{request.method} {path}?{request.url.query}")
        delay = state.faults.take_delay()
        if delay:
            await asyncio.sleep(delay)
        failure = state.faults.take_failure(path)
        if failure is not None:
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
            code = "throttled" if failure.status == 429 else "transient"
            return _error(failure.status, code, f"injected {failure.status}", headers)
        why = bearer_ok(state, request.headers.get("authorization"))
        if why is not None:
            challenge = f'Bearer error="invalid_token", error_description="{why}"'
            return _error(401, "login", why, {"WWW-Authenticate": challenge})
        try:
            return await handler(request, state)
        except FhirError as exc:
            return _error(exc.status, exc.code, exc.diagnostics)

    return endpoint


# ---------------------------------------------------------------------- OAuth


async def token(request: Request) -> Response:
    state: EpicSandboxState = request.app.state.sandbox
    failure = state.faults.take_failure(request.url.path)
    if failure is not None:
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else None
        return JSONResponse({"error": "temporarily_unavailable"}, failure.status, headers)
    token_url = str(request.url.replace(query=""))
    try:
        answer = issue_token(state, await request.body(), token_url)
    except OAuthError as exc:
        return JSONResponse(exc.body(), exc.status)
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


async def smart_configuration(request: Request) -> Response:
    root = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "token_endpoint": f"{root}/oauth2/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384"],
        }
    )


# ---------------------------------------------------------------------- paging


def _encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise FhirError(400, "invalid", f"{PAGE_TOKEN} {token!r} is not valid") from None
    if not isinstance(data, dict):
        raise FhirError(400, "invalid", f"{PAGE_TOKEN} {token!r} is not valid")
    return data


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}{FHIR_BASE}"


def _searchset(
    request: Request, rtype: str, resources: list[dict[str, Any]], next_token: str | None
) -> dict[str, Any]:
    base = _base(request)
    links = [{"relation": "self", "url": str(request.url)}]
    if next_token is not None:
        links.append({"relation": "next", "url": f"{base}/{rtype}?{PAGE_TOKEN}={next_token}"})
    entries: list[dict[str, Any]] = []
    for resource in resources:
        mode = "match" if resource["resourceType"] == rtype else "include"
        entries.append(
            {
                "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "search": {"mode": mode},
            }
        )
    if not resources:  # as Epic does: an empty searchset explains itself
        entries.append(
            {
                "resource": outcome("warning", "processing", "No resources were found."),
                "search": {"mode": "outcome"},
            }
        )
    return {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}


def _count(params: list[tuple[str, str]]) -> int:
    raw = next((v for k, v in params if k == "_count"), None)
    if raw is None:
        return DEFAULT_COUNT
    if not raw.isdigit() or int(raw) < 1:
        raise FhirError(400, "invalid", f"_count {raw!r} must be a positive integer")
    return min(int(raw), MAX_COUNT)


def _moment(value: str, name: str) -> datetime:
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise FhirError(400, "invalid", f"{name} {value!r} is not a date or dateTime") from None
    return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)


def _bounds(params: list[tuple[str, str]], name: str) -> tuple[datetime | None, datetime | None]:
    """``ge``/``gt`` and ``lt``/``le`` search prefixes as a half-open interval."""
    low = high = None
    for key, value in params:
        if key != name:
            continue
        prefix, rest = value[:2], value[2:]
        if prefix in ("ge", "gt"):
            low = _moment(rest, name) + (timedelta(seconds=1) if prefix == "gt" else timedelta())
        elif prefix in ("lt", "le"):
            high = _moment(rest, name) + (timedelta(days=1) if prefix == "le" else timedelta())
        elif prefix == "eq" or value[:1].isdigit():
            day = _moment(rest if prefix == "eq" else value, name)
            low, high = day, day + timedelta(days=1)
        else:
            raise FhirError(400, "not-supported", f"{name} prefix {prefix!r} is not supported")
    return low, high


def _ref_id(value: str) -> str:
    return value.rsplit("/", 1)[-1]


# ---------------------------------------------------------------------- reads and searches


_STORES = {
    "Schedule": "schedules",
    "Slot": "slots",
    "Appointment": "appointments",
    "Practitioner": "practitioners",
    "Location": "locations",
    "Patient": "patients",
}


def _store(state: EpicSandboxState, rtype: str) -> dict[str, dict[str, Any]]:
    name = _STORES.get(rtype)
    if name is None:
        raise FhirError(404, "not-supported", f"resource type {rtype} is not supported")
    store: dict[str, dict[str, Any]] = getattr(state, name)
    return store


async def read(request: Request, state: EpicSandboxState) -> Response:
    rtype, rid = request.path_params["rtype"], request.path_params["rid"]
    with state.lock:
        resource = _store(state, rtype).get(rid)
        if resource is None:
            raise FhirError(404, "not-found", f"{rtype}/{rid} was not found")
        return fhir_response(resource)


async def search(request: Request, state: EpicSandboxState) -> Response:
    rtype = request.path_params["rtype"]
    params = parse_qsl(request.url.query, keep_blank_values=True)
    page = 1
    token = next((v for k, v in params if k == PAGE_TOKEN), None)
    data: dict[str, Any] = {}
    if token is not None:
        data = _decode(token)
        params = [(k, v) for k, v in data.get("q", [])]
        page = int(data.get("p", 1))
    if rtype == "Slot":
        return _slot_search(request, state, params, page, data.get("a"))
    store = _store(state, rtype)
    with state.lock:
        found = [r for r in store.values() if _matches(rtype, r, params)]
    count, offset = _count(params), int(data.get("o", 0))
    chunk = found[offset : offset + count]
    more = offset + count < len(found)
    next_token = _encode({"q": params, "o": offset + count, "p": page + 1}) if more else None
    return fhir_response(_searchset(request, rtype, chunk, next_token))


def _matches(rtype: str, resource: dict[str, Any], params: list[tuple[str, str]]) -> bool:
    for key, value in params:
        if key == "_id" and resource["id"] not in value.split(","):
            return False
        if key == "actor" and _ref_id(value) not in {
            _ref_id(a.get("reference", "")) for a in resource.get("actor", [])
        }:
            return False
        if key in ("patient", "practitioner") and _ref_id(value) not in {
            _ref_id(p.get("actor", {}).get("reference", ""))
            for p in resource.get("participant", [])
        }:
            return False
        if key == "status" and resource.get("status") not in value.split(","):
            return False
    if rtype == "Appointment":
        low, high = _bounds(params, "date")
        start = resource.get("start")
        if (low or high) and not start:
            return False
        moment = _moment(start, "start") if start else None
        if moment and ((low and moment < low) or (high and moment >= high)):
            return False
    return True


def _slot_search(
    request: Request,
    state: EpicSandboxState,
    params: list[tuple[str, str]],
    page: int,
    after: list[str] | None,
) -> Response:
    schedule = next((v for k, v in params if k == "schedule"), None)
    if not schedule:
        raise FhirError(400, "required", "Slot search needs a schedule parameter")
    if state.faults.broken_page == page:
        raise FhirError(500, "exception", f"Slot search page {page} failed")
    low, high = _bounds(params, "start")
    query = SlotQuery(_ref_id(schedule), _slot_statuses(params), low, high)
    resume = (_moment(after[0], "after"), after[1]) if after else None
    slots, last = state.slot_page(query, _count(params), resume)
    resources = list(slots)
    if ("_include", "Slot:schedule") in params:
        with state.lock:
            included = state.schedules.get(query.schedule)
        if included is not None and slots:
            resources.append(included)
    next_token = None
    if last is not None:
        next_token = _encode(
            {"q": params, "a": [last[0].isoformat(), last[1]], "p": page + 1},
        )
    return fhir_response(_searchset(request, "Slot", resources, next_token))


def _slot_statuses(params: list[tuple[str, str]]) -> frozenset[str] | None:
    """``status`` as FHIR reads a token search: ``a,b`` is either, repeats must all hold,
    none at all is every status. Codes outside R4's SlotStatus are refused."""
    wanted: frozenset[str] | None = None
    for key, value in params:
        if key != "status":
            continue
        codes = frozenset(code.strip() for code in value.split(","))
        unknown = sorted(codes - SLOT_STATUSES)
        if unknown:
            raise FhirError(400, "invalid", f"Slot status {', '.join(unknown)} is not a code")
        wanted = codes if wanted is None else wanted & codes
    return wanted


# ---------------------------------------------------------------------- operations


def _parameters(body: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "structure", "the operation expects a Parameters resource")
    return {str(p.get("name")): p for p in body.get("parameter") or [] if isinstance(p, dict)}


async def _json(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise FhirError(400, "structure", "the body is not JSON") from None


def _value(param: dict[str, Any] | None) -> str | None:
    if param is None:
        return None
    for key in ("valueDateTime", "valueInstant", "valueDate", "valueString", "valueId"):
        if key in param:
            return str(param[key])
    ref = param.get("valueReference")
    return str(ref.get("reference")) if isinstance(ref, dict) else None


async def find(request: Request, state: EpicSandboxState) -> Response:
    """IHE $find: free slots as proposed Appointments that point at them."""
    params = _parameters(await _json(request))
    start, end = _value(params.get("start")), _value(params.get("end"))
    if not start or not end:
        raise FhirError(400, "required", "$find needs start and end")
    practitioner = _value(params.get("practitioner"))
    slots = state.free_slots_between(
        _moment(start, "start"),
        _moment(end, "end"),
        _ref_id(practitioner) if practitioner else None,
    )
    proposals = []
    with state.lock:
        for slot in slots:
            schedule = state.schedules[_ref_id(slot["schedule"]["reference"])]
            proposals.append(
                {
                    "resourceType": "Appointment",
                    "id": f"prop-{slot['id']}",
                    "status": "proposed",
                    "serviceType": slot.get("serviceType", schedule.get("serviceType", [])),
                    "start": slot["start"],
                    "end": slot["end"],
                    "slot": [{"reference": f"Slot/{slot['id']}"}],
                    "participant": [
                        {"actor": dict(a), "required": "required", "status": "needs-action"}
                        for a in schedule["actor"]
                    ],
                }
            )
    bundle = _searchset(request, "Appointment", proposals, None)
    if proposals:
        bundle["entry"].append(
            {
                "resource": outcome(
                    "information",
                    "informational",
                    "the appointment availability operation was successful",
                ),
                "search": {"mode": "outcome"},
            }
        )
    return fhir_response(bundle)


async def book(request: Request, state: EpicSandboxState) -> Response:
    """IHE $book: book a proposed Appointment's slot, or cancel a booked Appointment."""
    params = _parameters(await _json(request))
    appointment = (params.get("appointment-resource") or {}).get("resource")
    if appointment is None and "appointment-reference" in params:
        proposed = _ref_id(_value(params["appointment-reference"]) or "")
        appointment = {"status": "pending", "slot": [{"reference": proposed.removeprefix("prop-")}]}
    if not isinstance(appointment, dict):
        raise FhirError(400, "required", "$book needs appointment-resource or -reference")
    if appointment.get("status") == "cancelled":
        return _cancel(request, state, appointment)
    slot_ids = [_ref_id(s.get("reference", "")) for s in appointment.get("slot") or []]
    if len(slot_ids) != 1:
        raise FhirError(422, "business-rule", "the Appointment must reference exactly one Slot")
    patient = _patient(state, appointment, params)
    extra = {
        k: appointment[k]
        for k in ("appointmentType", "reasonCode", "comment", "serviceType")
        if k in appointment
    }
    try:
        booked = state.book(slot_ids[0], patient, extra)
    except KeyError:
        raise FhirError(409, "conflict", f"Slot {slot_ids[0]} no longer exists") from None
    except ValueError as exc:
        raise FhirError(409, "conflict", f"Slot {slot_ids[0]} is not free ({exc})") from None
    return fhir_response(_book_bundle(request, booked))


def _patient(
    state: EpicSandboxState, appointment: dict[str, Any], params: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    refs = [_value(params.get("patient-reference"))]
    for participant in appointment.get("participant") or []:
        actor = participant.get("actor") or {}
        refs.append(actor.get("reference"))
    for ref in refs:
        if ref and ref.split("/")[-2:-1] == ["Patient"]:
            with state.lock:
                patient = state.patients.get(_ref_id(ref))
            if patient is None:
                raise FhirError(422, "not-found", f"{ref} is not a known patient")
            return {"reference": f"Patient/{patient['id']}", "display": patient["name"][0]["text"]}
    raise FhirError(422, "required", "a Patient participant is required to book")


def _cancel(request: Request, state: EpicSandboxState, appointment: dict[str, Any]) -> Response:
    appt_id = appointment.get("id")
    if not appt_id:
        raise FhirError(422, "required", "a cancellation names the Appointment id")
    try:
        cancelled = state.cancel(appt_id, appointment.get("cancelationReason"))
    except KeyError:
        raise FhirError(404, "not-found", f"Appointment/{appt_id} was not found") from None
    return fhir_response(_book_bundle(request, cancelled))


def _book_bundle(request: Request, appointment: dict[str, Any]) -> dict[str, Any]:
    base = _base(request)
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {
                "fullUrl": f"{base}/Appointment/{appointment['id']}",
                "resource": appointment,
                "search": {"mode": "match"},
            },
            {
                "resource": outcome("information", "informational", "the operation succeeded"),
                "search": {"mode": "outcome"},
            },
        ],
    }


def create_sandbox(state: EpicSandboxState | None = None) -> Starlette:
    """The sandbox ASGI app; ``app.state.sandbox`` is the state tests seed and fault."""
    app = Starlette(
        routes=[
            Route("/oauth2/token", token, methods=["POST"]),
            Route(f"{FHIR_BASE}/.well-known/smart-configuration", smart_configuration),
            Route(f"{FHIR_BASE}/Appointment/$find", _guarded(find), methods=["POST"]),
            Route(f"{FHIR_BASE}/Appointment/$book", _guarded(book), methods=["POST"]),
            Route(f"{FHIR_BASE}/{{rtype}}/{{rid}}", _guarded(read)),
            Route(f"{FHIR_BASE}/{{rtype}}", _guarded(search)),
        ]
    )
    app.state.sandbox = state or EpicSandboxState()
    return app
