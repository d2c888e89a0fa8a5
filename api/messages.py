"""Engine endpoints for integration engineers: the message store, raw bodies and replay."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from api.deps import IntegrationPrincipal
from hub import message_store
from hub.message_store import MessageFilter

router = APIRouter(prefix="/api/messages", tags=["messages"])


class MessageSummary(BaseModel):
    id: int
    channel: str
    direction: str
    message_type: str | None
    control_id: str | None
    sender: str | None
    peer: str | None
    status: str
    attempts: int
    last_error: str | None
    mapping_version: str | None
    received_at: datetime
    updated_at: datetime
    next_attempt_at: datetime | None
    finished_at: datetime | None


class MessagePage(BaseModel):
    total: int
    items: list[MessageSummary]


class ReplayRequest(BaseModel):
    """Either explicit ids or a filter; an empty filter is refused, to avoid replaying all."""

    ids: list[int] = Field(default_factory=list)
    status: str | None = None
    channel: str | None = None
    message_type: str | None = None
    error_contains: str | None = None


class ReplayResult(BaseModel):
    replayed: list[int]


def _filter(
    status: str | None,
    channel: str | None,
    message_type: str | None,
    error_contains: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MessageFilter:
    return MessageFilter(
        status=status,
        channel=channel,
        message_type=message_type,
        error_contains=error_contains,
        since=since,
        until=until,
    )


@router.get("", response_model=MessagePage)
def list_messages(
    request: Request,
    _: IntegrationPrincipal,
    status: str | None = None,
    channel: str | None = None,
    message_type: Annotated[str | None, Query(alias="type")] = None,
    error_contains: Annotated[str | None, Query(alias="error")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Any:
    flt = _filter(status, channel, message_type, error_contains, since, until)
    total, rows = message_store.list_messages(
        request.app.state.engine, flt, limit=limit, offset=offset
    )
    return {"total": total, "items": rows}


@router.get("/stats")
def stats(request: Request, _: IntegrationPrincipal) -> dict[str, int]:
    return message_store.counts_by_status(request.app.state.engine)


def _row(request: Request, message_id: int) -> Any:
    with request.app.state.engine.connect() as conn:
        row = message_store.get(conn, message_id)
    if row is None:
        raise HTTPException(404, f"no message {message_id}")
    return row


@router.get("/{message_id}", response_model=MessageSummary)
def get_message(request: Request, _: IntegrationPrincipal, message_id: int) -> Any:
    return dict(_row(request, message_id)._mapping)


@router.get("/{message_id}/raw")
def get_raw(request: Request, _: IntegrationPrincipal, message_id: int) -> Response:
    """The bytes exactly as received (HL7 is served as x-application/hl7-v2+er7)."""
    return Response(_row(request, message_id).raw, media_type="x-application/hl7-v2+er7")


@router.get("/{message_id}/ack")
def get_ack(request: Request, _: IntegrationPrincipal, message_id: int) -> Response:
    ack = _row(request, message_id).ack
    if ack is None:
        raise HTTPException(404, f"message {message_id} has no stored ACK")
    return Response(ack, media_type="x-application/hl7-v2+er7")


@router.post("/{message_id}/replay", response_model=ReplayResult)
def replay_one(request: Request, _: IntegrationPrincipal, message_id: int) -> Any:
    _row(request, message_id)
    return {"replayed": _replay(request, [message_id])}


@router.post("/replay", response_model=ReplayResult)
def replay_many(request: Request, _: IntegrationPrincipal, body: ReplayRequest) -> Any:
    ids = list(body.ids)
    if not ids:
        flt = _filter(body.status, body.channel, body.message_type, body.error_contains)
        if not flt.clauses():
            raise HTTPException(422, "give ids or at least one filter (status, channel, ...)")
        ids = message_store.matching_ids(request.app.state.engine, flt)
    return {"replayed": _replay(request, ids)}


def _replay(request: Request, ids: list[int]) -> list[int]:
    runtime = request.app.state.runtime
    if runtime is None:
        raise HTTPException(503, "this process has no bus connection; replay from the CLI")
    replayed: list[int] = runtime.replay(ids)
    return replayed
