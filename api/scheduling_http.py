"""What the scheduling routers share: the caller as an Actor, the scheduling context, ETags
and If-Match, refusals as HTTP statuses, and publishing the GMED messages a change queued."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from api.deps import Principal, SettingsDep, require_roles
from hub.message_store import OUTBOUND
from hub.scheduling_context import scheduling_context
from scheduling.context import SchedulingContext
from scheduling.errors import (
    BulkRefused,
    Forbidden,
    InvalidInput,
    NotFound,
    RuleConflict,
    SchedulingError,
    StaleVersion,
    StateConflict,
)
from scheduling.outcome import Outcome
from scheduling.records import Actor

READ_ROLES = ("admin", "physician", "staff", "call_center")
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Physician = Annotated[Principal, Depends(require_roles("physician"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]

_ETAG = re.compile(r'^\s*(?:W/)?"(\d+)"\s*$')


def actor_of(principal: Principal) -> Actor:
    return Actor(
        name=principal.subject,
        physician_id=principal.physician_id,
        is_admin=principal.has("admin"),
    )


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(engine_of)]


def scheduling_of(request: Request, settings: SettingsDep) -> SchedulingContext:
    """The scheduling context of the app's settings, built once per app (again only if
    ``app.state.settings`` is replaced)."""
    state = request.app.state
    cached: tuple[object, SchedulingContext] | None = getattr(state, "scheduling", None)
    if cached is None or cached[0] is not settings:
        cached = (settings, scheduling_context(settings))
        state.scheduling = cached
    return cached[1]


SchedulingDep = Annotated[SchedulingContext, Depends(scheduling_of)]


def etag(version: int) -> str:
    return f'W/"{version}"'


def if_match(request: Request, required: bool = True) -> int | None:
    """The version named by If-Match: 428 when required and missing, 412 when unreadable."""
    header = request.headers.get("if-match")
    if header is None:
        if required:
            raise HTTPException(428, 'this change needs If-Match: W/"<version>" (from the ETag)')
        return None
    found = _ETAG.match(header)
    if found is None:
        raise HTTPException(412, f'If-Match {header!r} is not W/"<version>"')
    return int(found.group(1))


def tagged(data: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """The record as JSON with its version as a weak ETag."""
    return JSONResponse(data, status_code=status_code, headers={"ETag": etag(data["version"])})


def sent(request: Request, outcome: Outcome, status_code: int = 200) -> JSONResponse:
    """Publish the outcome's GMED messages on the bus, then answer with its data."""
    runtime = request.app.state.runtime
    if outcome.outbound_ids and runtime is not None:
        runtime.publish(OUTBOUND, outcome.outbound_ids)
    data = outcome.data
    if isinstance(data, dict) and "version" in data:
        return tagged(data, status_code)
    return JSONResponse(data, status_code=status_code)


_STATUS: list[tuple[type[SchedulingError], int]] = [
    (NotFound, 404),
    (Forbidden, 403),
    (StaleVersion, 412),
    (InvalidInput, 422),
    (RuleConflict, 409),
    (BulkRefused, 409),
    (StateConflict, 409),
]


def _render(exc: SchedulingError) -> Response:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 400)
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, RuleConflict):
        body["rule"] = "conflict"
        body["conflicts"] = [c.as_json() for c in exc.conflicts]
    elif isinstance(exc, StateConflict):
        body["rule"] = exc.rule
    elif isinstance(exc, BulkRefused):
        body["errors"] = exc.errors
    return JSONResponse(body, status_code=status)


def register_error_handlers(app: FastAPI) -> None:
    """Scheduling refusals become 403 / 404 / 409 / 412 / 422 with a JSON body."""

    async def handle(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SchedulingError)
        return _render(exc)

    app.add_exception_handler(SchedulingError, handle)
