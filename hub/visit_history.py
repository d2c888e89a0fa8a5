"""Booking history from canonical Appointments, and the learned attendance hook for ranking.

A training row is an Appointment whose outcome is known: its start is past and its status
says the patient came (fulfilled, arrived, checked-in) or did not (noshow); booked,
cancelled, entered-in-error and the rest teach nothing about attendance. The booking time
is the Appointment's ``created`` when it has one, else when the hub first stored it (the
first version's ``last_updated``: a booking made through Harmony or synced from an EHR
arrives when it is made); when neither is before the start (history imported after the
fact) it is left unknown and scheduling.attendance fills in the median lead time.

Queries are bounded: the last ``LOOKBACK`` (two years), at most ``MAX_ROWS`` appointments,
newest first. The model is kept per process and database, and looked at again at most every
``RECHECK`` (15 minutes): one COUNT of known outcomes; it is retrained only when that count
grew by more than ``GROWTH`` (10 %) since it was trained, or the model is older than
``MAX_AGE`` (a day). Thin history (see scheduling.attendance.MIN_OUTCOMES) costs only that
COUNT, and no scikit-learn import. While one request retrains, others use the model they had.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from canonical.tables import resource_versions, resources
from hub.message_store import as_utc
from hub.slot_candidates import patient_appointments
from scheduling.attendance import AttendanceModel, Counts, Visit, thin, train
from scheduling.ranking import Attendance

ATTENDED = ("fulfilled", "arrived", "checked-in")
MISSED = "noshow"
OUTCOMES = (*ATTENDED, MISSED)
LOOKBACK = timedelta(days=730)
MAX_ROWS = 50_000
RECHECK = timedelta(minutes=15)
GROWTH = 0.10
MAX_AGE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class _Cached:
    model: AttendanceModel | None
    outcomes: int  # known outcomes when it was trained
    trained: datetime
    checked: datetime


_cache: dict[str, _Cached] = {}
_training = threading.Lock()


def attendance_for(
    session: Session, patient_id: str | None, now: datetime, timezone: str = "UTC"
) -> Attendance | None:
    """The ``Preferences.attendance`` hook for this patient, or None when the hub's history
    is too thin for a model. A patient with no visits of their own still gets one (the
    slot's hour, weekday, lead time and practitioner still count), compared with the
    average patient. ``timezone`` is the clinic's, for the slots' local hour and weekday."""
    model = current_model(session, now, timezone)
    if model is None:
        return None
    counts = patient_counts(session, patient_id, now) if patient_id else Counts()
    return model.attendance(counts, now)


def current_model(session: Session, now: datetime, timezone: str = "UTC") -> AttendanceModel | None:
    """The cached model, rechecked and retrained as the module docstring says."""
    key = f"{session.get_bind().engine.url!r}|{timezone}"
    cached = _cache.get(key)
    if cached is not None and timedelta(0) <= now - cached.checked < RECHECK:
        return cached.model
    if not _training.acquire(blocking=False):
        return cached.model if cached is not None else None
    try:
        outcomes, no_shows = outcome_counts(session, now)
        stale = cached is None or now - cached.trained >= MAX_AGE
        if not stale and cached is not None and outcomes <= cached.outcomes * (1 + GROWTH):
            _cache[key] = _Cached(cached.model, cached.outcomes, cached.trained, now)
            return cached.model
        model = None if thin(outcomes, no_shows) else train(visits(session, now), timezone)
        _cache[key] = _Cached(model, outcomes, now, now)
        return model
    finally:
        _training.release()


def clear_cache() -> None:
    """Forget every cached model (tests; after a bulk import)."""
    _cache.clear()


def outcome_counts(session: Session, now: datetime) -> tuple[int, int]:
    """Known outcomes in the look-back window, and how many were no-shows."""
    rows = session.execute(
        select(resources.c.status, func.count())
        .where(*_known_outcomes(now))
        .group_by(resources.c.status)
    ).all()
    counts = {status: int(n) for status, n in rows}
    return sum(counts.values()), counts.get(MISSED, 0)


def visits(session: Session, now: datetime, limit: int = MAX_ROWS) -> list[Visit]:
    """Training rows: the newest ``limit`` known outcomes of the look-back window."""
    first_seen = (
        select(resource_versions.c.last_updated)
        .where(
            resource_versions.c.resource_pk == resources.c.pk,
            resource_versions.c.version_id == 1,
        )
        .correlate(resources)
        .scalar_subquery()
    )
    rows = session.execute(
        select(resources.c.start, resources.c.status, resources.c.resource, first_seen)
        .where(*_known_outcomes(now))
        .order_by(resources.c.start.desc(), resources.c.pk.desc())
        .limit(limit)
    ).all()
    out = []
    for start, status, appointment, seen in rows:
        patient = _actor(appointment, "Patient/")
        if patient is None or start is None:
            continue
        start = as_utc(start)
        booked = _booked_at(appointment, seen, start)
        practitioner = _actor(appointment, "Practitioner/")
        out.append(Visit(patient.split("/", 1)[1], start, booked, status == MISSED, practitioner))
    return out


def patient_counts(session: Session, patient_id: str, now: datetime) -> Counts:
    """This patient's known outcomes in the look-back window."""
    rows = session.execute(
        select(resources.c.status, func.count())
        .where(resources.c.pk.in_(patient_appointments(patient_id)), *_known_outcomes(now))
        .group_by(resources.c.status)
    ).all()
    counts = {status: int(n) for status, n in rows}
    return Counts(sum(counts.values()), counts.get(MISSED, 0))


def _known_outcomes(now: datetime) -> tuple[Any, ...]:
    return (
        resources.c.resource_type == "Appointment",
        resources.c.status.in_(OUTCOMES),
        resources.c.start >= now - LOOKBACK,
        resources.c.start < now,
    )


def _actor(appointment: dict[str, Any], prefix: str) -> str | None:
    for participant in appointment.get("participant") or []:
        ref = str((participant.get("actor") or {}).get("reference", ""))
        if ref.startswith(prefix) and len(ref) > len(prefix):
            return ref
    return None


def _booked_at(
    appointment: dict[str, Any], first_seen: datetime | None, start: datetime
) -> datetime | None:
    for candidate in (_instant(appointment.get("created")), first_seen and as_utc(first_seen)):
        if candidate is not None and candidate <= start:
            return candidate
    return None


def _instant(value: Any) -> datetime | None:
    """A FHIR dateTime (a date alone means its midnight UTC), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
