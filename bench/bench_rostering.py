"""Roster generation with the CP-SAT model Harmony uses, on 2 workers (this machine's cores),
each figure beside CP-SAT's default portfolio ("defaults") solved in the same run with the
same workers and limit: the machine is noisy, so only the ratio travels.

- Curtois & Qu Instances 1 and 2 against their proven optima (607 and 828).
- Harmony's month (bench/month_seed.py: 30 physicians, March 2027 in New York) generated on
  a fresh SQLite database, solved three times per configuration (20 s results scatter), the
  median Harmony run written through the conflict checker; the defaults' rosters are not.

Each roster is re-checked by the independent evaluator; a disagreement is printed, not hidden.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from bench.month_seed import PHYSICIANS, MonthSeed, seed_month
from bench.month_seed import TIME_LIMIT as MONTH_LIMIT
from hub.db import create_all, make_engine
from scheduling.rostering.curtois import read_curtois
from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.harmony import Instance, build_instance, model_for
from scheduling.rostering.harmony_report import GenerationReport, build_report
from scheduling.rostering.model import SolveResult, SolverSettings, solve
from scheduling.rostering.problem import Problem
from scheduling.rules import load_rules
from scheduling.shifts import run_changes

FIXTURES = Path("/work/shared/fixtures/rostering")
BEST_KNOWN = {"Instance1.txt": 607, "Instance2.txt": 828}
TIME_LIMIT = 60.0
WORKERS = 2
MONTH_RUNS = 3
"""Solves per configuration on the month: without a starting roster, its objective within
20 s ranges from the optimum to hundreds of times it, depending on when the search first
reaches full cover."""
HARMONY = SolverSettings(workers=WORKERS)
DEFAULTS = SolverSettings(workers=WORKERS, full_solvers=(), greedy_hint=False)
"""The named baseline: CP-SAT's own portfolio for this many workers, on its own (without
the greedy roster Harmony starts from)."""


@dataclass(frozen=True, slots=True)
class Timed:
    """One solve of one configuration, with its label for the printed line."""

    label: str
    result: SolveResult


def _seconds(value: float | None) -> str:
    return "     -  " if value is None else f"{value:6.2f} s"


def _gap_to_bound(result: SolveResult) -> float | None:
    """(objective - bound) / objective in %: what is left to prove."""
    if result.objective is None:
        return None
    return (result.objective - result.bound) / max(result.objective, 1) * 100


def _proof(result: SolveResult) -> float | None:
    """Wall time to the proven optimum, None when the limit ran out first."""
    return result.wall_seconds if result.optimal else None


def _checked(problem: Problem, result: SolveResult) -> str:
    verdict = evaluate(problem, result.roster)
    if verdict.feasible and verdict.objective == result.objective:
        return "evaluator agrees"
    return f"EVALUATOR: {verdict.objective}, {len(verdict.violations)} violations"


def _curtois_line(name: str, run: Timed, problem: Problem, limit: float) -> str:
    """One configuration on one instance; "to optimum" only once the optimum is proven."""
    result, best = run.result, BEST_KNOWN[name]
    if result.objective is None:
        return f"  {name:14} {run.label:8} no roster in {limit:.0f} s (status {result.status})"
    gap = (result.objective - best) / best * 100
    to_optimum = result.best_found_seconds if result.optimal else None
    return (
        f"  {name:14} {run.label:8} objective {result.objective:5d}  bound {result.bound:7.0f}  "
        f"best known {best:5d}  gap {gap:5.1f} %  "
        f"first feasible {_seconds(result.first_feasible_seconds)}  "
        f"to optimum {_seconds(to_optimum)}  proof {_seconds(_proof(result))}  "
        f"({_checked(problem, result)})"
    )


def _gap_text(result: SolveResult) -> str:
    gap = _gap_to_bound(result)
    if gap is None or result.objective is None:
        return "no roster"
    return f"gap to bound {result.objective - result.bound:.0f} ({gap:.1f} %)"


def _verdict(mine: float | None, theirs: float | None, base: SolveResult, limit: float) -> str:
    """The ratio of proof times, or a lower bound on it when only Harmony proves."""
    if mine is not None and theirs is not None:
        speedup = theirs / max(mine, 0.01)
        return (
            f"proof {mine:.2f} s vs defaults {theirs:.2f} s: "
            f"defaults/Harmony {speedup:.2f}x (above 1: Harmony faster)"
        )
    assert mine is not None
    return (
        f"proof {mine:.2f} s vs defaults unproven in {limit:.0f} s "
        f"({_gap_text(base)}): defaults/Harmony >= {limit / max(mine, 0.01):.1f}x"
    )


def ratio_line(name: str, ours: SolveResult, base: SolveResult, limit: float) -> str:
    """Harmony against the defaults: proof times when Harmony proves, gaps to bound if not."""
    mine, theirs = _proof(ours), _proof(base)
    if mine is not None:
        verdict = _verdict(mine, theirs, base, limit)
    elif theirs is not None:
        verdict = f"defaults proven in {theirs:.2f} s, Harmony not ({_gap_text(ours)})"
    else:
        verdict = (
            f"neither proven in {limit:.0f} s; Harmony {_gap_text(ours)}, "
            f"defaults {_gap_text(base)}"
        )
    return f"  {name:14} {'ratio':8} {verdict}"


def instance_lines(name: str, time_limit: float = TIME_LIMIT) -> list[str]:
    """Harmony's settings, then the defaults, then the ratio, on one Curtois instance."""
    problem = read_curtois(FIXTURES / name)
    runs = [Timed(label, solve(problem, time_limit, s)) for label, s in _configurations()]
    lines = [_curtois_line(name, run, problem, time_limit) for run in runs]
    lines.append(ratio_line(name, runs[0].result, runs[1].result, time_limit))
    return lines


def _configurations() -> list[tuple[str, SolverSettings]]:
    return [("Harmony", HARMONY), ("defaults", DEFAULTS)]


def _fresh_month(directory: Path) -> tuple[Engine, MonthSeed, Instance]:
    """A new SQLite database with the month seeded, read back as the generation's instance."""
    engine = make_engine(f"sqlite:///{directory / 'month.db'}")
    create_all(engine)
    seeded = seed_month(engine)
    with engine.connect() as conn:
        rules = load_rules(conn, seeded.context.default_rules)
        instance = build_instance(
            conn, seeded.roster_id, seeded.coverage, rules, seeded.options, seeded.wishes
        )
    return engine, seeded, instance


def _write(engine: Engine, seeded: MonthSeed, instance: Instance, result: SolveResult) -> list[int]:
    """The draft's new shifts through ``run_changes`` as ``generate_draft`` writes them: one
    all-or-nothing bulk the conflict checker judges (a refusal raises)."""
    items = [
        {
            "op": "create",
            "roster_id": seeded.roster_id,
            "shift_type_id": instance.types[code].id,
            "date": (instance.period_start + timedelta(days=day)).isoformat(),
            "physician_id": instance.people[sid].id,
        }
        for sid, day, code in result.roster
        if (sid, day, code) not in instance.locked
    ]
    if not items:
        return []
    data = run_changes(engine, seeded.context, seeded.actor, items).data
    return [int(r["id"]) for r in (data if isinstance(data, list) else [data])]


def _median(results: list[SolveResult]) -> SolveResult:
    """The run of median objective (no roster counts as worst)."""
    ranked = sorted(results, key=lambda r: (r.objective is None, r.objective or 0))
    return ranked[(len(ranked) - 1) // 2]


def _objectives(results: list[SolveResult]) -> str:
    return ", ".join("-" if r.objective is None else str(r.objective) for r in results)


def month_line(label: str, runs: list[SolveResult], report: GenerationReport, written: str) -> str:
    """The median run's objective, bound, timings, what was written, violations and the
    FTE-fairness spread, with every run's objective (20 s results vary a lot run to run)."""
    result = _median(runs)
    if result.objective is None:
        return f"  {'month':14} {label:8} no roster (status {result.status})"
    soft = [v for v in report.violations if v.penalty is not None]
    loads = [load.relative_load for load in report.fairness if load.fte > 0]
    return (
        f"  {'month':14} {label:8} objective {result.objective:5d}  "
        f"bound {result.bound:5.0f}  {_gap_text(result)}  "
        f"first feasible {_seconds(result.first_feasible_seconds)}  "
        f"best at {_seconds(result.best_found_seconds)}  {written}  "
        f"hard violations {len(report.hard_violations)}  soft violations {len(soft)} "
        f"(penalty {report.penalty})  load/FTE vs mean {min(loads):.2f}..{max(loads):.2f} "
        f"(spread {report.spread:.3f})  [objectives of {len(runs)} runs: {_objectives(runs)}]"
    )


def month_ratio_line(ours: list[SolveResult], base: list[SolveResult]) -> str:
    """Median objectives and best bounds side by side (lower objective is better)."""
    mine, theirs = _median(ours), _median(base)
    if mine.objective is None or theirs.objective is None:
        return f"  {'month':14} {'ratio':8} {_gap_text(mine)} vs defaults {_gap_text(theirs)}"
    bounds = (
        f"best bounds Harmony {max(r.bound for r in ours):.0f}, "
        f"defaults {max(r.bound for r in base):.0f}"
    )
    return (
        f"  {'month':14} {'ratio':8} median objective defaults/Harmony "
        f"{theirs.objective / max(mine.objective, 1):.2f}x ({theirs.objective} vs "
        f"{mine.objective}, above 1: Harmony better)  {bounds}"
    )


def _solves(instance: Instance, time_limit: float) -> tuple[list[SolveResult], list[SolveResult]]:
    """MONTH_RUNS solves per configuration, alternating so both share the machine's noise."""
    ours: list[SolveResult] = []
    base: list[SolveResult] = []
    for _ in range(MONTH_RUNS):
        ours.append(model_for(instance).solve(time_limit, HARMONY))
        base.append(model_for(instance).solve(time_limit, DEFAULTS))
    return ours, base


def month_lines(time_limit: float = MONTH_LIMIT) -> list[str]:
    """Solve the month with Harmony's settings and the defaults, and write Harmony's median
    run as ``generate_draft`` would (the defaults' rosters are not written)."""
    with tempfile.TemporaryDirectory() as directory:
        engine, seeded, instance = _fresh_month(Path(directory))
        try:
            ours, base = _solves(instance, time_limit)
            written = _write(engine, seeded, instance, _median(ours))
        finally:
            engine.dispose()
    mine, theirs = _median(ours), _median(base)
    return [
        month_line(
            "Harmony", ours, build_report(instance, mine, written), f"{len(written)} written"
        ),
        month_line("defaults", base, build_report(instance, theirs, []), "not written"),
        month_ratio_line(ours, base),
    ]


def run() -> list[str]:
    lines = [
        f"Rostering (CP-SAT, {WORKERS} workers; Harmony's subsolvers vs CP-SAT defaults)",
        f" Curtois & Qu, limit {TIME_LIMIT:.0f} s per solve",
    ]
    for name in BEST_KNOWN:
        lines += instance_lines(name)
    lines.append(
        f" Harmony month ({PHYSICIANS} physicians, SQLite), limit {MONTH_LIMIT:.0f} s, "
        f"median of {MONTH_RUNS} runs each"
    )
    lines += month_lines()
    return lines


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
    sys.exit(0)
