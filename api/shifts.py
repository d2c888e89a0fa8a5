"""Shifts: admins create, edit, move, delete (one or in bulk); physicians read theirs, see
the open shifts they could take, drop, ask to pick up, and propose swaps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.scheduling_http import (
    Admin,
    EngineDep,
    Physician,
    Reader,
    SchedulingDep,
    actor_of,
    if_match,
    sent,
    tagged,
)
from scheduling.requests import drop_shift, propose_swap, request_pickup
from scheduling.shifts import get_shift, list_shifts, open_shifts_for, run_changes

router = APIRouter(prefix="/api", tags=["scheduling"])


class Bulk(BaseModel):
    items: list[dict[str, Any]]


class Pickup(BaseModel):
    note: str | None = None


class Swap(BaseModel):
    counterparty_shift_id: int
    note: str | None = None


@router.get("/shifts")
def shifts_list(
    engine: EngineDep,
    principal: Reader,
    roster_id: int | None = None,
    physician_id: int | None = None,
    status: str | None = None,
    start_from: str | None = None,
    start_to: str | None = None,
) -> list[dict[str, Any]]:
    return list_shifts(
        engine,
        actor_of(principal),
        roster_id=roster_id,
        physician_id=physician_id,
        status=status,
        start_from=start_from,
        start_to=start_to,
    )


@router.get("/me/shifts")
def my_shifts(engine: EngineDep, physician: Physician) -> list[dict[str, Any]]:
    actor = actor_of(physician)
    return list_shifts(engine, actor, physician_id=actor.require_physician())


@router.get("/shifts/open")
def open_shifts(
    engine: EngineDep, scheduling: SchedulingDep, physician: Physician
) -> list[dict[str, Any]]:
    return open_shifts_for(engine, scheduling, actor_of(physician))


@router.post("/shifts", status_code=201)
def shifts_create(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    admin: Admin,
    body: dict[str, Any],
) -> JSONResponse:
    outcome = run_changes(engine, scheduling, actor_of(admin), [{**body, "op": "create"}])
    return sent(request, outcome, 201)


@router.post("/shifts/bulk")
def shifts_bulk(
    request: Request, engine: EngineDep, scheduling: SchedulingDep, admin: Admin, body: Bulk
) -> JSONResponse:
    """All-or-nothing: ``items`` of ``{"op": "create" | "edit" | "delete", "id", "version",
    ...}``; a refusal lists every failing item (409, ``errors``)."""
    items = body.items if len(body.items) != 1 else [*body.items]
    outcome = run_changes(engine, scheduling, actor_of(admin), items)
    if len(items) == 1:
        outcome.data = [outcome.data]
    return sent(request, outcome)


@router.get("/shifts/{shift_id}")
def shifts_get(engine: EngineDep, principal: Reader, shift_id: int) -> JSONResponse:
    return tagged(get_shift(engine, actor_of(principal), shift_id))


@router.patch("/shifts/{shift_id}")
def shifts_edit(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    admin: Admin,
    shift_id: int,
    body: dict[str, Any],
) -> JSONResponse:
    """Edit or move: ``physician_id`` (null: open), ``date`` or ``start`` + ``end``,
    ``shift_type_id``."""
    version = if_match(request)
    item = {**body, "op": "edit", "id": shift_id, "version": version}
    return sent(request, run_changes(engine, scheduling, actor_of(admin), [item]))


@router.delete("/shifts/{shift_id}")
def shifts_delete(
    request: Request, engine: EngineDep, scheduling: SchedulingDep, admin: Admin, shift_id: int
) -> JSONResponse:
    version = if_match(request)
    item = {"op": "delete", "id": shift_id, "version": version}
    return sent(request, run_changes(engine, scheduling, actor_of(admin), [item]))


@router.post("/shifts/{shift_id}/drop")
def shifts_drop(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    physician: Physician,
    shift_id: int,
) -> JSONResponse:
    version = if_match(request, required=False)
    outcome = drop_shift(engine, scheduling, actor_of(physician), shift_id, version)
    return sent(request, outcome)


@router.post("/shifts/{shift_id}/pickup", status_code=201)
def shifts_pickup(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    physician: Physician,
    shift_id: int,
    body: Pickup | None = None,
) -> JSONResponse:
    note = body.note if body else None
    outcome = request_pickup(engine, scheduling, actor_of(physician), shift_id, note)
    return sent(request, outcome, 201)


@router.post("/shifts/{shift_id}/swap", status_code=201)
def shifts_swap(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    physician: Physician,
    shift_id: int,
    body: Swap,
) -> JSONResponse:
    outcome = propose_swap(
        engine, scheduling, actor_of(physician), shift_id, body.counterparty_shift_id, body.note
    )
    return sent(request, outcome, 201)
