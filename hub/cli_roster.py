"""``harmony roster ...``: solve rostering problems with the same model Harmony uses.

``solve --curtois FILE`` runs a Curtois & Qu benchmark instance, so the model's quality is
measured on public instances with proven optima; the independent evaluator re-checks every
roster before its objective is believed. Ctrl-C stops the search and keeps the best roster.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from scheduling.rostering.csv_out import write_roster_csv
from scheduling.rostering.curtois import CurtoisFormatError, read_curtois
from scheduling.rostering.evaluator import evaluate

if TYPE_CHECKING:  # OR-Tools (and pandas under it) load only when a roster is solved
    from scheduling.rostering.model import Progress, RosterModel, SolveResult, SolverSettings

app = typer.Typer(help="Roster generation (CP-SAT) and its benchmark.", no_args_is_help=True)


@app.callback()
def _roster() -> None:
    """Roster generation (CP-SAT) and its benchmark."""


class _ProgressLine:
    """One self-overwriting line on stderr, at most ten updates a second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.shown = 0.0

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.shown < 0.1:
            return
        self.shown = now
        best = "-" if progress.objective is None else f"{progress.objective:.0f}"
        sys.stderr.write(
            f"\r  {progress.elapsed:7.1f} s  best {best:>8}  bound {progress.bound:.0f}  "
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


def _solve_interruptibly(
    model: RosterModel, time_limit: float, settings: SolverSettings, line: _ProgressLine
) -> SolveResult:
    """Solve on a thread so Ctrl-C can stop the search instead of killing the process."""
    results: list[SolveResult] = []
    worker = threading.Thread(
        target=lambda: results.append(model.solve(time_limit, settings, line)), daemon=True
    )
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        model.stop()
        worker.join()
    line.done()
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
    progress: Annotated[bool, typer.Option(help="A progress line on stderr.")] = True,
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
        model, time_limit, SolverSettings(workers=workers), _ProgressLine(progress)
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
