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
4. ``recover_accepted`` finishes what a process that died inside ``accept`` left: an offer
   accepted but never linked to an appointment (the booking landed, or it did not).

Offers expire ``offer_minutes`` after they are made, and never later than the lead time
before the slot, so whoever accepts still has that much notice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from canonical.search import search
from canonical.tables import resources
from hub.booking import ENDED, STALE_PENDING, BookingError, BookingOrder, BookingService
from hub.db import write_turn
from hub.message_store import as_utc, utc_text, utcnow
from hub.notifications.dispatcher import lock_cursor
from hub.notifications.outbox import Channels, store
from hub.notifications.routing import Message
from hub.notifications.service import channels_for
from hub.settings import Settings
from hub.slot_candidates import free_slots, past_practitioners
from hub.tables import slot_bookings
from hub.users import users
from hub.waitlist_tables import waitlist_entries, waitlist_offers
from scheduling.ranking import Candidate, Preferences, RankingError, TimeWindow, rank

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NOTIFICATION_KIND = "waitlist_offer"
REQUESTED_BY = "waitlist"
RECOVER_AFTER = timedelta(minutes=2)
"""An accepted offer still without an appointment this long after the click is presumed
orphaned by a process that died while booking (a live booking answers well before)."""


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
            "start": utc_text(candidate.start),
            "expires_at": utc_text(expires),
        },
    )


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


# -- reading ------------------------------------------------------------------------------


def get_entry(engine: Engine, entry_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(waitlist_entries).where(waitlist_entries.c.id == entry_id)
        ).first()
    return dict(row._mapping) if row else None


def list_entries(
    engine: Engine, *, patient_id: str | None = None, active: bool | None = None
) -> list[dict[str, Any]]:
    """Entries oldest first, narrowed to one patient and/or to active or closed ones."""
    query = select(waitlist_entries).order_by(waitlist_entries.c.created_at, waitlist_entries.c.id)
    if patient_id is not None:
        query = query.where(waitlist_entries.c.patient_id == patient_id)
    if active is not None:
        query = query.where(waitlist_entries.c.active == int(active))
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def get_offer(engine: Engine, offer_id: int) -> dict[str, Any] | None:
    """The offer with its entry's patient_id, or None."""
    found = list_offers(engine, offer_id=offer_id)
    return found[0] if found else None


def list_offers(
    engine: Engine,
    *,
    patient_id: str | None = None,
    state: str | None = None,
    entry_id: int | None = None,
    offer_id: int | None = None,
) -> list[dict[str, Any]]:
    """Offers newest first, each with the patient it was made to."""
    query = (
        select(waitlist_offers, waitlist_entries.c.patient_id)
        .join(waitlist_entries, waitlist_entries.c.id == waitlist_offers.c.entry_id)
        .order_by(waitlist_offers.c.offered_at.desc(), waitlist_offers.c.id.desc())
    )
    for column, value in (
        (waitlist_entries.c.patient_id, patient_id),
        (waitlist_offers.c.state, state),
        (waitlist_offers.c.entry_id, entry_id),
        (waitlist_offers.c.id, offer_id),
    ):
        if value is not None:
            query = query.where(column == value)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


# -- recovery -----------------------------------------------------------------------------


def recover_accepted(
    engine: Engine,
    settings: Settings,
    now: datetime | None = None,
    *,
    older_than: timedelta = RECOVER_AFTER,
    policy: WaitlistPolicy | None = None,
    channels: Channels | None = None,
) -> list[int]:
    """Settle offers accepted more than ``older_than`` ago that never got their appointment.

    If the booking landed (a live Appointment on the slot for the patient), the offer and its
    entry are linked to it as ``accept`` would have done. If not, the offer is reopened while
    it still stands and the entry is active (the patient may accept again), or closed and
    the slot offered on (lost if the slot was booked by someone else meanwhile). An
    offer whose booking still holds a fresh pending claim is left alone: the booking service
    treats that claim as alive for ``STALE_PENDING``, so reopening earlier would only lose.
    Returns the ids of the offers it settled."""
    now = now or utcnow()
    with engine.connect() as conn:
        rows = conn.execute(
            select(waitlist_offers, waitlist_entries.c.patient_id, waitlist_entries.c.active)
            .join(waitlist_entries, waitlist_entries.c.id == waitlist_offers.c.entry_id)
            .where(
                waitlist_offers.c.state == "accepted",
                waitlist_offers.c.appointment_id.is_(None),
                waitlist_offers.c.decided_at <= now - older_than,
            )
            .order_by(waitlist_offers.c.id)
        ).all()
    settled: list[int] = []
    freed: list[str] = []
    for offer in rows:
        try:
            outcome = _recover(engine, offer, now)
        except Exception as exc:  # one offer must not hold back the others
            log.warning("recovery of accepted waitlist offer %s failed: %s", offer.id, exc)
            continue
        if outcome is not None:
            settled.append(int(offer.id))
            if outcome in ("expired", "declined"):
                freed.append(offer.slot_id)
    _reoffer(engine, settings, freed, now, policy=policy, channels=channels)
    return settled


def _recover(engine: Engine, offer: Any, now: datetime) -> str | None:
    """What became of one orphaned offer: accepted (linked), offered, expired, lost, or None
    when its booking may still be running."""
    landed = _landed_appointment(engine, offer.slot_id, offer.patient_id)
    if landed is not None:
        _link(engine, offer, landed, now)
        return "accepted"
    if not _claim_released(engine, offer.slot_id, f"{REQUESTED_BY}:{offer.id}", now):
        return None
    if _free_candidate(engine, offer.slot_id) is None:
        state = "lost"
    elif not offer.active:
        state = "declined"  # the patient left the waitlist meanwhile
    elif as_utc(offer.expires_at) > now:
        state = "offered"
    else:
        state = "expired"
    values: dict[str, Any] = {"state": state, "last_error": "booking never finished"}
    if state == "offered":
        values.update(decided_at=None)
    else:
        values.update(open_slot_id=None, decided_at=now)
    with write_turn(engine), engine.begin() as conn:
        changed = conn.execute(
            update(waitlist_offers)
            .where(
                waitlist_offers.c.id == offer.id,
                waitlist_offers.c.state == "accepted",
                waitlist_offers.c.appointment_id.is_(None),
            )
            .values(values)
        ).rowcount
    return state if changed == 1 else None


def _landed_appointment(engine: Engine, slot_id: str, patient_id: str) -> str | None:
    """A live canonical Appointment on the slot for the patient: the booking did land."""
    with Session(engine) as session:
        found = search(
            session,
            "Appointment",
            [("slot", f"Slot/{slot_id}"), ("patient", f"Patient/{patient_id}")],
        )
    live = [a for a in found.resources if a.get("status") not in ENDED]
    return str(live[0]["id"]) if live else None


def _link(engine: Engine, offer: Any, appointment_id: str, now: datetime) -> None:
    """Record the landed booking on the offer, its entry and the slot claim."""
    with write_turn(engine), engine.begin() as conn:
        conn.execute(
            update(waitlist_offers)
            .where(waitlist_offers.c.id == offer.id)
            .values(open_slot_id=None, appointment_id=appointment_id)
        )
        conn.execute(
            update(waitlist_entries)
            .where(waitlist_entries.c.id == offer.entry_id)
            .values(active=0, appointment_id=appointment_id, updated_at=now)
        )
        conn.execute(
            update(slot_bookings)
            .where(
                slot_bookings.c.slot_id == offer.slot_id,
                slot_bookings.c.state == "pending",
                slot_bookings.c.requested_by == f"{REQUESTED_BY}:{offer.id}",
            )
            .values(state="booked", appointment_id=appointment_id)
        )


def _claim_released(engine: Engine, slot_id: str, requested_by: str, now: datetime) -> bool:
    """Drop this offer's pending claim once it is stale; False while it may be alive."""
    with write_turn(engine), engine.begin() as conn:
        claim = conn.execute(
            select(slot_bookings).where(
                slot_bookings.c.slot_id == slot_id,
                slot_bookings.c.state == "pending",
                slot_bookings.c.requested_by == requested_by,
            )
        ).first()
        if claim is None:
            return True
        if now - as_utc(claim.created_at) <= STALE_PENDING:
            return False
        conn.execute(delete(slot_bookings).where(slot_bookings.c.id == claim.id))
    return True
