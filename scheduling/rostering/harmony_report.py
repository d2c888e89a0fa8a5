"""What a generated draft costs and how evenly it loads people, in Harmony's terms.

Every penalty is priced from the problem alone (not read back from the solver), so the
violation list adds up to the independent evaluator's objective; the evaluator's hard
violations are listed too, without a price, and should never appear.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from scheduling.rostering.evaluator import evaluate
from scheduling.rostering.model import Assignment, SolveResult

if TYPE_CHECKING:
    from scheduling.rostering.harmony import Instance


@dataclass(frozen=True, slots=True)
class Violation:
    """One remaining violation: ``penalty`` None for a hard rule (never expected)."""

    rule: str
    physician_id: int | None
    physician: str | None
    dates: tuple[str, ...]
    penalty: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Load:
    """One physician's share; ``relative_load`` is minutes per FTE over the mean of that."""

    physician_id: int
    physician: str
    fte: float
    shifts: int
    minutes: int
    nights: int
    weekend_days: int
    relative_load: float


@dataclass(frozen=True, slots=True)
class GenerationReport:
    roster_id: int
    status: str
    objective: int | None
    bound: float
    solve_seconds: float
    created_shift_ids: tuple[int, ...]
    assignments: int
    penalty: int
    violations: tuple[Violation, ...]
    hard_violations: tuple[str, ...]
    fairness: tuple[Load, ...]
    spread: float
    """Most minus least ``relative_load`` among physicians with any FTE."""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_shift_ids"] = list(self.created_shift_ids)
        return data


def violations_of(instance: Instance, roster: list[Assignment]) -> list[Violation]:
    """Cover shortfalls and excess, ungranted wishes and fairness spreads, priced as the
    objective prices them."""
    p, first = instance.problem, instance.period_start

    def day_text(day: int) -> str:
        return (first + timedelta(days=day)).isoformat()

    staffed = Counter((day, code) for _, day, code in roster)
    mine = {(sid, day): code for sid, day, code in roster}
    out: list[Violation] = []
    for c in p.cover:
        have = staffed[c.day, c.shift]
        if have < c.requirement and c.under_weight:
            out.append(
                Violation(
                    "cover_under",
                    None,
                    None,
                    (day_text(c.day),),
                    (c.requirement - have) * c.under_weight,
                    f"{c.shift} on {day_text(c.day)}: {have} of {c.requirement} physicians",
                )
            )
        if have > c.requirement and c.over_weight:
            out.append(
                Violation(
                    "cover_over",
                    None,
                    None,
                    (day_text(c.day),),
                    (have - c.requirement) * c.over_weight,
                    f"{c.shift} on {day_text(c.day)}: {have} physicians, {c.requirement} wanted",
                )
            )
    for r in p.requests:
        if (mine.get((r.staff, r.day)) == r.shift) != r.on:
            who = instance.people[r.staff]
            wish = "work" if r.on else "not work"
            out.append(
                Violation(
                    "request",
                    who.id,
                    who.name,
                    (day_text(r.day),),
                    r.weight,
                    f"{who.name} asked to {wish} {r.shift} on {day_text(r.day)}",
                )
            )
    for goal, label in zip(p.fairness, instance.labels, strict=True):
        loads = {
            s: sum(1 for (o, _), c in mine.items() if o == s and c in goal.shifts)
            for s in goal.staff
        }
        if not loads:
            continue
        high = max(loads, key=lambda s: loads[s])
        low = min(loads, key=lambda s: loads[s])
        gap = loads[high] - loads[low]
        if gap:
            busy, idle = instance.people[high], instance.people[low]
            out.append(
                Violation(
                    "fairness",
                    busy.id,
                    busy.name,
                    (day_text(0), day_text(p.days - 1)),
                    goal.weight * gap,
                    f"{label}: {busy.name} has {loads[high]}, {idle.name} {loads[low]}",
                )
            )
    return out


def loads_of(instance: Instance, roster: list[Assignment]) -> list[Load]:
    """Per active physician: shifts, minutes, nights, weekend days, load relative to FTE."""
    p, first = instance.problem, instance.period_start
    minutes = {t.id: t.minutes for t in p.shift_types}
    per: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for sid, day, code in roster:
        per[sid].append((day, code))
    raw = []
    for sid, who in instance.people.items():
        worked = per[sid]
        total = sum(minutes[c] for _, c in worked)
        nights = sum(1 for _, c in worked if instance.types[c].kind == "night")
        weekend = sum(1 for d, _ in worked if (first + timedelta(days=d)).weekday() >= 5)
        raw.append((who, len(worked), total, nights, weekend))
    per_fte = [total / who.fte for who, _, total, _, _ in raw if who.fte > 0]
    mean = sum(per_fte) / len(per_fte) if per_fte else 0.0
    return [
        Load(
            who.id,
            who.name,
            who.fte,
            count,
            total,
            nights,
            weekend,
            round(total / who.fte / mean, 3) if mean and who.fte > 0 else 0.0,
        )
        for who, count, total, nights, weekend in raw
    ]


def build_report(instance: Instance, result: SolveResult, created: list[int]) -> GenerationReport:
    """The report of one solve, its roster checked by the independent evaluator."""
    roster = list(result.roster)
    evaluation = evaluate(instance.problem, roster)
    violations = violations_of(instance, roster)
    hard = [Violation("hard", None, None, (), None, message) for message in evaluation.violations]
    loads = loads_of(instance, roster)
    relative = [load.relative_load for load in loads if load.fte > 0]
    return GenerationReport(
        roster_id=instance.roster_id,
        status=result.status,
        objective=result.objective,
        bound=result.bound,
        solve_seconds=round(result.wall_seconds, 2),
        created_shift_ids=tuple(created),
        assignments=len(roster),
        penalty=sum(v.penalty or 0 for v in violations),
        violations=tuple(violations + hard),
        hard_violations=evaluation.violations,
        fairness=tuple(loads),
        spread=round(max(relative) - min(relative), 3) if relative else 0.0,
    )
