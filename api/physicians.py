"""Physicians: admins manage them; a physician reads their own record."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.scheduling_http import Admin, EngineDep, Reader, if_match, tagged
from scheduling.errors import Forbidden
from scheduling.physicians import (
    create_physician,
    get_physician,
    list_physicians,
    update_physician,
)

router = APIRouter(prefix="/api/physicians", tags=["scheduling"])


@router.get("")
def physicians_list(engine: EngineDep, principal: Reader, active: bool = False) -> Any:
    if principal.roles == frozenset({"physician"}) or (
        principal.has("physician") and not principal.has("admin", "staff", "call_center")
    ):
        own = principal.physician_id
        return [p for p in list_physicians(engine, active) if p["id"] == own]
    return list_physicians(engine, active)


@router.post("", status_code=201)
def physicians_create(engine: EngineDep, _admin: Admin, body: dict[str, Any]) -> JSONResponse:
    return tagged(create_physician(engine, body), 201)


@router.get("/{physician_id}")
def physicians_get(engine: EngineDep, principal: Reader, physician_id: int) -> JSONResponse:
    if not principal.has("admin", "staff", "call_center") and (
        principal.physician_id != physician_id
    ):
        raise Forbidden(f"physician {physician_id} is not you")
    return tagged(get_physician(engine, physician_id))


@router.patch("/{physician_id}")
def physicians_update(
    request: Request, engine: EngineDep, _admin: Admin, physician_id: int, body: dict[str, Any]
) -> JSONResponse:
    version = if_match(request)
    assert version is not None
    return tagged(update_physician(engine, physician_id, body, version))
