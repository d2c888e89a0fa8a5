"""Learned attendance on SYNTHETIC booking history with PLANTED effects: is it worth it?

The history is made up here, not a clinic's: 20,000 appointments of 2,000 patients over
two years, with no-shows drawn from planted effects (each patient's own propensity,
early-morning and late-afternoon slots, long lead times, Mondays, some practitioners).
The figures say the model finds planted effects and what it costs; they say nothing about
how much a real clinic's history holds. Run :func:`scheduling.attendance.evaluate_held_back`
on real history before switching it on.

Printed, each beside its baseline from the same run:
* held-back AUC / log-loss / Brier of the model (trained on the earliest 80 % of bookings,
  scored on the latest 20 %) against the base rate and the patient's own smoothed rate;
* training time;
* ranking latency, top 3 of 50,000 candidates, with the hook against without (p50/p99);
* how often the top 3 change with the model, and the mean predicted no-show risk of the
  picks with and without it.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial

from bench.bench_ranking import CANDIDATES, NOW, K, _percentiles, _timed, queries, synthetic
from scheduling.attendance import AttendanceModel, Counts, Visit, evaluate_held_back, train
from scheduling.ranking import Preferences, SlotTable, rank

APPOINTMENTS = 20_000
PATIENTS = 2_000
PRACTITIONERS = 200  # the same Practitioner/p<i> ids as bench_ranking's candidates
HISTORY_DAYS = 730
BASE_LOGIT = -2.3  # about 9 % before the planted effects
RANK_QUERIES = 200


def planted_logit(
    patient_effect: float, hour: int, weekday: int, lead_days: float, practitioner_effect: float
) -> float:
    """The planted no-show log-odds: what the model has to find."""
    z = BASE_LOGIT + patient_effect + practitioner_effect
    z += 1.0 if hour < 9 else 0.4 if hour >= 17 else 0.0
    z += 0.9 * min(lead_days, 60.0) / 60.0
    z += 0.3 if weekday == 0 else 0.0
    return z


def synthetic_history(
    appointments: int = APPOINTMENTS,
    patients: int = PATIENTS,
    seed: int = 5,
    end: datetime = NOW,
    days: int = HISTORY_DAYS,
) -> list[Visit]:
    """SYNTHETIC: past appointments with outcomes drawn from :func:`planted_logit`."""
    rnd = random.Random(seed)
    patient_effect = [rnd.gauss(0.0, 0.9) for _ in range(patients)]
    practitioner_effect = [rnd.gauss(0.0, 0.3) for _ in range(PRACTITIONERS)]
    first = end - timedelta(days=days)
    out = []
    while len(out) < appointments:
        booked = first + timedelta(seconds=rnd.randrange(days * 86400))
        lead = min(rnd.expovariate(1 / 12.0), 120.0)
        day = (booked + timedelta(days=lead)).date()
        hour = rnd.randrange(7, 19)
        start = datetime(day.year, day.month, day.day, hour, 15 * rnd.randrange(4), tzinfo=UTC)
        if start >= end or start <= booked or start.weekday() == 6:
            continue
        who, doc = rnd.randrange(patients), rnd.randrange(PRACTITIONERS)
        lead_days = (start - booked).total_seconds() / 86400
        z = planted_logit(
            patient_effect[who], hour, start.weekday(), lead_days, practitioner_effect[doc]
        )
        missed = rnd.random() < 1.0 / (1.0 + math.exp(-z))
        out.append(Visit(f"pat{who}", start, booked, missed, f"Practitioner/p{doc}"))
    return out


def run() -> list[str]:
    history = synthetic_history()
    held = evaluate_held_back(history, 0.2)
    began = time.perf_counter()
    model = train(history)
    train_s = time.perf_counter() - began
    assert model is not None and held.model is not None
    lines = [
        "Learned attendance (no-show risk) on SYNTHETIC history with PLANTED effects",
        f"  {len(history):,} appointments of {PATIENTS:,} patients; held back: latest "
        f"{held.test_rows:,} bookings (no-show rate {held.test_no_show_rate:.1%}), trained on "
        f"the earliest {held.train_rows:,}",
        "                         AUC    log-loss   Brier",
    ]
    for name, s in (
        ("model", held.model),
        ("patient's own rate", held.patient_rate),
        ("base rate (baseline)", held.base_rate),
    ):
        lines.append(f"  {name:<21} {s.auc:6.3f}   {s.log_loss:7.4f}   {s.brier:7.4f}")
    m, own, base = held.model, held.patient_rate, held.base_rate
    lines += [
        f"  model/base rate     log-loss {m.log_loss / base.log_loss:.3f}x   "
        f"Brier {m.brier / base.brier:.3f}x",
        f"  model/patient rate  log-loss {m.log_loss / own.log_loss:.3f}x   "
        f"Brier {m.brier / own.brier:.3f}x   AUC +{m.auc - own.auc:.3f}",
        f"  training on all {len(history):,}: {train_s * 1000:.0f} ms (scikit-learn already"
        " imported by the held-back run)",
    ]
    lines += _ranking(model, history)
    return lines


def _ranking(model: AttendanceModel, history: list[Visit]) -> list[str]:
    table = SlotTable(synthetic())
    rnd = random.Random(3)
    per_patient: dict[str, list[bool]] = {}
    for v in history:
        per_patient.setdefault(v.patient_id, []).append(v.no_show)
    who = sorted(per_patient)
    plain = queries(RANK_QUERIES)
    hooked = []
    for p in plain:
        outcomes = per_patient[rnd.choice(who)]
        counts = Counts(len(outcomes), sum(outcomes))
        hooked.append(replace(p, attendance=model.attendance(counts, NOW)))
    for p in plain[:5] + hooked[:5]:  # warm caches and NumPy
        rank(table, p, NOW, K)
    without = [_timed(partial(rank, table, p, NOW, K)) for p in plain]
    with_hook = [_timed(partial(rank, table, p, NOW, K)) for p in hooked]
    index = {c.slot_id: i for i, c in enumerate(table.candidates)}
    changed, risk_without, risk_with = 0, [], []
    for p, h in zip(plain, hooked, strict=True):
        a, b = rank(table, p, NOW, K).picks, rank(table, h, NOW, K).picks
        changed += {x.candidate.slot_id for x in a} != {x.candidate.slot_id for x in b}
        assert h.attendance is not None
        risk = h.attendance.risk(table)
        risk_without += [float(risk[index[x.candidate.slot_id]]) for x in a]
        risk_with += [float(risk[index[x.candidate.slot_id]]) for x in b]
    w50, w99 = _percentiles(with_hook)
    n50, n99 = _percentiles(without)
    mean_without = sum(risk_without) / len(risk_without)
    mean_with = sum(risk_with) / len(risk_with)
    return [
        f"  ranking, top {K} of {CANDIDATES:,} candidates, {RANK_QUERIES} queries "
        f"(attendance weight {Preferences().weights.attendance})",
        f"    with hook          p50 {w50:7.2f} ms   p99 {w99:7.2f} ms",
        f"    without (baseline) p50 {n50:7.2f} ms   p99 {n99:7.2f} ms",
        f"    ratio with/without p50 {w50 / n50:.2f}x   p99 {w99 / n99:.2f}x",
        f"    top {K} changed by the model in {changed}/{RANK_QUERIES} queries "
        f"({changed / RANK_QUERIES:.0%})",
        f"    mean predicted no-show risk of the picks: {mean_with:.1%} with the model, "
        f"{mean_without:.1%} without (ratio {mean_with / mean_without:.2f}x)",
    ]


if __name__ == "__main__":
    print("\n".join(run()))
