"""Learned attendance: on synthetic history with planted effects (early-morning and
long-lead slots missed more, each patient their own rate) the model beats the base rate and
the patient's own rate on held-back bookings; thin history gives no model; the ranking
shows the effect in its reasons; and with no hook the ranking is the preference-only one."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bench.bench_attendance import synthetic_history
from scheduling.attendance import (
    FIRST_HOUR,
    LAST_HOUR,
    MIN_NO_SHOWS,
    MIN_OUTCOMES,
    NUMERIC,
    PRIOR_VISITS,
    AttendanceModel,
    Counts,
    Visit,
    _Features,
    _lead_bin,
    _logit,
    _sigmoid,
    evaluate_held_back,
    train,
)
from scheduling.ranking import (
    Attendance,
    Candidate,
    Preferences,
    RankingError,
    SlotTable,
    Weights,
    rank,
)

NOW = datetime(2030, 1, 6, 12, 0, tzinfo=UTC)  # a Sunday; the history ends here
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def history() -> list[Visit]:
    return synthetic_history(5000, 500, seed=2, end=NOW)


@pytest.fixture(scope="module")
def model(history: list[Visit]) -> AttendanceModel:
    trained = train(history)
    assert trained is not None
    return trained


def slot(ident: str, start: datetime, who: str | None = "Practitioner/p1") -> Candidate:
    return Candidate(ident, start, start + timedelta(minutes=30), who)


def at(days: int, hour: int) -> datetime:
    return (NOW + timedelta(days=days)).replace(hour=hour, minute=0)


def test_the_model_beats_both_baselines_on_held_back_bookings(history: list[Visit]) -> None:
    held = evaluate_held_back(history, fraction=0.2)
    assert (held.train_rows, held.test_rows) == (4000, 1000)
    assert held.model is not None
    assert held.base_rate.auc == 0.5
    for baseline in (held.base_rate, held.patient_rate):
        assert held.model.auc > baseline.auc + 0.02
        assert held.model.log_loss < baseline.log_loss
        assert held.model.brier < baseline.brier
    assert held.patient_rate.log_loss < held.base_rate.log_loss  # patients differ: planted


def test_the_planted_effects_are_learned(model: AttendanceModel) -> None:
    table = SlotTable(
        [
            slot("early", at(2, 7)),
            slot("midday", at(2, 12)),
            slot("midday-far-ahead", at(50, 12)),
        ]
    )
    usual = model.risk(table, Counts(10, 1), NOW)
    early, midday, far = usual.tolist()
    assert early > midday * 1.4 and far > midday * 1.2
    often_missing = model.risk(table, Counts(10, 6), NOW)
    assert (often_missing > usual * 1.5).all()
    assert usual.min() > 0.0 and usual.max() < 1.0


def test_served_risk_is_the_evaluated_model(model: AttendanceModel) -> None:
    """``risk`` (look-up tables, used by the ranking) equals the fitted sum over the
    design features (used by training and the held-back scores)."""
    starts = [at(d, h) for d, h in ((0, 13), (1, 6), (3, 9), (8, 17), (40, 21), (500, 10))]
    who = [
        "Practitioner/p3",
        None,
        "Practitioner/p3",
        "Practitioner/nobody",
        None,
        "Practitioner/p7",
    ]
    table = SlotTable(
        [slot(f"s{i}", s, w) for i, (s, w) in enumerate(zip(starts, who, strict=True))]
    )
    patient = Counts(6, 2)
    lead = np.minimum(np.array([(s - NOW) // timedelta(days=1) for s in starts]), 400)
    base = model.base_rate
    practitioner_rate = [model.practitioners.get(w or "", Counts()).rate(base) for w in who]
    features = _Features(
        hour=np.clip([s.hour for s in starts], FIRST_HOUR, LAST_HOUR) - FIRST_HOUR,
        weekday=np.array([s.weekday() for s in starts]),
        lead_bin=_lead_bin(lead),
        numeric=np.column_stack(
            [
                np.log1p(lead),
                np.zeros(len(starts)),
                np.full(len(starts), _logit(patient.rate(base))),
                np.full(len(starts), np.log1p(patient.visits)),
                _logit(np.array(practitioner_rate)),
            ]
        ),
    )
    assert len(NUMERIC) == features.numeric.shape[1]
    expected = _sigmoid(model._logits(features))
    np.testing.assert_allclose(model.risk(table, patient, NOW), expected, rtol=1e-9)


def test_thin_history_gives_no_model(history: list[Visit]) -> None:
    assert train(history[: MIN_OUTCOMES - 1]) is None
    kept = [v for v in history if not v.no_show]
    missed = [v for v in history if v.no_show]
    assert train(kept[:500] + missed[: MIN_NO_SHOWS - 1]) is None
    assert train(kept[:500] + missed[:MIN_NO_SHOWS]) is not None
    held = evaluate_held_back(history[:240])  # 192 earlier bookings to train on: too few
    assert held.model is None and held.test_rows == 48


def test_smoothing_pulls_a_short_record_towards_the_base_rate() -> None:
    assert Counts(1, 1).rate(0.1) == pytest.approx((1 + PRIOR_VISITS * 0.1) / (1 + PRIOR_VISITS))
    assert Counts().rate(0.1) == pytest.approx(0.1)


def test_unknown_booking_times_are_filled_not_dropped(history: list[Visit]) -> None:
    unknown = [replace(v, booked_at=None) if i % 3 == 0 else v for i, v in enumerate(history)]
    held = evaluate_held_back(unknown)
    assert held.model is not None and held.model.log_loss < held.patient_rate.log_loss


def test_reasons_quote_the_risk_against_the_patients_usual_rate() -> None:
    table = SlotTable([slot("low", at(1, 10)), slot("high", at(1, 15)), slot("usual", at(2, 10))])
    risks = np.array([0.08, 0.35, 0.2])
    prefs = Preferences(attendance=Attendance(lambda t: risks, 0.21))
    picks = {p.candidate.slot_id: p for p in rank(table, prefs, NOW, 3).picks}
    assert [r.text for r in picks["low"].meets if r.code == "lower-no-show-risk"] == [
        "predicted no-show risk 8 %, lower than this patient's usual 21 %"
    ]
    assert [r.text for r in picks["high"].trades_off if r.code == "higher-no-show-risk"] == [
        "predicted no-show risk 35 %, higher than this patient's usual 21 %"
    ]
    about_usual = {r.code for r in (*picks["usual"].meets, *picks["usual"].trades_off)}
    assert about_usual.isdisjoint({"lower-no-show-risk", "higher-no-show-risk"})
    assert picks["low"].components["attendance"] == pytest.approx(0.92)


def test_the_model_moves_the_pick_and_says_why(model: AttendanceModel) -> None:
    """Without the model the 07:00 slot wins on soonness; with it, midday the same day."""
    table = SlotTable([slot("early", at(1, 7)), slot("midday", at(1, 12), "Practitioner/p2")])
    prefs = Preferences()
    assert [p.candidate.slot_id for p in rank(table, prefs, NOW, 1).picks] == ["early"]
    hooked = replace(prefs, attendance=model.attendance(Counts(20, 5), NOW))
    ranking = rank(table, hooked, NOW, 2)
    assert [p.candidate.slot_id for p in ranking.picks] == ["midday", "early"]
    best, early = ranking.picks
    assert "lower-no-show-risk" in {r.code for r in best.meets}
    assert "higher-no-show-risk" in {r.code for r in early.trades_off}
    text = next(r.text for r in early.trades_off if r.code == "higher-no-show-risk")
    assert text.startswith("predicted no-show risk ") and "this patient's usual" in text
    new_patient = rank(table, replace(prefs, attendance=model.attendance(Counts(), NOW)), NOW, 2)
    said = [r.text for p in new_patient.picks for r in (*p.meets, *p.trades_off)]
    assert any("the average patient's" in t for t in said)


def test_no_hook_leaves_the_ranking_as_it_was(model: AttendanceModel) -> None:
    table = SlotTable(
        [slot(f"s{h}", at(1 + h % 3, 7 + h), f"Practitioner/p{h % 4}") for h in range(12)]
    )
    prefs = Preferences(preferred_days=frozenset({1, 2}), past_visits={"Practitioner/p1": 2})
    plain = rank(table, prefs, NOW, 3)
    assert all("attendance" not in p.components for p in plain.picks)
    codes = {r.code for p in plain.picks for r in (*p.meets, *p.trades_off)}
    assert not codes & {"lower-no-show-risk", "higher-no-show-risk"}
    hook = model.attendance(Counts(5, 1), NOW)
    weightless = replace(prefs, attendance=hook, weights=Weights(attendance=0.0))
    same = rank(table, weightless, NOW, 3)
    assert [(p.candidate, p.score) for p in same.picks] == [
        (p.candidate, p.score) for p in plain.picks
    ]
    hooked = rank(table, replace(prefs, attendance=hook), NOW, 3)
    assert all("attendance" in p.components for p in hooked.picks)


def test_a_hook_must_give_one_risk_per_slot() -> None:
    table = SlotTable([slot("a", at(1, 10)), slot("b", at(2, 10))])
    broken = Preferences(attendance=Attendance(lambda t: np.zeros(1), 0.1))
    with pytest.raises(RankingError, match="risks for 2 slots"):
        rank(table, broken, NOW)


def test_importing_and_ranking_without_history_never_loads_scikit_learn() -> None:
    script = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "import hub.visit_history, scheduling.attendance\n"
        "from scheduling.ranking import Preferences, rank\n"
        "rank([], Preferences(), datetime(2030, 1, 1, tzinfo=UTC))\n"
        "print('sklearn' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "False"
