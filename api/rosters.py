"""Rosters (draft, publish), the conflict rules, and the roster event log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.scheduling_http import (
    Admin,
    EngineDep,
    Reader,
    SchedulingDep,
    actor_of,
    etag,
    if_match,
    sent,
    tagged,
)
from scheduling.publish import publish_roster
from scheduling.roster_events import events_after
from scheduling.rosters import create_roster, get_roster, list_rosters
from scheduling.rules import load_rules, update_rules

router = APIRouter(prefix="/api", tags=["scheduling"])


class NewRoster(BaseModel):
    name: str
    period_start: str
    period_end: str


@router.get("/rosters")
def rosters_list(engine: EngineDep, principal: Reader) -> list[dict[str, Any]]:
    return list_rosters(engine, include_drafts=principal.has("admin"))


@router.post("/rosters", status_code=201)
def rosters_create(engine: EngineDep, admin: Admin, body: NewRoster) -> JSONResponse:
    roster = create_roster(engine, actor_of(admin), body.name, body.period_start, body.period_end)
    return tagged(roster, 201)


@router.get("/rosters/{roster_id}")
def rosters_get(engine: EngineDep, principal: Reader, roster_id: int) -> JSONResponse:
    return tagged(get_roster(engine, roster_id, include_drafts=principal.has("admin")))


@router.post("/rosters/{roster_id}/publish")
def rosters_publish(
    request: Request, engine: EngineDep, scheduling: SchedulingDep, admin: Admin, roster_id: int
) -> JSONResponse:
    version = if_match(request)
    assert version is not None
    outcome = publish_roster(engine, scheduling, actor_of(admin), roster_id, version)
    response = sent(request, outcome)
    response.headers["X-Outbound-Messages"] = ",".join(map(str, outcome.outbound_ids))
    return response


@router.get("/roster-rules")
def rules_get(engine: EngineDep, scheduling: SchedulingDep, _reader: Reader) -> JSONResponse:
    with engine.connect() as conn:
        rules = load_rules(conn, scheduling.default_rules)
    return JSONResponse(rules.as_json(), headers={"ETag": etag(rules.version)})


@router.patch("/roster-rules")
def rules_update(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    admin: Admin,
    body: dict[str, Any],
) -> JSONResponse:
    version = if_match(request)
    assert version is not None
    body.pop("version", None)
    rules = update_rules(
        engine, scheduling.default_rules, body, expected_version=version, actor=admin.subject
    )
    return JSONResponse(rules.as_json(), headers={"ETag": etag(rules.version)})


@router.get("/roster-events")
def roster_events_list(
    engine: EngineDep, _admin: Admin, after: int = 0, limit: int = 500
) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return events_after(conn, after, min(max(limit, 1), 1000))
