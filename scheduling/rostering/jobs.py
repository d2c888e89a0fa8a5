"""Roster generation as a job: the request it runs, and its row from queued to finished.

A job is a row of ``roster_generation_job``; the process that runs it (``hub.roster_jobs``)
writes progress and a heartbeat about once a second and reads ``stop_requested``, so any
process can follow or stop it through the database alone. A job still active whose heartbeat
is older than :data:`STALE_AFTER` belonged to a process that died: it reads as failed
("interrupted"). Everything a request can get wrong is refused here, before a row exists.

No OR-Tools here: the API and the CLI import this module at start.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from scheduling.errors import InvalidInput, NotFound, StateConflict
from scheduling.records import Actor, get_row
from scheduling.rostering.harmony import ALL_DAYS, Coverage, GenerationOptions, Wish
from scheduling.tables import physicians, roster_generation_jobs, rosters, shift_types
from scheduling.times import as_utc, utcnow

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "stopped", "failed")
MIN_TIME_LIMIT, MAX_TIME_LIMIT = 1.0, 600.0
STALE_AFTER = timedelta(seconds=30)
"""An active job whose heartbeat is older than this has lost its process."""

jobs = roster_generation_jobs


# --- the request --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What ``generate_draft`` needs besides the roster; stored with the job as JSON."""

    coverage: tuple[Coverage, ...]
    time_limit: float
    options: GenerationOptions
    wishes: tuple[Wish, ...] = ()

    def as_json(self) -> dict[str, Any]:
        options = {f.name: getattr(self.options, f.name) for f in fields(GenerationOptions)}
        options["max_per_kind_per_fte"] = dict(self.options.max_per_kind_per_fte)
        return {
            "coverage": [
                {
                    "code": c.code,
                    "required": c.required,
                    "weekdays": sorted(c.weekdays),
                    "under_weight": c.under_weight,
                    "over_weight": c.over_weight,
                }
                for c in self.coverage
            ],
            "time_limit": self.time_limit,
            "options": options,
            "wishes": [
                {
                    "physician_id": w.physician_id,
                    "day": w.day.isoformat(),
                    "code": w.code,
                    "on": w.on,
                    "weight": w.weight,
                }
                for w in self.wishes
            ],
        }

    def codes(self) -> set[str]:
        return {c.code for c in self.coverage} | {w.code for w in self.wishes if w.code}


def _mapping(value: Any, what: str, allowed: Iterable[str], required: Iterable[str] = ()) -> dict:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be an object")
    unknown = set(value) - set(allowed)
    if unknown:
        raise InvalidInput(f"{what}: unknown fields {sorted(unknown)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise InvalidInput(f"{what}: missing {', '.join(missing)}")
    return dict(value)


def _int(value: Any, what: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        raise InvalidInput(
            f"{what} must be between {low} and {high if high is not None else 'more'}"
        )
    return value


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a number, not {value!r}")
    if not low <= value <= high:
        raise InvalidInput(f"{what} must be between {low:g} and {high:g}, not {value:g}")
    return float(value)


def _coverage(value: Any, where: str) -> Coverage:
    data = _mapping(
        value,
        where,
        ("code", "required", "weekdays", "under_weight", "over_weight"),
        ("code", "required"),
    )
    code = data["code"]
    if not isinstance(code, str) or not code:
        raise InvalidInput(f"{where}.code must be a shift type code")
    weekdays = data.get("weekdays")
    if weekdays is None:
        days = ALL_DAYS
    elif isinstance(weekdays, list) and weekdays:
        days = frozenset(_int(d, f"{where}.weekdays[]", 0, 6) for d in weekdays)
    else:
        raise InvalidInput(f"{where}.weekdays must be a non-empty list of 0 (Monday) to 6")
    return Coverage(
        code,
        _int(data["required"], f"{where}.required", 0, 1000),
        days,
        _int(data.get("under_weight", 100), f"{where}.under_weight", 0, 1_000_000),
        _int(data.get("over_weight", 20), f"{where}.over_weight", 0, 1_000_000),
    )


def _wish(value: Any, where: str) -> Wish:
    data = _mapping(
        value, where, ("physician_id", "day", "code", "on", "weight"), ("physician_id", "day")
    )
    try:
        day = date.fromisoformat(str(data["day"]))
    except ValueError:
        raise InvalidInput(f"{where}.day {data['day']!r} is not YYYY-MM-DD") from None
    code = data.get("code")
    if code is not None and (not isinstance(code, str) or not code):
        raise InvalidInput(f"{where}.code must be a shift type code or null (the whole day)")
    on = data.get("on", False)
    if not isinstance(on, bool):
        raise InvalidInput(f"{where}.on must be true or false")
    if on and code is None:
        raise InvalidInput(f"{where}: a wish to work names the shift type (code)")
    return Wish(
        _int(data["physician_id"], f"{where}.physician_id", 1),
        day,
        code,
        on,
        _int(data.get("weight", 10), f"{where}.weight", 0, 1_000_000),
    )


def _options(value: Any) -> GenerationOptions:
    if value is None:
        return GenerationOptions()
    names = {f.name for f in fields(GenerationOptions)}
    data = _mapping(value, "options", names)
    out: dict[str, Any] = {}
    for key, item in data.items():
        where = f"options.{key}"
        if key == "max_per_kind_per_fte":
            if not isinstance(item, Mapping):
                raise InvalidInput(f"{where} must be an object of shift kind -> count")
            limits = dict(item)
            out[key] = {str(k): _int(v, f"{where}.{k}", 0, 1000) for k, v in limits.items()}
        elif key in ("max_consecutive_work", "max_weekends"):
            out[key] = None if item is None else _int(item, where, 0, 366)
        elif key == "min_consecutive_off":
            out[key] = _int(item, where, 0, 366)
        elif key == "full_time_weekly_hours":
            out[key] = _number(item, where, 0.0, 168.0)
        elif key == "min_load":
            out[key] = _number(item, where, 0.0, 1.0)
        else:
            out[key] = _int(item, where, 0, 1_000_000)
    return GenerationOptions(**out)


def parse_request(data: Any) -> GenerationRequest:
    """A request from JSON (an API body, a CLI file); InvalidInput names what is wrong."""
    body = _mapping(data, "request", ("coverage", "time_limit", "options", "wishes"))
    if "time_limit" not in body:
        raise InvalidInput("time_limit (seconds) is required")
    coverage = body.get("coverage")
    if not isinstance(coverage, list) or not coverage:
        raise InvalidInput("coverage must be a non-empty list of {code, required, ...}")
    wishes = body.get("wishes") or []
    if not isinstance(wishes, list):
        raise InvalidInput("wishes must be a list")
    return GenerationRequest(
        coverage=tuple(_coverage(c, f"coverage[{i}]") for i, c in enumerate(coverage)),
        time_limit=_number(body["time_limit"], "time_limit", MIN_TIME_LIMIT, MAX_TIME_LIMIT),
        options=_options(body.get("options")),
        wishes=tuple(_wish(w, f"wishes[{i}]") for i, w in enumerate(wishes)),
    )


# --- progress -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Seconds solving so far, the best roster's cost and the proven bound (None: none yet)."""

    elapsed: float
    objective: float | None
    bound: float | None

    @property
    def gap(self) -> float | None:
        return gap(self.objective, self.bound)


def gap(objective: float | None, bound: float | None) -> float | None:
    """CP-SAT's relative gap, |objective - bound| / max(1, |objective|): 0 means proven."""
    if objective is None or bound is None:
        return None
    return round(abs(objective - bound) / max(1.0, abs(objective)), 4)


def finite(value: Any) -> Any:
    """``value`` with every infinite or NaN float as None: JSON has no infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


# --- the job row --------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def job_json(row: Any) -> dict[str, Any]:
    progress = JobProgress(row.elapsed_seconds or 0.0, row.objective, row.bound)
    return {
        "id": row.id,
        "roster_id": row.roster_id,
        "state": row.state,
        "time_limit": row.time_limit,
        "request": row.request,
        "progress": {
            "elapsed_seconds": round(progress.elapsed, 2),
            "objective": progress.objective,
            "bound": progress.bound,
            "gap": progress.gap,
        },
        "stop_requested": bool(row.stop_requested),
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
        "heartbeat_at": _iso(row.heartbeat_at),
        "report": row.report,
        "error": row.error,
    }


def _lock_roster(conn: Connection, roster_id: int) -> Any:
    """The roster row, locked on PostgreSQL so two requests cannot both start a job (SQLite
    transactions begin IMMEDIATE: one writer anyway)."""
    query = select(rosters).where(rosters.c.id == roster_id)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"roster {roster_id} does not exist")
    return row


def _check_references(conn: Connection, request: GenerationRequest) -> None:
    codes = request.codes()
    known = set(
        conn.execute(select(shift_types.c.code).where(shift_types.c.code.in_(codes))).scalars()
    )
    if codes - known:
        raise InvalidInput(f"unknown shift type codes {sorted(codes - known)}")
    people = {w.physician_id for w in request.wishes}
    found = set(conn.execute(select(physicians.c.id).where(physicians.c.id.in_(people))).scalars())
    if people - found:
        raise InvalidInput(f"wishes name unknown physicians {sorted(people - found)}")


def create_job(
    engine: Engine, actor: Actor, roster_id: int, request: GenerationRequest
) -> dict[str, Any]:
    """A queued job for a draft roster with no other job active; refused (and no row
    written) for a published roster, an unknown shift type or physician, or a job already
    queued or running on this roster (one that lost its process is failed first)."""
    actor.require_admin()
    now = utcnow()
    with engine.begin() as conn:
        roster = _lock_roster(conn, roster_id)
        if roster.status != "draft":
            raise StateConflict(
                f"roster {roster_id} is {roster.status}; only a draft roster can be generated "
                "(a published roster changes shift by shift)",
                rule="roster_published",
            )
        _check_references(conn, request)
        fail_stale(conn, now, roster_id=roster_id)
        active = conn.execute(
            select(jobs.c.id, jobs.c.state).where(
                jobs.c.roster_id == roster_id, jobs.c.state.in_(ACTIVE)
            )
        ).first()
        if active is not None:
            raise StateConflict(
                f"roster {roster_id} already has generation job {active.id} {active.state}; "
                "wait for it or stop it first",
                rule="generation_running",
            )
        job_id = conn.execute(
            insert(jobs).values(
                roster_id=roster_id,
                state="queued",
                time_limit=request.time_limit,
                request=request.as_json(),
                stop_requested=0,
                heartbeat_at=now,
                created_by=actor.name,
                created_at=now,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        return job_json(get_row(conn, jobs, int(job_id), "generation job"))


def fail_stale(
    conn: Connection,
    now: datetime | None = None,
    *,
    job_id: int | None = None,
    roster_id: int | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> int:
    """Fail the active jobs (all, one, or one roster's) whose process stopped beating."""
    now = now or utcnow()
    query = update(jobs).where(jobs.c.state.in_(ACTIVE), jobs.c.heartbeat_at < now - stale_after)
    if job_id is not None:
        query = query.where(jobs.c.id == job_id)
    if roster_id is not None:
        query = query.where(jobs.c.roster_id == roster_id)
    done = conn.execute(
        query.values(
            state="failed",
            finished_at=now,
            error=f"interrupted: the process running it stopped (no heartbeat for "
            f"{stale_after.total_seconds():g} s)",
        )
    )
    return int(done.rowcount or 0)


def _is_stale(row: Any, now: datetime) -> bool:
    return row.state in ACTIVE and as_utc(row.heartbeat_at) < now - STALE_AFTER


def get_job(engine: Engine, job_id: int) -> dict[str, Any]:
    """The job; one whose process died is failed first, otherwise a plain read (one short
    transaction per poll)."""
    with engine.connect() as conn:
        row = get_row(conn, jobs, job_id, "generation job")
    if _is_stale(row, utcnow()):
        with engine.begin() as conn:
            fail_stale(conn, job_id=job_id)
            row = get_row(conn, jobs, job_id, "generation job")
    return job_json(row)


def list_jobs(engine: Engine, roster_id: int) -> list[dict[str, Any]]:
    """The roster's jobs, newest first (those whose process died failed first)."""
    query = select(jobs).where(jobs.c.roster_id == roster_id).order_by(jobs.c.id.desc())
    with engine.connect() as conn:
        get_row(conn, rosters, roster_id, "roster")
        rows = conn.execute(query).all()
    if any(_is_stale(r, utcnow()) for r in rows):
        with engine.begin() as conn:
            fail_stale(conn, roster_id=roster_id)
            rows = conn.execute(query).all()
    return [job_json(r) for r in rows]


def request_stop(engine: Engine, job_id: int) -> tuple[dict[str, Any], bool]:
    """Ask the job's process to stop it (a queued job stops at once); returns the job and
    whether it was still active."""
    now = utcnow()
    with engine.begin() as conn:
        fail_stale(conn, now, job_id=job_id)
        row = get_row(conn, jobs, job_id, "generation job")
        if row.state not in ACTIVE:
            return job_json(row), False
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(stop_requested=1))
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state == "queued")
            .values(state="stopped", finished_at=now, error="stopped before it started")
        )
        return job_json(get_row(conn, jobs, job_id, "generation job")), True


def claim(engine: Engine, job_id: int) -> bool:
    """queued -> running; False if it was stopped or failed meanwhile."""
    now = utcnow()
    with engine.begin() as conn:
        done = conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id, jobs.c.state == "queued")
            .values(state="running", started_at=now, heartbeat_at=now)
        )
        return done.rowcount == 1


def beat(engine: Engine, progress: Mapping[int, JobProgress | None]) -> set[int]:
    """One heartbeat (and the latest progress, where given) for each of this process's
    active jobs; returns those whose stop someone requested."""
    if not progress:
        return set()
    now = utcnow()
    with engine.begin() as conn:
        for job_id, note in progress.items():
            values: dict[str, Any] = {"heartbeat_at": now}
            if note is not None:
                values |= {
                    "elapsed_seconds": round(note.elapsed, 2),
                    "objective": finite(note.objective),
                    "bound": finite(note.bound),
                }
            conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE)).values(**values)
            )
        stopping = conn.execute(
            select(jobs.c.id).where(jobs.c.id.in_(list(progress)), jobs.c.stop_requested == 1)
        ).scalars()
        return set(stopping)


def finish(
    engine: Engine,
    job_id: int,
    state: str,
    *,
    progress: JobProgress | None = None,
    report: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """The job's end; False if it was no longer active (failed as interrupted meanwhile)."""
    if state not in FINISHED:
        raise ValueError(f"{state!r} is not a final state")
    values: dict[str, Any] = {
        "state": state,
        "finished_at": utcnow(),
        "report": finite(report),
        "error": error,
    }
    if progress is not None:
        values |= {
            "elapsed_seconds": round(progress.elapsed, 2),
            "objective": finite(progress.objective),
            "bound": finite(progress.bound),
        }
    with engine.begin() as conn:
        done = conn.execute(
            update(jobs).where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE)).values(**values)
        )
        return done.rowcount == 1
