"""Shift requests: the counterparty accepts or declines a swap, the requester withdraws, an
admin approves or rejects. Every transition needs If-Match (the request's version)."""

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
from scheduling.requests import (
    answer_swap,
    decide_request,
    get_request,
    list_requests,
    withdraw_request,
)

router = APIRouter(prefix="/api/shift-requests", tags=["scheduling"])


class Decision(BaseModel):
    note: str | None = None


@router.get("")
def requests_list(
    engine: EngineDep, principal: Reader, status: str | None = None
) -> list[dict[str, Any]]:
    return list_requests(engine, actor_of(principal), status)


@router.get("/{request_id}")
def requests_get(engine: EngineDep, principal: Reader, request_id: int) -> JSONResponse:
    return tagged(get_request(engine, actor_of(principal), request_id))


def _answer(
    request: Request, engine: Any, scheduling: Any, physician: Any, request_id: int, accept: bool
) -> JSONResponse:
    outcome = answer_swap(
        engine, scheduling, actor_of(physician), request_id, accept, if_match(request)
    )
    return sent(request, outcome)


@router.post("/{request_id}/accept")
def requests_accept(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    physician: Physician,
    request_id: int,
) -> JSONResponse:
    return _answer(request, engine, scheduling, physician, request_id, True)


@router.post("/{request_id}/decline")
def requests_decline(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    physician: Physician,
    request_id: int,
) -> JSONResponse:
    return _answer(request, engine, scheduling, physician, request_id, False)


@router.post("/{request_id}/withdraw")
def requests_withdraw(
    request: Request, engine: EngineDep, physician: Physician, request_id: int
) -> JSONResponse:
    outcome = withdraw_request(engine, actor_of(physician), request_id, if_match(request))
    return sent(request, outcome)


def _decide(
    request: Request,
    engine: Any,
    scheduling: Any,
    admin: Any,
    request_id: int,
    approve: bool,
    body: Decision | None,
) -> JSONResponse:
    version = if_match(request)
    assert version is not None
    outcome = decide_request(
        engine,
        scheduling,
        actor_of(admin),
        request_id,
        approve,
        version,
        body.note if body else None,
    )
    return sent(request, outcome)


@router.post("/{request_id}/approve")
def requests_approve(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    admin: Admin,
    request_id: int,
    body: Decision | None = None,
) -> JSONResponse:
    return _decide(request, engine, scheduling, admin, request_id, True, body)


@router.post("/{request_id}/reject")
def requests_reject(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    admin: Admin,
    request_id: int,
    body: Decision | None = None,
) -> JSONResponse:
    return _decide(request, engine, scheduling, admin, request_id, False, body)
