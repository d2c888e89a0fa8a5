"""Roster generation jobs on background threads of this process.

A :class:`RosterJobRunner` takes jobs (``scheduling.rostering.jobs``), runs at most
``max_running`` at once (CP-SAT uses every worker it is given; two solves on two cores only
halve each other), and beats once a second for every job it holds: heartbeat, latest
progress, and a read of ``stop_requested``, so another process can follow or stop the job
through the database. The solver's progress callback only stores the latest figures in
memory; the database sees them on the next beat, at most one write a second.

A stopped solve still returns its best roster, which ``generate_draft`` writes through the
conflict checker like a finished one; the job then ends ``stopped``. Anything that goes
wrong ends the job ``failed`` with the error. OR-Tools loads on the first job only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from scheduling.context import SchedulingContext
from scheduling.errors import BulkRefused, SchedulingError
from scheduling.records import Actor
from scheduling.rostering.jobs import (
    GenerationRequest,
    JobProgress,
    beat,
    claim,
    create_job,
    fail_stale,
    finish,
)

if TYPE_CHECKING:
    from scheduling.rostering.harmony_report import GenerationReport
    from scheduling.rostering.model import Progress, RosterModel

log = logging.getLogger(__name__)


class JobRun:
    """One job in this process: its model once built, the latest progress, and whether and
    when a stop was asked for (to tell a stopped solve from one that ended by itself)."""

    def __init__(self, job: dict[str, Any], request: GenerationRequest) -> None:
        self.job_id: int = job["id"]
        self.roster_id: int = job["roster_id"]
        self.created_by: str = job["created_by"]
        self.request = request
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._model: RosterModel | None = None
        self._began: float | None = None
        self._stop_at: float | None = None
        self._objective: float | None = None
        self._bound: float | None = None

    # called on the solver's thread: store and return
    def on_progress(self, progress: Progress) -> None:
        with self._lock:
            self._objective, self._bound = progress.objective, progress.bound

    def on_model(self, model: RosterModel) -> None:
        with self._lock:
            self._model, self._began = model, time.monotonic()
            if self._stop_at is not None:
                model.stop()

    def stop(self) -> None:
        """Stop the solve (now, or as soon as its model exists); the best roster is kept."""
        with self._lock:
            if self._stop_at is None:
                self._stop_at = time.monotonic()
            if self._model is not None:
                self._model.stop()

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def progress(self) -> JobProgress | None:
        """Seconds solving and the best figures so far; None before the solve starts."""
        with self._lock:
            if self._began is None:
                return None
            return JobProgress(time.monotonic() - self._began, self._objective, self._bound)

    def outcome(self, report: GenerationReport) -> tuple[str, str | None]:
        """The final state and error of a solve that returned ``report``."""
        with self._lock:
            stop_at, began = self._stop_at, self._began
        cut = (
            stop_at is not None
            and report.status != "OPTIMAL"
            and (began is None or stop_at - began < report.solve_seconds + 0.05)
        )
        if report.status == "INFEASIBLE":
            return "failed", "no roster satisfies the rules, locks and blackouts (INFEASIBLE)"
        if cut:
            return "stopped", None
        if report.status in ("OPTIMAL", "FEASIBLE"):
            return "succeeded", None
        if report.status == "UNKNOWN":
            return (
                "failed",
                f"no roster found within the time limit of {self.request.time_limit:g} s",
            )
        return "failed", f"the solver ended {report.status}"


def describe(exc: BaseException) -> str:
    """An error for the job's row: what the person who asked can act on."""
    if isinstance(exc, BulkRefused):
        details = "; ".join(str(e.get("detail")) for e in exc.errors[:5])
        more = f" (and {len(exc.errors) - 5} more)" if len(exc.errors) > 5 else ""
        return f"the conflict checker refused the roster: {details}{more}"
    if isinstance(exc, SchedulingError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class RosterJobRunner:
    """Runs this process's generation jobs; one per API process (kept on ``app.state``) or
    one per CLI run."""

    def __init__(
        self,
        engine: Engine,
        context: SchedulingContext,
        *,
        max_running: int = 1,
        workers: int = 2,
        tick: float = 1.0,
    ) -> None:
        self.engine = engine
        self.context = context
        self.max_running = max_running
        self.workers = workers
        self.tick = tick
        self._runs: dict[int, JobRun] = {}
        self._queue: deque[int] = deque()
        self._threads: dict[int, threading.Thread] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._quit = threading.Event()
        self._monitor = threading.Thread(
            target=self._beat_loop, name="harmony-roster-jobs", daemon=True
        )

    def start(self) -> RosterJobRunner:
        """Fail the jobs other processes left behind, then beat for ours."""
        with self.engine.begin() as conn:
            failed = fail_stale(conn)
        if failed:
            log.warning("%d roster generation job(s) interrupted by a dead process", failed)
        self._monitor.start()
        return self

    def submit(self, actor: Actor, roster_id: int, request: GenerationRequest) -> dict[str, Any]:
        """Create the job (refusals raise, and no row exists) and queue it here."""
        if self._closed.is_set():
            raise RuntimeError("the roster job runner is closed")
        job = create_job(self.engine, actor, roster_id, request)
        with self._lock:
            self._runs[job["id"]] = JobRun(job, request)
            self._queue.append(job["id"])
        self._dispatch()
        return job

    def run_of(self, job_id: int) -> JobRun | None:
        with self._lock:
            return self._runs.get(job_id)

    def stop(self, job_id: int) -> None:
        """Stop a job of this process at once (the database flag reaches the others)."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is not None:
            run.stop()
            self._dispatch()

    def wait(self, job_id: int, timeout: float | None = None) -> bool:
        """True once the job is no longer this process's (finished, or never was)."""
        run = self.run_of(job_id)
        return run is None or run.done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Stop every job here (each keeps its best roster) and wait for them to finish."""
        self._closed.set()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop()
        self._dispatch()
        deadline = time.monotonic() + timeout
        for run in runs:
            run.done.wait(max(0.0, deadline - time.monotonic()))
        self._quit.set()
        if self._monitor.is_alive():
            self._monitor.join(max(0.0, deadline - time.monotonic()))

    # --- threads --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start queued jobs while there is room; a job stopped while queued just ends."""
        with self._lock:
            while self._queue:
                job_id = self._queue[0]
                run = self._runs[job_id]
                if not run.stopping and len(self._threads) >= self.max_running:
                    return
                self._queue.popleft()
                thread = threading.Thread(
                    target=self._execute, args=(run,), name=f"harmony-roster-job-{job_id}"
                )
                thread.daemon = True
                self._threads[job_id] = thread
                thread.start()

    def _execute(self, run: JobRun) -> None:
        try:
            if run.stopping:
                finish(self.engine, run.job_id, "stopped", error="stopped before it started")
            elif claim(self.engine, run.job_id):
                self._solve(run)
        except Exception:
            log.exception("roster generation job %s could not record its end", run.job_id)
        finally:
            with self._lock:
                self._runs.pop(run.job_id, None)
                self._threads.pop(run.job_id, None)
            run.done.set()
            self._dispatch()

    def _solve(self, run: JobRun) -> None:
        from scheduling.rostering.harmony import generate_draft
        from scheduling.rostering.model import SolverSettings

        request = run.request
        try:
            report = generate_draft(
                self.engine,
                self.context,
                Actor(run.created_by, is_admin=True),
                run.roster_id,
                request.coverage,
                request.time_limit,
                request.options,
                request.wishes,
                SolverSettings(workers=self.workers),
                on_progress=run.on_progress,
                on_model=run.on_model,
            )
        except Exception as exc:
            if not isinstance(exc, SchedulingError):
                log.exception("roster generation job %s failed", run.job_id)
            finish(self.engine, run.job_id, "failed", progress=run.progress(), error=describe(exc))
            return
        state, error = run.outcome(report)
        final = JobProgress(
            report.solve_seconds,
            None if report.objective is None else float(report.objective),
            report.bound,
        )
        if not finish(
            self.engine,
            run.job_id,
            state,
            progress=final,
            report=report.as_json(),
            error=error,
        ):
            log.warning(
                "roster generation job %s was marked failed while it ran; its %d shift(s) "
                "were written",
                run.job_id,
                len(report.created_shift_ids),
            )

    def _beat_loop(self) -> None:
        while not self._quit.wait(self.tick):
            with self._lock:
                runs = dict(self._runs)
            if not runs:
                continue
            try:
                stopping = beat(self.engine, {i: r.progress() for i, r in runs.items()})
            except Exception as exc:  # a busy or restarting database: beat again next tick
                log.warning("roster job heartbeat failed, trying again: %s", exc)
                continue
            for job_id in stopping:
                self.stop(job_id)
