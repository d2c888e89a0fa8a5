"""Shift types: admins define them; everyone who reads the roster may read them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.scheduling_http import Admin, EngineDep, Reader, if_match, tagged
from scheduling.shift_types import (
    create_shift_type,
    get_shift_type,
    list_shift_types,
    update_shift_type,
)

router = APIRouter(prefix="/api/shift-types", tags=["scheduling"])


@router.get("")
def shift_types_list(engine: EngineDep, _reader: Reader) -> list[dict[str, Any]]:
    return list_shift_types(engine)


@router.post("", status_code=201)
def shift_types_create(engine: EngineDep, _admin: Admin, body: dict[str, Any]) -> JSONResponse:
    return tagged(create_shift_type(engine, body), 201)


@router.get("/{type_id}")
def shift_types_get(engine: EngineDep, _reader: Reader, type_id: int) -> JSONResponse:
    return tagged(get_shift_type(engine, type_id))


@router.patch("/{type_id}")
def shift_types_update(
    request: Request, engine: EngineDep, _admin: Admin, type_id: int, body: dict[str, Any]
) -> JSONResponse:
    version = if_match(request)
    assert version is not None
    return tagged(update_shift_type(engine, type_id, body, version))
