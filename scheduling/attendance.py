"""Attendance: the chance a patient misses a slot, learned from the hub's booking history.

Optional. Ranking works with no history; once the hub holds enough past outcomes (at least
``MIN_OUTCOMES`` appointments whose outcome is known, ``MIN_NO_SHOWS`` of them missed: fewer
and a model mostly learns noise), :func:`train` fits a model that predicts each candidate
slot's no-show risk, and scheduling.ranking may favour slots the patient is likelier to keep.

Features of a (patient history, slot, booking time), each as it was known when the booking
was made (no outcome from after the booking leaks in):

* lead time, booking to slot, in whole days: log and bins (0, 1-2, 3-6, 7-13, 14-29, 30-59,
  60+); an unknown booking time is flagged and filled with the median known lead time;
* local hour (clipped to 06..20) and weekday of the slot, in the clinic's zone;
* the patient's smoothed past no-show rate (as log-odds) and number of past outcomes (log);
* the practitioner's smoothed past no-show rate (as log-odds).

Rates are smoothed towards the base rate with ``PRIOR_VISITS`` pseudo-visits, so one miss
out of one visit is not a 100 % no-show patient.

Why a logistic regression: its probabilities are calibrated (the reasons quote them as
percentages), it is regularised for thin history, and a prediction is a sum of per-value
weights, so scoring 50,000 candidates is three table look-ups (weekday and minute, lead day,
practitioner) and a sigmoid, with no scikit-learn at ranking time. scikit-learn is imported
only inside :func:`train` and :func:`evaluate_held_back`, so start-up and the no-history
path never load it.

:func:`evaluate_held_back` measures the model on the latest bookings after training on the
earliest, beside the base rate and the patient's own smoothed past rate. The tests and the
benchmark run it on synthetic history with planted effects; on a clinic's real history it
says whether the model is worth switching on. Pure: no clock, no storage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from scheduling.ranking import Attendance, SlotTable, zone_of

MIN_OUTCOMES = 200
"""Fewer known outcomes than this and :func:`train` declines (returns None)."""
MIN_NO_SHOWS = 20
"""...likewise fewer no-shows: with a handful of misses there is no pattern to learn."""
PRIOR_VISITS = 4.0
"""Pseudo-visits at the base rate added to every patient's and practitioner's record."""
C = 1.0
"""Inverse L2 regularisation strength of the logistic regression (scikit-learn's default)."""
LEAD_EDGES_DAYS = (1, 3, 7, 14, 30, 60)
FIRST_HOUR, LAST_HOUR = 6, 20
DEFAULT_LEAD_DAYS = 14.0
"""Lead time assumed when no booking in the history says when it was made."""
MAX_LEAD_DAYS = 400
DAY = 86400

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

HOURS = LAST_HOUR - FIRST_HOUR + 1
LEAD_BINS = len(LEAD_EDGES_DAYS) + 1
NUMERIC = ("log_lead", "lead_unknown", "patient_rate", "patient_visits", "practitioner_rate")


@dataclass(frozen=True, slots=True)
class Visit:
    """One past appointment whose outcome is known: kept (False) or missed (True)."""

    patient_id: str
    start: datetime  # UTC
    booked_at: datetime | None  # None: not known; the lead time is then filled in
    no_show: bool
    practitioner_id: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    """Past outcomes of one patient or practitioner."""

    visits: int = 0
    no_shows: int = 0

    def rate(self, prior: float) -> float:
        """The no-show rate smoothed towards ``prior``."""
        return (self.no_shows + PRIOR_VISITS * prior) / (self.visits + PRIOR_VISITS)


@dataclass(frozen=True, slots=True)
class Scores:
    auc: float
    log_loss: float
    brier: float


@dataclass(frozen=True, slots=True)
class HeldBack:
    """Scores on the latest bookings of a model trained on the earlier ones."""

    train_rows: int
    test_rows: int
    test_no_show_rate: float
    model: Scores | None  # None when the earlier part is too thin to train on
    base_rate: Scores
    patient_rate: Scores


@dataclass(frozen=True, slots=True)
class _Features:
    hour: Int  # 0..HOURS-1
    weekday: Int  # 0 (Monday)..6
    lead_bin: Int  # 0..LEAD_BINS-1
    numeric: Float  # rows x len(NUMERIC)


@dataclass(frozen=True)
class AttendanceModel:
    """A trained no-show model: per-value weights of a logistic regression."""

    intercept: float
    hour: Float
    weekday: Float
    lead_bin: Float
    numeric: Float
    base_rate: float
    timezone: str
    outcomes: int
    no_shows: int
    practitioners: dict[str, Counts] = field(default_factory=dict)
    _by_time: Float = field(init=False, repr=False, compare=False)
    _by_lead: Float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Fold the weights into look-up tables: by (weekday, minute), by lead day."""
        hours = np.clip(np.arange(1440) // 60, FIRST_HOUR, LAST_HOUR) - FIRST_HOUR
        by_time = self.weekday[:, None] + self.hour[hours][None, :]
        days = np.arange(MAX_LEAD_DAYS + 1)
        by_lead = self.lead_bin[_lead_bin(days)] + self.numeric[0] * np.log1p(days)
        object.__setattr__(self, "_by_time", by_time.reshape(-1))
        object.__setattr__(self, "_by_lead", by_lead)

    def risk(self, table: SlotTable, patient: Counts, now: datetime) -> Float:
        """Predicted no-show risk of every candidate, were the patient to book it ``now``."""
        weekday, minute = table.local_day_and_minute(self.timezone)
        lead = np.clip((table.start - _epoch(now)) // DAY, 0, MAX_LEAD_DAYS)
        named = [self.practitioners.get(p or "", Counts()) for p in table.practitioner_ids]
        seen = np.array([c.visits for c in named], np.float64)
        missed = np.array([c.no_shows for c in named], np.float64)
        rate = (missed + PRIOR_VISITS * self.base_rate) / (seen + PRIOR_VISITS)
        constant = (
            self.intercept
            + self.numeric[2] * float(_logit(patient.rate(self.base_rate)))
            + self.numeric[3] * math.log1p(patient.visits)
        )
        per_practitioner = constant + self.numeric[4] * _logit(rate)
        z = (
            self._by_time[weekday * 1440 + minute]
            + self._by_lead[lead]
            + per_practitioner[table.practitioner]
        )
        return _sigmoid(z)

    def attendance(self, patient: Counts, now: datetime) -> Attendance:
        """The hook for ``Preferences.attendance``: this patient's risk on each slot."""
        whose = "this patient's usual" if patient.visits else "the average patient's"
        usual = patient.rate(self.base_rate)
        return Attendance(lambda table: self.risk(table, patient, now), usual, whose)

    def _logits(self, f: _Features) -> Float:
        """The same sum as :meth:`risk`, for feature rows built from history."""
        return (
            self.intercept
            + self.hour[f.hour]
            + self.weekday[f.weekday]
            + self.lead_bin[f.lead_bin]
            + f.numeric @ self.numeric
        )


@dataclass(frozen=True, slots=True)
class _Columns:
    """Visits column-wise, in the order given."""

    patient: Int
    practitioner: Int  # -1: none named
    practitioner_ids: list[str]
    start: Int  # epoch seconds
    booked: Int  # epoch seconds, filled in where unknown
    lead_unknown: Bool
    no_show: Bool

    def __len__(self) -> int:
        return len(self.start)

    def take(self, rows: Int) -> _Columns:
        return _Columns(
            self.patient[rows],
            self.practitioner[rows],
            self.practitioner_ids,
            self.start[rows],
            self.booked[rows],
            self.lead_unknown[rows],
            self.no_show[rows],
        )


def thin(outcomes: int, no_shows: int) -> bool:
    """Too little history to learn from (see ``MIN_OUTCOMES``, ``MIN_NO_SHOWS``)."""
    return outcomes < MIN_OUTCOMES or no_shows < MIN_NO_SHOWS


def train(visits: Sequence[Visit], timezone: str = "UTC") -> AttendanceModel | None:
    """A model of every outcome in ``visits``, or None when the history is too thin."""
    zone_of(timezone)
    cols = _columns(visits)
    return _train(cols, cols, timezone)


def evaluate_held_back(
    visits: Sequence[Visit], fraction: float = 0.2, timezone: str = "UTC"
) -> HeldBack:
    """Train on the earliest ``1 - fraction`` by booking time, score the latest ``fraction``.

    Features of a held-back booking use every outcome known when it was booked (as the
    live hub would); the model's weights come from the earlier bookings only."""
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be between 0 and 1")
    cols = _columns(visits)
    order = np.argsort(cols.booked, kind="stable")
    cut = round(len(order) * (1.0 - fraction))
    early, late = cols.take(order[:cut]), cols.take(order[cut:])
    if len(late) == 0 or len(early) == 0:
        raise ValueError("too few visits to hold any back")
    y = late.no_show.astype(np.int64)
    base = float(early.no_show.mean())

    def scores(p: Float) -> Scores:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else math.nan
        return Scores(auc, float(log_loss(y, p, labels=[0, 1])), float(brier_score_loss(y, p)))

    model = _train(early, cols, timezone)
    seen, missed = _counts_before(cols.patient, cols.start, cols.no_show, late.patient, late.booked)
    own = (missed + PRIOR_VISITS * base) / (seen + PRIOR_VISITS)
    return HeldBack(
        train_rows=len(early),
        test_rows=len(late),
        test_no_show_rate=float(y.mean()),
        model=None
        if model is None
        else scores(_sigmoid(model._logits(_features(late, cols, base, timezone)))),
        base_rate=scores(np.full(len(late), base)),
        patient_rate=scores(own),
    )


def _train(rows: _Columns, history: _Columns, timezone: str) -> AttendanceModel | None:
    """Fit on ``rows``; patient and practitioner rates are counted in ``history``."""
    no_shows = int(rows.no_show.sum())
    if thin(len(rows), no_shows):
        return None
    from sklearn.linear_model import LogisticRegression

    base = no_shows / len(rows)
    features = _features(rows, history, base, timezone)
    fit = LogisticRegression(C=C, solver="newton-cholesky", max_iter=200)
    fit.fit(_design(features), rows.no_show.astype(np.int64))
    w = fit.coef_[0].astype(np.float64)
    cuts = np.cumsum([HOURS, 7, LEAD_BINS])
    practitioners: dict[str, Counts] = {}
    for code in np.unique(history.practitioner[history.practitioner >= 0]).tolist():
        mine = history.practitioner == code
        ref = history.practitioner_ids[code]
        practitioners[ref] = Counts(int(mine.sum()), int(history.no_show[mine].sum()))
    return AttendanceModel(
        intercept=float(fit.intercept_[0]),
        hour=w[: cuts[0]],
        weekday=w[cuts[0] : cuts[1]],
        lead_bin=w[cuts[1] : cuts[2]],
        numeric=w[cuts[2] :],
        base_rate=base,
        timezone=timezone,
        outcomes=len(rows),
        no_shows=no_shows,
        practitioners=practitioners,
    )


def _columns(visits: Sequence[Visit]) -> _Columns:
    patients: dict[str, int] = {}
    practitioners: dict[str, int] = {}
    patient = np.array([patients.setdefault(v.patient_id, len(patients)) for v in visits])
    practitioner = np.array(
        [
            practitioners.setdefault(v.practitioner_id, len(practitioners))
            if v.practitioner_id
            else -1
            for v in visits
        ]
    )
    start = np.array([_epoch(v.start) for v in visits], np.int64)
    known = np.array([v.booked_at is not None for v in visits], np.bool_)
    booked = np.array(
        [_epoch(v.booked_at) if v.booked_at is not None else 0 for v in visits], np.int64
    )
    booked = np.minimum(booked, start)
    leads = (start - booked)[known]
    fill = float(np.median(leads)) if len(leads) else DEFAULT_LEAD_DAYS * DAY
    booked = np.where(known, booked, start - int(fill))
    return _Columns(
        patient.astype(np.int64),
        practitioner.astype(np.int64),
        list(practitioners),
        start,
        booked,
        ~known,
        np.array([v.no_show for v in visits], np.bool_),
    )


def _features(rows: _Columns, history: _Columns, base: float, timezone: str) -> _Features:
    """Each row's features as known at its booking time (``history`` holds all outcomes)."""
    hour, weekday = _local_hour_and_weekday(rows.start, timezone)
    lead = np.clip((rows.start - rows.booked) // DAY, 0, MAX_LEAD_DAYS)
    seen, missed = _counts_before(
        history.patient, history.start, history.no_show, rows.patient, rows.booked
    )
    named = history.practitioner >= 0
    by_seen, by_missed = _counts_before(
        history.practitioner[named],
        history.start[named],
        history.no_show[named],
        rows.practitioner,
        rows.booked,
    )
    by_seen = np.where(rows.practitioner >= 0, by_seen, 0)
    by_missed = np.where(rows.practitioner >= 0, by_missed, 0)
    numeric = np.column_stack(
        [
            np.log1p(lead),
            rows.lead_unknown.astype(np.float64),
            _logit((missed + PRIOR_VISITS * base) / (seen + PRIOR_VISITS)),
            np.log1p(seen),
            _logit((by_missed + PRIOR_VISITS * base) / (by_seen + PRIOR_VISITS)),
        ]
    )
    return _Features(
        np.clip(hour, FIRST_HOUR, LAST_HOUR) - FIRST_HOUR, weekday, _lead_bin(lead), numeric
    )


def _design(f: _Features) -> Float:
    """One-hot hour, weekday and lead bin beside the numeric columns, for scikit-learn."""
    n = len(f.hour)
    blocks = [
        np.eye(HOURS)[f.hour],
        np.eye(7)[f.weekday],
        np.eye(LEAD_BINS)[f.lead_bin],
        f.numeric,
    ]
    out = np.hstack(blocks) if n else np.zeros((0, HOURS + 7 + LEAD_BINS + len(NUMERIC)))
    return np.asarray(out, np.float64)


def _counts_before(
    group: Int, start: Int, no_show: Bool, q_group: Int, q_at: Int
) -> tuple[Int, Int]:
    """For each query: outcomes of its group that started before ``q_at``, and the misses.

    Sorted once by (group, start); each query is two binary searches."""
    if len(group) == 0:
        zero = np.zeros(len(q_group), np.int64)
        return zero, zero
    origin = int(min(start.min(), q_at.min() if len(q_at) else start.min()))
    span = int(max(start.max(), q_at.max() if len(q_at) else start.max())) - origin + 2
    order = np.lexsort((start, group))
    key = group[order] * span + (start[order] - origin)
    missed = np.concatenate(([0], np.cumsum(no_show[order].astype(np.int64))))
    at = np.clip(q_at - origin, 0, span - 1)
    lo = np.searchsorted(key, q_group * span, "left")
    hi = np.searchsorted(key, q_group * span + at, "left")
    return (hi - lo).astype(np.int64), (missed[hi] - missed[lo]).astype(np.int64)


def _local_hour_and_weekday(epochs: Int, timezone: str) -> tuple[Int, Int]:
    """As SlotTable.local_day_and_minute: offsets looked up once per half hour."""
    zone = zone_of(timezone)
    step = 1800
    buckets, inverse = np.unique(epochs // step, return_inverse=True)
    offsets = np.array(
        [
            _offset_seconds(datetime.fromtimestamp(int(b) * step, UTC).astimezone(zone))
            for b in buckets.tolist()
        ],
        np.int64,
    )
    local = epochs + offsets[inverse.reshape(-1)]
    return (local % 86400) // 3600, (local // 86400 + 3) % 7


def _offset_seconds(local: datetime) -> int:
    offset = local.utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _lead_bin(lead_days: Int) -> Int:
    return np.searchsorted(np.array(LEAD_EDGES_DAYS), lead_days, "right").astype(np.int64)


def _logit(p: Float | float) -> Float:
    q = np.clip(p, 1e-4, 1 - 1e-4)
    return np.asarray(np.log(q / (1 - q)), np.float64)


def _sigmoid(z: Float) -> Float:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), np.float64)


def _epoch(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no UTC offset")
    return int(value.timestamp())
