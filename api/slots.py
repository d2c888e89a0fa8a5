"""``POST /api/slots/rank``: the best k free slots for a patient's preferences, with reasons.

The body says what the patient wants; the hub reads the free slots of every source in the
window and the patient's past providers; scheduling.ranking decides. A patient ranks for
themselves only; staff, admin and the integration engine for anyone (or for no one: no
history, preferences only).

The free slots come from hub.candidate_cache: a table kept per window and patched with the
slots that changed since (see there for how stale it may be, and why that is safe), else
read from the database.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.orm import Session

from api.access import BOOKS_FOR_ANYONE
from api.deps import BookingPrincipal, Principal, SessionDep, SettingsDep
from hub.candidate_cache import candidates
from hub.settings import Settings
from hub.slot_candidates import past_practitioners
from hub.visit_history import attendance_for
from scheduling.ranking import (
    Attendance,
    Preferences,
    RankedSlot,
    Ranking,
    RankingError,
    TimeWindow,
    rank,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/slots", tags=["slots"])
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HORIZON = timedelta(days=60)
MAX_HORIZON = timedelta(days=366)
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class TimeRange(BaseModel):
    start: time
    end: time


class Position(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)


class PreferencesIn(BaseModel):
    """A patient's preferences; every field may be left out."""

    timezone: str = "UTC"
    preferred_days: list[Day] = []
    blocked_days: list[Day] = []
    preferred_times: list[TimeRange] = []
    min_notice_hours: float = Field(default=0, ge=0, le=24 * 365)
    visit_type: str | None = None
    locations: list[str] = []
    """Location references (``Location/<id>``) or names as the source gives them."""
    home: Position | None = None
    max_travel_km: float | None = Field(default=None, gt=0)
    practitioners: list[str] = []
    """Preferred providers (``Practitioner/<id>``), on top of the patient's history."""
    only_practitioners: list[str] = []
    only_locations: list[str] = []


class RankRequest(BaseModel):
    preferences: PreferencesIn = Field(default_factory=PreferencesIn)
    k: int = Field(default=3, ge=1, le=20)
    start: datetime | None = None
    end: datetime | None = None
    patient_id: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give an offset (Z or +hh:mm)")
        return value


def for_patient(principal: Principal, patient_id: str | None) -> str | None:
    """A patient ranks for themselves; anyone else for whichever patient they name."""
    if principal.has(*BOOKS_FOR_ANYONE):
        return patient_id
    own = principal.patient_id
    if not own:
        raise HTTPException(403, "no patient record is linked to this sign-in")
    if patient_id not in (None, own):
        raise HTTPException(403, "a patient can only rank slots for themselves")
    return own


def to_preferences(body: PreferencesIn, past: dict[str, int]) -> Preferences:
    return Preferences(
        timezone=body.timezone,
        preferred_days=frozenset(DAYS.index(d) for d in body.preferred_days),
        blocked_days=frozenset(DAYS.index(d) for d in body.blocked_days),
        preferred_times=tuple(TimeWindow(t.start, t.end) for t in body.preferred_times),
        min_notice=timedelta(hours=body.min_notice_hours),
        visit_type=body.visit_type,
        locations=frozenset(body.locations),
        home=(body.home.latitude, body.home.longitude) if body.home else None,
        max_travel_km=body.max_travel_km,
        practitioners=frozenset(body.practitioners),
        only_practitioners=frozenset(body.only_practitioners),
        only_locations=frozenset(body.only_locations),
        past_visits=past,
    )


def ranked_for(
    session: Session,
    prefs: PreferencesIn,
    k: int,
    window: tuple[datetime | None, datetime | None],
    patient_id: str | None,
    settings: Settings,
) -> tuple[Ranking, bool]:
    """Shared with FHIR ``$find``: candidates (cached per window) and history, rank;
    (ranking, truncated). A cached table may hold more than the window: the window's bounds
    become hard rules and ``considered`` counts only the slots inside it."""
    now = datetime.now(UTC)
    start = max(window[0] or now, now)
    end = window[1] or start + DEFAULT_HORIZON
    if end <= start:
        raise HTTPException(422, "end must be after start (and after now)")
    if end - start > MAX_HORIZON:
        raise HTTPException(422, "rank over at most a year at a time")
    found = candidates(session, start, end, now)
    past = past_practitioners(session, patient_id, now) if patient_id else {}
    wanted = replace(
        to_preferences(prefs, past),
        not_before=found.not_before,
        not_after=found.not_after,
        attendance=_attendance(session, patient_id, now, settings),
    )
    try:
        ranking = rank(found.table, wanted, now, k)
    except RankingError as exc:
        raise HTTPException(422, str(exc)) from None
    return replace(ranking, considered=found.considered), found.truncated


def _attendance(
    session: Session, patient_id: str | None, now: datetime, settings: Settings
) -> Attendance | None:
    """The learned no-show risk when it is on and can be had; ranking goes on without it
    (preferences only) when the model cannot be read or trained."""
    if not settings.ranking_attendance_model or patient_id is None:
        return None
    try:
        return attendance_for(session, patient_id, now, settings.default_timezone)
    except Exception as exc:  # the model is an adjustment, never a reason to fail a search
        log.warning("ranking without the no-show model: %s", exc)
        session.rollback()
        return None


def slot_json(pick: RankedSlot) -> dict[str, Any]:
    c = pick.candidate
    return {
        "slot_id": c.slot_id,
        "start": c.start.isoformat().replace("+00:00", "Z"),
        "end": c.end.isoformat().replace("+00:00", "Z"),
        "practitioner": c.practitioner_id,
        "location": c.place.key if c.place else None,
        "location_name": c.place.name if c.place else None,
        "visit_types": sorted(c.visit_types),
        "source": c.source,
        "score": pick.score,
        "components": pick.components,
        "meets": [{"code": r.code, "text": r.text} for r in pick.meets],
        "trades_off": [{"code": r.code, "text": r.text} for r in pick.trades_off],
    }


@router.post("/rank")
def rank_slots(
    body: RankRequest, session: SessionDep, settings: SettingsDep, who: BookingPrincipal
) -> dict[str, Any]:
    patient_id = for_patient(who, body.patient_id)
    ranking, truncated = ranked_for(
        session, body.preferences, body.k, (body.start, body.end), patient_id, settings
    )
    return {
        "k": body.k,
        "patient_id": patient_id,
        "considered": ranking.considered,
        "eligible": ranking.eligible,
        "truncated": truncated,
        "slots": [slot_json(p) for p in ranking.picks],
    }
