"""Roster generation on the Curtois & Qu benchmark: Instances 1 and 2 against their proven
optima (607 and 828), with the CP-SAT model Harmony uses and 2 workers (this machine's cores).

Each result is re-checked by the independent evaluator; a disagreement is printed, not hidden.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scheduling.rostering.curtois import read_curtois
from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.model import SolverSettings, solve

FIXTURES = Path("/work/shared/fixtures/rostering")
BEST_KNOWN = {"Instance1.txt": 607, "Instance2.txt": 828}
TIME_LIMIT = 60.0
WORKERS = 2


def _seconds(value: float | None) -> str:
    return "     -  " if value is None else f"{value:6.2f} s"


def instance_line(name: str, time_limit: float = TIME_LIMIT, workers: int = WORKERS) -> str:
    """One instance's figures; "to optimum" only once the optimum is proven."""
    problem = read_curtois(FIXTURES / name)
    result = solve(problem, time_limit, SolverSettings(workers=workers))
    best = BEST_KNOWN[name]
    if result.objective is None:
        return f"  {name:14} no roster in {time_limit:.0f} s (status {result.status})"
    gap = (result.objective - best) / best * 100
    verdict = evaluate(problem, result.roster)
    checked = (
        "evaluator agrees"
        if verdict.feasible and verdict.objective == result.objective
        else (f"EVALUATOR: {verdict.objective}, {len(verdict.violations)} violations")
    )
    to_optimum = result.best_found_seconds if result.optimal else None
    proof = result.wall_seconds if result.optimal else None
    return (
        f"  {name:14} objective {result.objective:5d}  bound {result.bound:7.0f}  "
        f"best known {best:5d}  gap {gap:5.1f} %  "
        f"first feasible {_seconds(result.first_feasible_seconds)}  "
        f"to optimum {_seconds(to_optimum)}  proof {_seconds(proof)}  ({checked})"
    )


def run() -> list[str]:
    lines = [f"Rostering (Curtois & Qu, CP-SAT, {WORKERS} workers, limit {TIME_LIMIT:.0f} s)"]
    for name in BEST_KNOWN:
        lines.append(instance_line(name))
    return lines


if __name__ == "__main__":
    for line in run():
        print(line, flush=True)
    sys.exit(0)
