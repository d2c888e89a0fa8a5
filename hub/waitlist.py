"""Waitlist backfill: a freed slot is offered to the waiting patient who fits it best.

1. ``on_slot_freed`` scores every active entry's preferences against the one slot with
   scheduling.ranking (the entry's visit type and practitioner become hard rules, and the
   minimum lead time is added to the patient's own notice), offers the slot to the best
   (ties: whoever joined first) and tells that patient's users through the notification
   outbox. ``waitlist_offer.open_slot_id`` is unique, so one slot has one open offer.
2. ``accept`` turns the offer from offered to accepted with a conditional update (one of
   two clicks on one offer gets past it), then books through BookingService, whose slot
   claim decides against every other path to the slot (a desk booking, the API). Losing
   there marks the offer lost and answers 409.
3. ``expire_offers`` (and ``decline``, ``leave``) let the offer go and offer the slot to
   the next patient who has not had it yet.

Offers expire ``offer_minutes`` after they are made, and never later than the lead time
before the slot, so whoever accepts still has that much notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from canonical.tables import resources
from hub.booking import BookingError, BookingOrder, BookingService
from hub.db import write_turn
from hub.message_store import as_utc, utcnow
from hub.notifications.dispatcher import lock_cursor
from hub.notifications.outbox import Channels, store
from hub.notifications.routing import Message
from hub.notifications.service import channels_for
from hub.settings import Settings
from hub.slot_candidates import free_slots, past_practitioners
from hub.users import users
from hub.waitlist_tables import waitlist_entries, waitlist_offers
from scheduling.ranking import Candidate, Preferences, RankingError, TimeWindow, rank

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NOTIFICATION_KIND = "waitlist_offer"
REQUESTED_BY = "waitlist"


@dataclass(frozen=True, slots=True)
class WaitlistPolicy:
    """How much notice a backfilled slot must leave, and how long an offer stands."""

    min_lead: timedelta = timedelta(hours=2)
    offer_ttl: timedelta = timedelta(minutes=30)


def policy_for(settings: Settings) -> WaitlistPolicy:
    return WaitlistPolicy(
        min_lead=timedelta(minutes=settings.waitlist_min_lead_minutes),
        offer_ttl=timedelta(minutes=settings.waitlist_offer_minutes),
    )


class WaitlistError(ValueError):
    """A request the waitlist refuses, with the HTTP status an endpoint would answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- entries ------------------------------------------------------------------------------


def join(
    engine: Engine,
    patient_id: str,
    preferences: dict[str, Any] | None = None,
    *,
    visit_type: str | None = None,
    practitioner_id: str | None = None,
    now: datetime | None = None,
) -> int:
    """A new active entry; its preferences are checked now so a bad one never ranks later."""
    prefs = dict(preferences or {})
    practitioner = practitioner_ref(practitioner_id)
    preferences_from(prefs, visit_type=visit_type, practitioner_id=practitioner)
    now = now or utcnow()
    with write_turn(engine), engine.begin() as conn:
        entry_id = conn.execute(
            insert(waitlist_entries)
            .values(
                patient_id=patient_id,
                visit_type=visit_type,
                practitioner_id=practitioner,
                preferences=prefs,
                active=1,
                created_at=now,
                updated_at=now,
            )
            .returning(waitlist_entries.c.id)
        ).scalar_one()
    return int(entry_id)


def leave(
    engine: Engine, settings: Settings, entry_id: int, now: datetime | None = None
) -> list[int]:
    """Deactivate the entry; a slot it held an offer for goes to the next patient."""
    now = now or utcnow()
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            update(waitlist_entries)
            .where(waitlist_entries.c.id == entry_id)
            .values(active=0, updated_at=now)
        )
        slots = _close_open(conn, waitlist_offers.c.entry_id == entry_id, "declined", now)
    return _reoffer(engine, settings, slots, now)


def practitioner_ref(practitioner_id: str | None) -> str | None:
    if not practitioner_id:
        return None
    return practitioner_id if "/" in practitioner_id else f"Practitioner/{practitioner_id}"


def preferences_from(
    data: dict[str, Any],
    *,
    visit_type: str | None,
    practitioner_id: str | None,
    min_lead: timedelta = timedelta(0),
    past: dict[str, int] | None = None,
) -> Preferences:
    """The stored JSON (the keys ``POST /api/slots/rank`` takes) as ranking Preferences."""
    try:
        zone = str(data.get("timezone") or "UTC")
        ZoneInfo(zone)
        home = data.get("home")
        notice = timedelta(hours=float(data.get("min_notice_hours") or 0))
        only = set(data.get("only_practitioners") or [])
        if practitioner_id:
            only = {practitioner_id}
        return Preferences(
            timezone=zone,
            preferred_days=frozenset(DAYS.index(d) for d in data.get("preferred_days") or []),
            blocked_days=frozenset(DAYS.index(d) for d in data.get("blocked_days") or []),
            preferred_times=tuple(
                TimeWindow(time.fromisoformat(w["start"]), time.fromisoformat(w["end"]))
                for w in data.get("preferred_times") or []
            ),
            min_notice=max(notice, min_lead),
            visit_type=visit_type or data.get("visit_type"),
            locations=frozenset(data.get("locations") or []),
            home=(float(home["latitude"]), float(home["longitude"])) if home else None,
            max_travel_km=float(data["max_travel_km"]) if data.get("max_travel_km") else None,
            practitioners=frozenset(data.get("practitioners") or []),
            only_practitioners=frozenset(only),
            only_locations=frozenset(data.get("only_locations") or []),
            past_visits=past or {},
        )
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise WaitlistError(422, f"waitlist preferences cannot be used: {exc}") from None


# -- offering -----------------------------------------------------------------------------


def on_slot_freed(
    engine: Engine,
    settings: Settings,
    slot_id: str,
    now: datetime | None = None,
    *,
    policy: WaitlistPolicy | None = None,
    channels: Channels | None = None,
) -> int | None:
    """Offer a free slot to the best-fitting waiting patient; the offer id, or None when the
    slot is not free, too close, already offered, or fits nobody."""
    now = now or utcnow()
    policy = policy or policy_for(settings)
    candidate = _free_candidate(engine, slot_id)
    if candidate is None or candidate.start - now < policy.min_lead:
        return None
    with engine.connect() as conn:
        if conn.execute(
            select(waitlist_offers.c.id).where(waitlist_offers.c.open_slot_id == slot_id)
        ).first():
            return None
        had_it = select(waitlist_offers.c.entry_id).where(
            (waitlist_offers.c.slot_id == slot_id) | waitlist_offers.c.open_slot_id.is_not(None)
        )  # offered this slot before, or holding an open offer for another one
        entries = conn.execute(
            select(waitlist_entries)
            .where(waitlist_entries.c.active == 1, waitlist_entries.c.id.not_in(had_it))
            .order_by(waitlist_entries.c.created_at, waitlist_entries.c.id)
        ).all()
    best: tuple[float, Any, dict[str, Any]] | None = None
    with Session(engine) as session:
        for entry in entries:
            score = _fit(session, entry, candidate, now, policy)
            if score is not None and (best is None or score["score"] > best[0]):
                best = (score["score"], entry, score)
    if best is None:
        return None
    return _make_offer(engine, settings, best[1], candidate, best[2], now, policy, channels)


def _free_candidate(engine: Engine, slot_id: str) -> Candidate | None:
    """The slot as a ranking candidate (its practitioner, place, types), if free and unclaimed."""
    with Session(engine) as session:
        start = session.execute(
            select(resources.c.start).where(
                resources.c.resource_type == "Slot",
                resources.c.id == slot_id,
                resources.c.status == "free",
            )
        ).scalar()
        if start is None:
            return None
        start = as_utc(start)
        found = free_slots(session, start, start + timedelta(seconds=1)).candidates
    return next((c for c in found if c.slot_id == slot_id), None)


def _fit(
    session: Session, entry: Any, candidate: Candidate, now: datetime, policy: WaitlistPolicy
) -> dict[str, Any] | None:
    """The ranking's score of the one slot for this entry, or None if a hard rule excludes it."""
    try:
        prefs = preferences_from(
            entry.preferences or {},
            visit_type=entry.visit_type,
            practitioner_id=entry.practitioner_id,
            min_lead=policy.min_lead,
            past=past_practitioners(session, entry.patient_id, now),
        )
        ranking = rank([candidate], prefs, now, k=1)
    except (WaitlistError, RankingError) as exc:
        log.warning("waitlist entry %s cannot be ranked: %s", entry.id, exc)
        return None
    if not ranking.picks:
        return None
    pick = ranking.picks[0]
    return {
        "score": pick.score,
        "components": pick.components,
        "meets": [r.code for r in pick.meets],
        "trades_off": [r.code for r in pick.trades_off],
    }


def _make_offer(
    engine: Engine,
    settings: Settings,
    entry: Any,
    candidate: Candidate,
    score: dict[str, Any],
    now: datetime,
    policy: WaitlistPolicy,
    channels: Channels | None,
) -> int | None:
    expires = min(now + policy.offer_ttl, candidate.start - policy.min_lead)
    try:
        with write_turn(engine), engine.begin() as conn:
            lock_cursor(conn)  # notification ids stay in order for the inbox stream
            offer_id = int(
                conn.execute(
                    insert(waitlist_offers)
                    .values(
                        entry_id=entry.id,
                        slot_id=candidate.slot_id,
                        state="offered",
                        open_slot_id=candidate.slot_id,
                        score=score,
                        offered_at=now,
                        expires_at=expires,
                    )
                    .returning(waitlist_offers.c.id)
                ).scalar_one()
            )
            messages = [
                _message(user_id, offer_id, candidate, expires, settings)
                for user_id in _patient_users(conn, entry.patient_id)
            ]
            store(conn, offer_id, messages, channels or channels_for(settings))
    except IntegrityError:
        return None  # another pass offered this slot first
    return offer_id


def _patient_users(conn: Connection, patient_id: str) -> list[int]:
    rows = conn.execute(
        select(users.c.id).where(users.c.patient_id == patient_id, users.c.active == 1)
    )
    return sorted(int(r.id) for r in rows)


def _message(
    user_id: int, offer_id: int, candidate: Candidate, expires: datetime, settings: Settings
) -> Message:
    zone = ZoneInfo(settings.default_timezone)
    local = candidate.start.astimezone(zone)
    until = expires.astimezone(zone)
    return Message(
        user_id=user_id,
        kind=NOTIFICATION_KIND,
        title="An earlier appointment is free",
        body=(
            f"An appointment on {local:%a} {local.day} {local:%b} at {local:%H:%M} "
            f"({settings.default_timezone}) has opened up. Accept it by {until:%H:%M} "
            f"on {until:%a} {until.day} {until:%b} to take it."
        ),
        data={
            "offer_id": offer_id,
            "slot_id": candidate.slot_id,
            "start": _iso(candidate.start),
            "expires_at": _iso(expires),
        },
    )


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


# -- answers ------------------------------------------------------------------------------


def accept(
    engine: Engine,
    booking: BookingService,
    offer_id: int,
    patient_id: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Book the offered slot for the patient; the Appointment. Raises BookingError: 404, 403,
    409 when the offer is gone or the slot went to someone else first."""
    now = now or utcnow()
    offer, entry = _offer_of(engine, offer_id, patient_id)
    if offer.state != "offered" or as_utc(offer.expires_at) <= now:
        state = offer.state if offer.state != "offered" else "expired"
        raise BookingError(409, f"waitlist offer {offer_id} is {state}")
    if not offer.active:
        raise BookingError(409, f"waitlist offer {offer_id} belongs to a closed waitlist entry")
    with write_turn(engine), engine.begin() as conn:
        taken = conn.execute(
            update(waitlist_offers)
            .where(
                waitlist_offers.c.id == offer_id,
                waitlist_offers.c.state == "offered",
                waitlist_offers.c.expires_at > now,
            )
            .values(state="accepted", decided_at=now)
        ).rowcount
    if taken != 1:
        raise BookingError(409, f"waitlist offer {offer_id} was already answered or expired")
    order = BookingOrder(
        slot_id=offer.slot_id,
        patient_id=patient_id,
        appointment_type=entry.visit_type,
        requested_by=f"{REQUESTED_BY}:{offer_id}",
    )
    try:
        appointment = booking.book(order)
    except BookingError as exc:
        retry = exc.status >= 500  # the source failed: the offer stands, the patient may retry
        _after_failure(engine, offer_id, "offered" if retry else "lost", str(exc), now)
        if retry:
            raise
        raise BookingError(
            409, f"Slot/{offer.slot_id} was taken before waitlist offer {offer_id}: {exc}"
        ) from None
    except BaseException as exc:
        _after_failure(engine, offer_id, "offered", str(exc), now)
        raise
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            update(waitlist_offers)
            .where(waitlist_offers.c.id == offer_id)
            .values(open_slot_id=None, appointment_id=appointment["id"])
        )
        conn.execute(
            update(waitlist_entries)
            .where(waitlist_entries.c.id == entry.id)
            .values(active=0, appointment_id=appointment["id"], updated_at=now)
        )
    return appointment


def decline(
    engine: Engine, settings: Settings, offer_id: int, patient_id: str, now: datetime | None = None
) -> list[int]:
    """The patient says no; the slot goes to the next patient (the new offer ids)."""
    now = now or utcnow()
    _offer_of(engine, offer_id, patient_id)
    with write_turn(engine), engine.begin() as conn:
        slots = _close_open(conn, waitlist_offers.c.id == offer_id, "declined", now)
    if not slots:
        raise BookingError(409, f"waitlist offer {offer_id} was already answered or expired")
    return _reoffer(engine, settings, slots, now)


def expire_offers(
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    *,
    policy: WaitlistPolicy | None = None,
    channels: Channels | None = None,
) -> list[int]:
    """Expire the offers whose time is up and offer their slots on; the new offer ids."""
    now = now or utcnow()
    with write_turn(engine), engine.begin() as conn:
        due = (waitlist_offers.c.state == "offered") & (waitlist_offers.c.expires_at <= now)
        slots = _close_open(conn, due, "expired", now)
    return _reoffer(engine, settings, slots, now, policy=policy, channels=channels)


def _offer_of(engine: Engine, offer_id: int, patient_id: str) -> tuple[Any, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            select(
                waitlist_offers,
                waitlist_entries.c.patient_id,
                waitlist_entries.c.visit_type,
                waitlist_entries.c.active,
            )
            .join(waitlist_entries, waitlist_entries.c.id == waitlist_offers.c.entry_id)
            .where(waitlist_offers.c.id == offer_id)
        ).first()
    if row is None:
        raise BookingError(404, f"waitlist offer {offer_id} does not exist")
    if row.patient_id != patient_id:
        raise BookingError(403, f"waitlist offer {offer_id} was made to another patient")
    entry = WaitingEntry(id=row.entry_id, patient_id=row.patient_id, visit_type=row.visit_type)
    return row, entry


@dataclass(frozen=True, slots=True)
class WaitingEntry:
    id: int
    patient_id: str
    visit_type: str | None


def _close_open(conn: Connection, where: Any, state: str, now: datetime) -> list[str]:
    """Close the matching open offers (state offered only); the slots they held."""
    rows = conn.execute(
        select(waitlist_offers.c.id, waitlist_offers.c.slot_id).where(
            where, waitlist_offers.c.state == "offered"
        )
    ).all()
    slots: list[str] = []
    for row in rows:
        closed = conn.execute(
            update(waitlist_offers)
            .where(waitlist_offers.c.id == row.id, waitlist_offers.c.state == "offered")
            .values(state=state, open_slot_id=None, decided_at=now)
        ).rowcount
        if closed == 1:
            slots.append(row.slot_id)
    return slots


def _after_failure(engine: Engine, offer_id: int, state: str, error: str, now: datetime) -> None:
    values: dict[str, Any] = {"state": state, "last_error": error[:2000]}
    if state != "offered":
        values.update(open_slot_id=None, decided_at=now)
    else:
        values.update(decided_at=None)
    with write_turn(engine), engine.begin() as conn:
        conn.execute(update(waitlist_offers).where(waitlist_offers.c.id == offer_id).values(values))


def _reoffer(
    engine: Engine,
    settings: Settings,
    slots: list[str],
    now: datetime,
    *,
    policy: WaitlistPolicy | None = None,
    channels: Channels | None = None,
) -> list[int]:
    offers: list[int] = []
    for slot_id in dict.fromkeys(slots):
        try:
            offer = on_slot_freed(engine, settings, slot_id, now, policy=policy, channels=channels)
        except Exception as exc:  # one slot must not hold back the others
            log.warning("waitlist re-offer of Slot/%s failed: %s", slot_id, exc)
            continue
        if offer is not None:
            offers.append(offer)
    return offers
