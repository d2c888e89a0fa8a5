"""``harmony roster ...``: solve rostering problems with the same model Harmony uses.

``solve --curtois FILE`` runs a Curtois & Qu benchmark instance, so the model's quality is
measured on public instances with proven optima; the independent evaluator re-checks every
roster before its objective is believed. ``generate --roster ID --coverage FILE`` fills a
draft roster in the database as a generation job, the same the API runs. In both, Ctrl-C
stops the search and keeps the best roster.
"""

from __future__ import annotations

import getpass
import json
import math
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from scheduling.rostering.csv_out import write_roster_csv
from scheduling.rostering.curtois import CurtoisFormatError, read_curtois
from scheduling.rostering.evaluator import evaluate

if TYPE_CHECKING:  # OR-Tools (and pandas under it) load only when a roster is solved
    from hub.roster_jobs import RosterJobRunner
    from scheduling.rostering.jobs import GenerationRequest
    from scheduling.rostering.model import Progress, RosterModel, SolveResult, SolverSettings

app = typer.Typer(help="Roster generation (CP-SAT) and its benchmark.", no_args_is_help=True)


@app.callback()
def _roster() -> None:
    """Roster generation (CP-SAT) and its benchmark."""


def render_bar(
    elapsed: float,
    time_limit: float,
    objective: float | None,
    bound: float | None,
    width: int = 24,
) -> str:
    """``[#######.......]  12.3/60 s  best 607  bound 600  gap 1.2%``: time against the limit,
    the best roster's cost, the proven bound and the gap between them."""
    share = min(1.0, max(0.0, elapsed / time_limit)) if time_limit > 0 else 1.0
    filled = round(share * width)
    best = "-" if objective is None else f"{objective:.0f}"
    low = "-" if bound is None or not math.isfinite(bound) else f"{bound:.0f}"
    gap = "-"
    if objective is not None and bound is not None and math.isfinite(bound):
        gap = f"{abs(objective - bound) / max(1.0, abs(objective)) * 100:.1f}%"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {elapsed:6.1f}/{time_limit:g} s  "
        f"best {best:>8}  bound {low:>8}  gap {gap:>6}"
    )


class _ProgressBar:
    """A self-overwriting progress bar on stderr (a terminal only), at most ten updates a
    second; fed by the solver's progress or by polling a job."""

    def __init__(self, enabled: bool, time_limit: float) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.time_limit = time_limit
        self.began = time.monotonic()
        self.shown = 0.0
        self.objective: float | None = None
        self.bound: float | None = None
        self.width = 0

    def __call__(self, progress: Progress) -> None:
        self.show(progress.elapsed, progress.objective, progress.bound)

    def show(self, elapsed: float | None, objective: float | None, bound: float | None) -> None:
        self.objective, self.bound = objective, bound
        self.refresh(elapsed)

    def refresh(self, elapsed: float | None = None) -> None:
        """Redraw with the latest figures (time moves on between incumbents too)."""
        now = time.monotonic()
        if not self.enabled or now - self.shown < 0.1:
            return
        self.shown = now
        text = render_bar(
            now - self.began if elapsed is None else elapsed,
            self.time_limit,
            self.objective,
            self.bound,
        )
        self.width = max(self.width, len(text))
        sys.stderr.write(f"\r  {text:<{self.width}}")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * (self.width + 2) + "\r")
            sys.stderr.flush()


def _solve_interruptibly(
    model: RosterModel, time_limit: float, settings: SolverSettings, bar: _ProgressBar
) -> SolveResult:
    """Solve on a thread so Ctrl-C can stop the search instead of killing the process.

    Waits on an Event, not ``Thread.join``: a KeyboardInterrupt inside ``join`` can leave
    the thread marked finished while it still runs (CPython 3.11), and the result lost."""
    results: list[SolveResult] = []
    finished = threading.Event()

    def work() -> None:
        try:
            results.append(model.solve(time_limit, settings, bar))
        finally:
            finished.set()

    threading.Thread(target=work, daemon=True).start()
    try:
        while not finished.wait(0.2):
            bar.refresh()
    except KeyboardInterrupt:
        model.stop()
        finished.wait()
    bar.done()
    return results[0]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


@app.command()
def solve(
    curtois: Annotated[
        Path,
        typer.Option(
            exists=True, dir_okay=False, help="A Curtois & Qu instance (schedulingbenchmarks.org)."
        ),
    ],
    time_limit: Annotated[float, typer.Option(min=0.0, help="Wall-clock limit, seconds.")] = 60.0,
    out: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Write the roster as CSV (staff,day,shift).")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="CP-SAT worker threads.")] = 2,
    progress: Annotated[bool, typer.Option(help="A progress bar on stderr.")] = True,
) -> None:
    """Solve a benchmark instance; print objective, bound and times, then the evaluator's
    verdict. Exits 1 if no roster was found or the evaluator rejects it."""
    from scheduling.rostering.model import RosterModel, SolverSettings

    try:
        problem = read_curtois(curtois)
    except CurtoisFormatError as exc:
        typer.echo(f"error: {curtois}: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    began = time.perf_counter()
    model = RosterModel(problem)
    built = time.perf_counter() - began
    typer.echo(
        f"instance        {curtois.name}: {problem.days} days, {len(problem.staff)} staff, "
        f"{len(problem.shift_types)} shift types; {len(model.x)} variables built in {built:.2f} s"
    )
    result = _solve_interruptibly(
        model, time_limit, SolverSettings(workers=workers), _ProgressBar(progress, time_limit)
    )
    objective = "-" if result.objective is None else str(result.objective)
    typer.echo(f"status          {result.status}")
    typer.echo(f"objective       {objective}")
    typer.echo(f"bound           {result.bound:.0f}")
    typer.echo(f"first feasible  {_seconds(result.first_feasible_seconds)}")
    typer.echo(f"best found      {_seconds(result.best_found_seconds)}")
    typer.echo(f"total           {_seconds(result.wall_seconds + built)}")
    if result.objective is None:
        typer.echo("evaluator       no roster to check")
        raise typer.Exit(code=1)
    verdict = evaluate(problem, result.roster)
    agrees = "agrees" if verdict.objective == result.objective else "DISAGREES with the model"
    typer.echo(
        f"evaluator       {'feasible' if verdict.feasible else 'INFEASIBLE'}, "
        f"objective {verdict.objective} ({agrees})"
    )
    for violation in verdict.violations[:20]:
        typer.echo(f"  violation: {violation}")
    if out is not None:
        write_roster_csv(out, result.roster)
        typer.echo(f"roster          {out} ({len(result.roster)} assignments)")
    if not verdict.feasible or verdict.objective != result.objective:
        raise typer.Exit(code=1)


# --- generate a draft roster in the database --------------------------------------------------


def _generation_request(path: Path, time_limit: float) -> GenerationRequest:
    """The coverage file: a list of coverage entries (``{code, required, weekdays?, ...}``),
    or an object with ``coverage`` and optionally ``options`` and ``wishes``, as the API's
    body takes them; the time limit comes from the command line."""
    from scheduling.rostering.jobs import parse_request

    data = json.loads(path.read_text())
    body = {"coverage": data} if isinstance(data, list) else data
    if isinstance(body, dict):
        body = {**body, "time_limit": time_limit}
    return parse_request(body)


def _follow(runner: RosterJobRunner, job_id: int, bar: _ProgressBar) -> None:
    """Draw the bar until the job ends; Ctrl-C stops it, and its best roster is kept."""
    try:
        while not runner.wait(job_id, 0.2):
            run = runner.run_of(job_id)
            progress = run.progress() if run is not None else None
            if progress is not None:
                bar.show(progress.elapsed, progress.objective, progress.bound)
    except KeyboardInterrupt:
        bar.done()
        typer.echo("stopping: the best roster so far is kept ...", err=True)
        runner.stop(job_id)
        runner.wait(job_id)
    bar.done()


def _print_report(job: dict[str, Any]) -> None:
    report = job["report"]
    progress = job["progress"]
    typer.echo(f"job             {job['id']} {job['state']}")
    if job["error"]:
        typer.echo(f"error           {job['error']}")
    if report is None:
        return
    bound = "-" if report["bound"] is None else f"{report['bound']:.0f}"
    gap = "-" if progress["gap"] is None else f"{progress['gap'] * 100:.1f} %"
    objective = "-" if report["objective"] is None else str(report["objective"])
    typer.echo(f"status          {report['status']}")
    typer.echo(f"objective       {objective}")
    typer.echo(f"bound           {bound}")
    typer.echo(f"gap             {gap}")
    typer.echo(f"solve           {report['solve_seconds']:.2f} s")
    typer.echo(
        f"shifts          {len(report['created_shift_ids'])} created, "
        f"{report['assignments']} in the draft"
    )
    if report["objective"] is None:
        return
    violations = report["violations"]
    typer.echo(f"violations      {len(violations)}, penalty {report['penalty']}")
    for v in violations[:30]:
        price = "hard" if v["penalty"] is None else str(v["penalty"])
        typer.echo(f"  {v['rule']:<12} {price:>6}  {v['message']}")
    if len(violations) > 30:
        typer.echo(f"  ... and {len(violations) - 30} more")
    typer.echo(f"fairness        spread {report['spread']:g} (relative load, most - least)")
    for load in report["fairness"]:
        typer.echo(
            f"  {load['physician']:<24} FTE {load['fte']:<4g} {load['shifts']:>3} shifts "
            f"{load['minutes'] / 60:>6.1f} h {load['nights']:>3} nights "
            f"{load['weekend_days']:>3} weekend days  load {load['relative_load']:.2f}"
        )


@app.command()
def generate(
    roster: Annotated[int, typer.Option(help="The draft roster's id.")],
    coverage: Annotated[
        Path,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="JSON: [{code, required, weekdays?, under_weight?, over_weight?}], or "
            "{coverage, options?, wishes?} as POST /api/rosters/{id}/generate takes them.",
        ),
    ],
    time_limit: Annotated[
        float, typer.Option(min=1.0, max=600.0, help="Seconds of solving.")
    ] = 60.0,
    database_url: Annotated[str | None, typer.Option(help="Default HARMONY_DATABASE_URL.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="CP-SAT worker threads.")] = 2,
    progress: Annotated[bool, typer.Option(help="A progress bar on stderr.")] = True,
) -> None:
    """Generate a draft roster in the database as a job (the API's own): a progress bar,
    Ctrl-C stops and keeps the best roster, then the report. Exits 2 if the request is
    refused (no job), 1 if the job failed."""
    from hub.db import engine_for
    from hub.roster_jobs import RosterJobRunner
    from hub.scheduling_context import scheduling_context
    from hub.settings import get_settings
    from scheduling.errors import SchedulingError
    from scheduling.records import Actor
    from scheduling.rostering.jobs import get_job

    settings = get_settings()
    if database_url is not None:
        settings = settings.model_copy(update={"database_url": database_url})
    try:
        request = _generation_request(coverage, time_limit)
    except (ValueError, SchedulingError) as exc:
        typer.echo(f"error: {coverage}: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    engine = engine_for(settings)
    runner = RosterJobRunner(engine, scheduling_context(settings), workers=workers).start()
    try:
        try:
            job = runner.submit(Actor(f"cli:{getpass.getuser()}", is_admin=True), roster, request)
        except SchedulingError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=2) from exc
        typer.echo(f"generating      roster {roster} as job {job['id']}, at most {time_limit:g} s")
        _follow(runner, job["id"], _ProgressBar(progress, time_limit))
        final = get_job(engine, job["id"])
    finally:
        runner.close()
        engine.dispose()
    _print_report(final)
    if final["state"] == "failed":
        raise typer.Exit(code=1)
