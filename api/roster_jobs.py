"""Roster generation as a job: start it (202 at once), follow its progress, stop it.

Admin only, like every roster write. The job runs on a thread of this API process (one
runner per app, created with the first job and stopped with the app); reads and stops go
through the database, so any API process answers for any job.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from api.scheduling_http import Admin, EngineDep, SchedulingDep, actor_of
from hub.roster_jobs import RosterJobRunner
from scheduling.context import SchedulingContext
from scheduling.rostering.jobs import get_job, list_jobs, parse_request, request_stop

_RUNNER_LOCK = threading.Lock()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    runner: RosterJobRunner | None = getattr(app.state, "roster_job_runner", None)
    if runner is not None:  # stopping keeps each job's best roster: it may take a while
        await asyncio.to_thread(runner.close)


router = APIRouter(prefix="/api", tags=["scheduling"], lifespan=_lifespan)


class CoverageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="Shift type code.")
    required: int = Field(ge=0, description="Physicians wanted on each of the weekdays.")
    weekdays: list[int] | None = Field(None, description="0 Monday .. 6 Sunday; default all.")
    under_weight: int = Field(100, ge=0, description="Cost of each physician short.")
    over_weight: int = Field(20, ge=0, description="Cost of each physician too many.")


class WishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    physician_id: int
    day: date
    code: str | None = Field(None, description="Shift type; null with on=false: the day off.")
    on: bool = False
    weight: int = Field(10, ge=0)


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    coverage: list[CoverageIn] = Field(min_length=1)
    time_limit: float = Field(description="Seconds of solving, 1 to 600.")
    options: dict[str, Any] | None = Field(
        None, description="GenerationOptions fields (limits and weights)."
    )
    wishes: list[WishIn] = Field(default_factory=list)


def runner_of(app: FastAPI, engine: Engine, context: SchedulingContext) -> RosterJobRunner:
    """The app's runner, started with the first job (it fails jobs dead processes left)."""
    with _RUNNER_LOCK:
        runner: RosterJobRunner | None = getattr(app.state, "roster_job_runner", None)
        if runner is None:
            runner = RosterJobRunner(engine, context).start()
            app.state.roster_job_runner = runner
    return runner


@router.post("/rosters/{roster_id}/generate", status_code=202)
def generate(
    request: Request,
    engine: EngineDep,
    scheduling: SchedulingDep,
    admin: Admin,
    roster_id: int,
    body: GenerateIn,
) -> JSONResponse:
    """Start generating the draft; 202 with the job (Location: where to follow it). 409 for
    a published roster or a job already queued or running on it, 422 for bad input."""
    generation = parse_request(body.model_dump(mode="json", exclude_unset=True))
    runner = runner_of(request.app, engine, scheduling)
    job = runner.submit(actor_of(admin), roster_id, generation)
    return JSONResponse(job, status_code=202, headers={"Location": f"/api/roster-jobs/{job['id']}"})


@router.get("/roster-jobs/{job_id}")
def job_get(engine: EngineDep, _admin: Admin, job_id: int) -> dict[str, Any]:
    """State, progress (elapsed, best objective, bound, gap) and, once finished, the report."""
    return get_job(engine, job_id)


@router.get("/rosters/{roster_id}/generations")
def jobs_list(engine: EngineDep, _admin: Admin, roster_id: int) -> list[dict[str, Any]]:
    """The roster's generation jobs, newest first."""
    return list_jobs(engine, roster_id)


@router.post("/roster-jobs/{job_id}/stop")
def job_stop(request: Request, engine: EngineDep, _admin: Admin, job_id: int) -> JSONResponse:
    """Stop the job, keeping its best roster so far: 202 while it winds down, 200 with the
    final job if it had already finished."""
    job, active = request_stop(engine, job_id)
    runner: RosterJobRunner | None = getattr(request.app.state, "roster_job_runner", None)
    if active and runner is not None:
        runner.stop(job_id)
    return JSONResponse(job, status_code=202 if active else 200)
