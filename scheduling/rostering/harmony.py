"""Harmony's own data as a rostering :class:`Problem`, and a draft roster generated from it.

The generic problem counts in days and local minutes; the conflict checker counts in real
instants and ISO weeks. So that a generated draft always publishes, the CP-SAT model gets,
on top of the problem, the checker's own verdicts: every pair of (day, shift type) the
checker would refuse (overlap, rest, forbidden sequence, computed on real UTC instants, DST
included), every candidate that touches a blackout date or a shift of another roster, and
the weekly maxima per ISO week (what other rosters already use in that week deducted).
The evaluator only knows the problem; the checker has the last word at write and publish.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from scheduling.context import SchedulingContext
from scheduling.errors import InvalidInput
from scheduling.records import Actor, roster_of, shifts_with_types
from scheduling.rostering.greedy import Admissible
from scheduling.rostering.problem import Cover, Fairness, Lock, Problem, Request, ShiftType, Staff
from scheduling.rules import RosterRules, load_rules
from scheduling.shifts import run_changes
from scheduling.tables import physicians, shift_types, shifts
from scheduling.times import as_utc, hours, local, local_dates, shift_bounds

if TYPE_CHECKING:  # OR-Tools loads only when a model is built: the API and CLI start fast
    from scheduling.rostering.harmony_report import GenerationReport
    from scheduling.rostering.model import Progress, RosterModel, SolverSettings

ALL_DAYS = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class Coverage:
    """``required`` physicians on shift type ``code`` on each of ``weekdays`` (0 Monday);
    each one short costs ``under_weight``, each extra ``over_weight``."""

    code: str
    required: int
    weekdays: frozenset[int] = ALL_DAYS
    under_weight: int = 100
    over_weight: int = 20


@dataclass(frozen=True, slots=True)
class Wish:
    """A physician's wish to work (``on``) or avoid ``code`` on ``day``; ``code`` None with
    ``on`` False: the whole day off."""

    physician_id: int
    day: date
    code: str | None
    on: bool = False
    weight: int = 10


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """Per-person limits and weights. Limits "per FTE" are scaled by each physician's FTE
    (rounded up), so a half-time physician gets half the nights and half the hours."""

    full_time_weekly_hours: float = 48.0
    """The period's maximum minutes: FTE x this x days / 7 (the weekly rule still holds)."""
    min_load: float = 0.0
    """Minimum minutes as a fraction of the FTE share of the whole requirement (0: none)."""
    max_per_kind_per_fte: Mapping[str, int] = field(default_factory=dict)
    max_consecutive_work: int | None = 6
    min_consecutive_off: int = 1
    max_weekends: int | None = None
    idle_weight: int = 50
    """Cost of a shift on a day its type has no coverage at all."""
    fairness_weight: int = 5
    night_fairness_weight: int = 10
    weekend_fairness_weight: int = 10


@dataclass(frozen=True, slots=True)
class TypeInfo:
    id: int
    code: str
    kind: str
    start_time: str
    minutes: int
    timezone: str


@dataclass(frozen=True, slots=True)
class PersonInfo:
    id: int
    name: str
    fte: float


@dataclass(slots=True)
class Instance:
    """The problem plus what only Harmony knows: ids, real instants, checker verdicts."""

    problem: Problem
    roster_id: int
    period_start: date
    types: dict[str, TypeInfo]
    people: dict[str, PersonInfo]
    bounds: dict[tuple[int, str], tuple[datetime, datetime]]
    clashing: list[tuple[int, str, int, str]]
    """(day, code, later day, code) pairs the conflict checker refuses for anyone."""
    banned: set[tuple[str, int, str]]
    """(staff, day, code) the checker refuses: blackouts, other rosters' shifts."""
    weekly: dict[str, dict[tuple[int, int], tuple[float, int]]]
    """staff -> ISO week -> (hours, shifts) still available in that week."""
    week_of: dict[tuple[int, str], tuple[int, int]]
    labels: list[str]
    """A name per ``problem.fairness`` entry, for the report."""
    locked: set[tuple[str, int, str]]


def _start_minute(text: str) -> int:
    hh, mm = text.split(":")
    return int(hh) * 60 + int(mm)


def _clash(
    rules: RosterRules, a: tuple[str, datetime, datetime], b: tuple[str, datetime, datetime]
) -> bool:
    """What the conflict checker says of one physician working both shifts."""
    if a[1] < b[2] and b[1] < a[2]:
        return True
    earlier, later = (a, b) if a[2] <= b[1] else (b, a)
    gap = hours(later[1] - earlier[2])
    if gap < rules.min_rest_hours:
        return True
    return any(
        s.matches(earlier[0], later[0]) and gap < s.within_hours for s in rules.forbidden_sequences
    )


def _typical_gap(first: TypeInfo, second: TypeInfo, days: int) -> float:
    """Hours between the end of ``first`` and the start of ``second`` ``days`` later, in
    local wall time (what the problem's start minutes describe)."""
    end = _start_minute(first.start_time) + first.minutes
    return (days * 1440 + _start_minute(second.start_time) - end) / 60


def _forbidden_next(rules: RosterRules, types: Sequence[TypeInfo]) -> dict[str, frozenset[str]]:
    """The rules' forbidden sequences as next-day successions of the problem."""
    out: dict[str, frozenset[str]] = {}
    for a in types:
        out[a.code] = frozenset(
            b.code
            for b in types
            if any(
                s.matches(a.kind, b.kind) and _typical_gap(a, b, 1) < s.within_hours
                for s in rules.forbidden_sequences
            )
        )
    return out


def _weeks(rules: RosterRules, start: datetime) -> tuple[int, int]:
    iso = local(start, rules.timezone).isocalendar()
    return iso.year, iso.week


def _load_types(conn: Connection, codes: set[str]) -> dict[str, TypeInfo]:
    rows = conn.execute(select(shift_types).where(shift_types.c.code.in_(sorted(codes)))).all()
    found = {
        r.code: TypeInfo(r.id, r.code, r.kind, r.start_time, r.duration_minutes, r.timezone)
        for r in rows
    }
    missing = codes - set(found)
    if missing:
        raise InvalidInput(f"unknown shift type codes {sorted(missing)}")
    return found


def build_instance(
    conn: Connection,
    roster_id: int,
    coverage: Sequence[Coverage],
    rules: RosterRules,
    options: GenerationOptions | None = None,
    wishes: Sequence[Wish] = (),
) -> Instance:
    """Read the roster's period, active physicians, shift types and shifts into an Instance."""
    options = options or GenerationOptions()
    roster = roster_of(conn, roster_id)
    if roster.status != "draft":
        raise InvalidInput(f"roster {roster_id} is {roster.status}; only a draft is generated")
    first: date = roster.period_start
    days = (roster.period_end - first).days + 1
    rows = conn.execute(
        shifts_with_types().where(shifts.c.roster_id == roster_id, shifts.c.status == "assigned")
    ).all()
    code_of = {r.shift_type_id: r.type_code for r in rows}
    types = _load_types(conn, {c.code for c in coverage} | set(code_of.values()))
    ordered = sorted(types.values(), key=lambda t: t.code)
    bounds = {
        (d, t.code): shift_bounds(first + timedelta(days=d), t.start_time, t.minutes, t.timezone)
        for d in range(days)
        for t in ordered
    }
    week_of = {key: _weeks(rules, start) for key, (start, _) in bounds.items()}

    people_rows = conn.execute(
        select(physicians).where(physicians.c.active == 1).order_by(physicians.c.id)
    ).all()
    people = {str(p.id): PersonInfo(p.id, p.name, float(p.fte)) for p in people_rows}
    type_rows = {
        r.code: r
        for r in conn.execute(select(shift_types).where(shift_types.c.code.in_(list(types))))
    }

    locks: list[Lock] = []
    locked: set[tuple[str, int, str]] = set()
    for r in rows:
        day = (local(as_utc(r.start), r.type_timezone).date() - first).days
        if str(r.physician_id) in people and 0 <= day < days:
            locks.append(Lock(str(r.physician_id), day, r.type_code))
            locked.add((str(r.physician_id), day, r.type_code))

    # cover: the requirement where given, zero (idle) elsewhere
    need: dict[tuple[int, str], Coverage] = {}
    for c in coverage:
        for d in range(days):
            if (first + timedelta(days=d)).weekday() in c.weekdays:
                need[d, c.code] = c
    cover = []
    for d in range(days):
        for t in ordered:
            want = need.get((d, t.code))
            if want is not None:
                cover.append(Cover(d, t.code, want.required, want.under_weight, want.over_weight))
            else:
                cover.append(Cover(d, t.code, 0, 0, options.idle_weight))
    total_required = sum(c.requirement * types[c.shift].minutes for c in cover)
    total_fte = sum(p.fte for p in people.values()) or 1.0

    # other rosters' shifts of these physicians near the period
    span = max([s.within_hours for s in rules.forbidden_sequences] + [rules.min_rest_hours])
    reach = timedelta(hours=span) + timedelta(days=8)
    low = min(s for s, _ in bounds.values()) - reach
    high = max(e for _, e in bounds.values()) + reach
    others = conn.execute(
        shifts_with_types().where(
            shifts.c.roster_id != roster_id,
            shifts.c.status == "assigned",
            shifts.c.start < high,
            shifts.c.end > low,
        )
    ).all()
    outside: dict[str, list[tuple[str, datetime, datetime]]] = defaultdict(list)
    for r in others:
        outside[str(r.physician_id)].append((r.type_kind, as_utc(r.start), as_utc(r.end)))

    forbidden_next = _forbidden_next(rules, ordered)
    shift_list = tuple(
        ShiftType(t.code, t.minutes, forbidden_next[t.code], _start_minute(t.start_time))
        for t in ordered
    )
    staff: list[Staff] = []
    banned: set[tuple[str, int, str]] = set()
    weekly: dict[str, dict[tuple[int, int], tuple[float, int]]] = {}
    for p in people_rows:
        sid = str(p.id)
        specialties, locations = set(p.specialties or ()), set(p.locations or ())
        eligible = frozenset(
            code
            for code, row in type_rows.items()
            if (not row.required_specialties or set(row.required_specialties) & specialties)
            and row.location in locations
        )
        blackout = {date.fromisoformat(d) for d in p.blackout_dates or ()}
        days_off = frozenset((d - first).days for d in blackout if 0 <= (d - first).days < days)
        fte = float(p.fte)
        for (d, code), (start, end) in bounds.items():
            if set(local_dates(start, end, types[code].timezone)) & blackout:
                banned.add((sid, d, code))
            kind = types[code].kind
            if any(_clash(rules, (kind, start, end), o) for o in outside[sid]):
                banned.add((sid, d, code))
        used: dict[tuple[int, int], tuple[float, int]] = defaultdict(lambda: (0.0, 0))
        for _, start, end in outside[sid]:
            h, n = used[_weeks(rules, start)]
            used[_weeks(rules, start)] = (h + hours(end - start), n + 1)
        weekly[sid] = {
            week: (rules.weekly_max_hours - used[week][0], rules.weekly_max_shifts - used[week][1])
            for week in set(week_of.values())
        }
        max_shifts = {
            t.code: math.ceil(options.max_per_kind_per_fte[t.kind] * fte)
            for t in ordered
            if t.kind in options.max_per_kind_per_fte
        }
        staff.append(
            Staff(
                id=sid,
                max_shifts=max_shifts,
                min_minutes=int(options.min_load * total_required * fte / total_fte),
                max_minutes=int(fte * options.full_time_weekly_hours * 60 * days / 7),
                max_consecutive_work=options.max_consecutive_work,
                min_consecutive_off=options.min_consecutive_off,
                max_weekends=options.max_weekends,
                days_off=days_off,
                eligible=eligible,
                min_rest_minutes=int(rules.min_rest_hours * 60),
            )
        )

    fairness, labels = _fairness(people, ordered, first, days, options)
    requests = _requests(wishes, people, ordered, first, days)

    clashing = []
    longest = max(t.minutes for t in ordered) / 60
    reach_days = math.ceil((span + longest) / 24) + 1
    for (d, a), (sa, ea) in bounds.items():
        for g in range(1, reach_days + 1):
            for b in ordered:
                if (d + g, b.code) not in bounds:
                    continue
                sb, eb = bounds[d + g, b.code]
                if _clash(rules, (types[a].kind, sa, ea), (b.kind, sb, eb)):
                    clashing.append((d, a, d + g, b.code))

    problem = Problem(
        days=days,
        shift_types=shift_list,
        staff=tuple(staff),
        cover=tuple(cover),
        requests=requests,
        locks=tuple(locks),
        fairness=fairness,
        first_weekday=first.weekday(),
        open_edges=False,
    )
    return Instance(
        problem,
        roster_id,
        first,
        types,
        people,
        bounds,
        clashing,
        banned,
        weekly,
        week_of,
        labels,
        locked,
    )


def _fairness(
    people: Mapping[str, PersonInfo],
    types: Sequence[TypeInfo],
    first: date,
    days: int,
    options: GenerationOptions,
) -> tuple[tuple[Fairness, ...], list[str]]:
    """Balance all shifts, nights and weekend types among physicians of the same FTE (the
    FTE-scaled maxima keep the groups in proportion to each other)."""
    by_fte: dict[float, list[str]] = defaultdict(list)
    for sid, p in people.items():
        by_fte[round(p.fte, 2)].append(sid)
    nights = frozenset(t.code for t in types if t.kind == "night")
    weekend = frozenset(t.code for t in types if t.kind == "weekend")
    goals: list[Fairness] = []
    labels: list[str] = []
    for fte, group in sorted(by_fte.items()):
        if len(group) < 2:
            continue
        for label, codes, weight in (
            ("shifts", frozenset(t.code for t in types), options.fairness_weight),
            ("nights", nights, options.night_fairness_weight),
            ("weekend", weekend, options.weekend_fairness_weight),
        ):
            if codes and weight > 0:
                goals.append(Fairness(tuple(group), codes, weight))
                labels.append(f"{label} among FTE {fte:g}")
    return tuple(goals), labels


def _requests(
    wishes: Sequence[Wish],
    people: Mapping[str, PersonInfo],
    types: Sequence[TypeInfo],
    first: date,
    days: int,
) -> tuple[Request, ...]:
    out = []
    for w in wishes:
        day = (w.day - first).days
        if str(w.physician_id) not in people or not 0 <= day < days:
            continue
        codes = [w.code] if w.code is not None else [t.code for t in types]
        out += [Request(str(w.physician_id), day, code, w.weight, w.on) for code in codes]
    return tuple(out)


def checker_rules(instance: Instance) -> Admissible:
    """The conflict checker's verdicts that :func:`model_for` adds, as the greedy's extra
    rule, so that its roster (the solve's hint) already respects them."""
    clashes: dict[tuple[int, str], set[tuple[int, str]]] = defaultdict(set)
    for d1, a, d2, b in instance.clashing:
        clashes[d1, a].add((d2, b))
        clashes[d2, b].add((d1, a))
    minutes = {key: round(hours(end - start) * 60) for key, (start, end) in instance.bounds.items()}

    def admissible(sid: str, day: int, code: str, mine: Mapping[int, str]) -> bool:
        if (sid, day, code) in instance.banned and (sid, day, code) not in instance.locked:
            return False
        if any(mine.get(d) == b for d, b in clashes.get((day, code), ())):
            return False
        week = instance.week_of[day, code]
        left_hours, left_shifts = instance.weekly[sid][week]
        same = [(d, c) for d, c in mine.items() if instance.week_of[d, c] == week]
        used = sum(minutes[key] for key in same) + minutes[day, code]
        return used <= math.floor(left_hours * 60) and len(same) < left_shifts

    return admissible


def model_for(instance: Instance) -> RosterModel:
    """The problem's model plus the conflict checker's verdicts as hard constraints; the
    verdicts also go to the greedy roster that starts the solve, so that it is feasible."""
    from scheduling.rostering.model import RosterModel

    roster = RosterModel(instance.problem)
    m, x = roster.model, roster.x
    index = {s.id: si for si, s in enumerate(instance.problem.staff)}
    for sid, day, code in instance.banned:
        if (sid, day, code) in instance.locked:
            continue
        var = x.get((index[sid], day, code))
        if var is not None:
            m.add(var == 0)
    for sid, si in index.items():
        for d1, a, d2, b in instance.clashing:
            one, two = x.get((si, d1, a)), x.get((si, d2, b))
            if one is not None and two is not None:
                m.add_bool_or([one.Not(), two.Not()])
        per_week: dict[tuple[int, int], list[tuple[Any, int]]] = defaultdict(list)
        for (s, day, code), var in x.items():
            if s == si:
                start, end = instance.bounds[day, code]
                per_week[instance.week_of[day, code]].append((var, round(hours(end - start) * 60)))
        for week, items in per_week.items():
            left_hours, left_shifts = instance.weekly[sid][week]
            m.add(sum(minutes * v for v, minutes in items) <= math.floor(left_hours * 60))
            if len(items) > left_shifts:
                m.add(sum(v for v, _ in items) <= max(0, left_shifts))
    roster.extra_rules = checker_rules(instance)
    return roster


def generate_draft(
    engine: Engine,
    context: SchedulingContext,
    actor: Actor,
    roster_id: int,
    coverage: Sequence[Coverage],
    time_limit: float = 20.0,
    options: GenerationOptions | None = None,
    wishes: Sequence[Wish] = (),
    settings: SolverSettings | None = None,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_model: Callable[[RosterModel], None] | None = None,
) -> GenerationReport:
    """Solve the draft's period and create the new assignments through ``run_changes`` (one
    all-or-nothing bulk judged by the conflict checker); the shifts already assigned stay as
    locks. Returns the objective, bound, violations and fairness of the whole draft.

    ``on_progress`` sees every incumbent and bound (on the solver's thread: keep it cheap);
    ``on_model`` gets the model just before the solve, so a job can :meth:`RosterModel.stop`
    it from another thread and still have its best roster so far written."""
    from scheduling.rostering.harmony_report import build_report

    actor.require_admin()
    with engine.connect() as conn:
        rules = load_rules(conn, context.default_rules)
        instance = build_instance(conn, roster_id, coverage, rules, options, wishes)
    model = model_for(instance)
    if on_model is not None:
        on_model(model)
    result = model.solve(time_limit, settings, on_progress)
    items = [
        {
            "op": "create",
            "roster_id": roster_id,
            "shift_type_id": instance.types[code].id,
            "date": (instance.period_start + timedelta(days=day)).isoformat(),
            "physician_id": instance.people[sid].id,
        }
        for sid, day, code in result.roster
        if (sid, day, code) not in instance.locked
    ]
    created: list[int] = []
    if items:
        data = run_changes(engine, context, actor, items).data
        rows = data if isinstance(data, list) else [data]
        created = [int(r["id"]) for r in rows]
    return build_report(instance, result, created)
