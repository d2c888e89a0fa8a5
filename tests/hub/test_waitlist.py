"""Waitlist backfill: who gets a freed slot, acceptance, races, expiry and the event watcher."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from hub.appointments import CancelReason
from hub.booking import BookingError, BookingOrder
from hub.message_store import utcnow
from hub.notifications.tables import notifications
from hub.runtime import HubRuntime
from hub.tables import slot_bookings
from hub.users import create_user
from hub.waitlist import (
    WaitlistPolicy,
    accept,
    decline,
    expire_offers,
    join,
    leave,
    list_offers,
    on_slot_freed,
    recover_accepted,
)
from hub.waitlist_tables import waitlist_entries, waitlist_offers
from hub.waitlist_watch import read_mark, watch_freed_slots
from tests.hub.test_appointments_seed import free_slots, patient, read, runtime_for, upload

MONDAY_9 = ("Dr Ada", "2030-05-06T09:00", "2030-05-06T09:30")
DAY_BEFORE = datetime(2030, 5, 5, 9, 0, tzinfo=UTC)
POLICY = WaitlistPolicy(min_lead=timedelta(hours=2), offer_ttl=timedelta(minutes=30))
MORNINGS = {"preferred_days": ["mon"], "preferred_times": [{"start": "08:00", "end": "10:00"}]}


def _slot(runtime: HubRuntime) -> str:
    upload(runtime, [MONDAY_9])
    (slot_id,) = free_slots(runtime)
    return slot_id


def _offer(engine: Engine, offer_id: int) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            select(waitlist_offers, waitlist_entries.c.patient_id)
            .join(waitlist_entries, waitlist_entries.c.id == waitlist_offers.c.entry_id)
            .where(waitlist_offers.c.id == offer_id)
        ).one()
    return dict(row._mapping)


def _offer_to(runtime: HubRuntime, slot_id: str, now: datetime = DAY_BEFORE) -> int:
    offer_id = on_slot_freed(runtime.engine, runtime.settings, slot_id, now, policy=POLICY)
    assert offer_id is not None
    return offer_id


def test_a_freed_slot_goes_to_the_best_fitting_patient(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    blocked, rushed, anyone, keen = (patient(runtime, n) for n in ("Mon", "Far", "Any", "Keen"))
    join(engine, blocked, {**MORNINGS, "blocked_days": ["mon"]}, now=DAY_BEFORE)
    join(engine, rushed, {**MORNINGS, "min_notice_hours": 48}, now=DAY_BEFORE)
    join(engine, anyone, {}, now=DAY_BEFORE)
    join(engine, keen, MORNINGS, now=DAY_BEFORE + timedelta(minutes=1))
    join(engine, keen, MORNINGS, practitioner_id="nobody", now=DAY_BEFORE)
    user = create_user(engine, "keen", roles={"patient"}, patient_id=keen)

    too_close = datetime(2030, 5, 6, 7, 30, tzinfo=UTC)  # inside the 2 h lead time
    assert on_slot_freed(engine, runtime.settings, slot_id, too_close, policy=POLICY) is None
    offer_id = _offer_to(runtime, slot_id)

    offer = _offer(engine, offer_id)
    assert offer["patient_id"] == keen and offer["state"] == "offered"
    assert offer["open_slot_id"] == slot_id
    assert "preferred-day" in offer["score"]["meets"]  # type: ignore[index]
    with engine.connect() as conn:
        told = conn.execute(select(notifications)).all()
    assert [(n.user_id, n.kind, n.data["offer_id"]) for n in told] == [
        (user.id, "waitlist_offer", offer_id)
    ]
    assert on_slot_freed(engine, runtime.settings, slot_id, DAY_BEFORE, policy=POLICY) is None

    upload(runtime, [("Dr Ada", "2030-05-07T09:00", "2030-05-07T09:30")], label="clinic-b")
    tuesday = next(s for s in free_slots(runtime) if s != slot_id)
    # keen holds an open offer, rushed's notice and blocked's Monday no longer stand in the way
    assert _offer(engine, _offer_to(runtime, tuesday))["patient_id"] == blocked


def test_accepting_books_the_slot_for_the_patient(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    pat, other = patient(runtime, "Ng"), patient(runtime, "Other")
    entry = join(engine, pat, MORNINGS, visit_type="Check-up", now=DAY_BEFORE)
    offer_id = _offer_to(runtime, slot_id)

    with pytest.raises(BookingError) as stranger:
        accept(engine, runtime.booking, offer_id, other, DAY_BEFORE)
    assert stranger.value.status == 403
    appointment = accept(engine, runtime.booking, offer_id, pat, DAY_BEFORE + timedelta(minutes=5))

    assert appointment["status"] == "booked"
    assert {"actor": {"reference": f"Patient/{pat}"}, "status": "accepted"} in appointment[
        "participant"
    ]
    assert read(runtime, "Slot", slot_id)["status"] == "busy"
    offer = _offer(engine, offer_id)
    assert (offer["state"], offer["appointment_id"], offer["open_slot_id"]) == (
        "accepted",
        appointment["id"],
        None,
    )
    with engine.connect() as conn:
        active = conn.execute(
            select(waitlist_entries.c.active).where(waitlist_entries.c.id == entry)
        ).scalar()
    assert active == 0
    with pytest.raises(BookingError, match="accepted") as again:
        accept(engine, runtime.booking, offer_id, pat, DAY_BEFORE + timedelta(minutes=6))
    assert again.value.status == 409


def test_concurrent_accepts_and_a_desk_booking_book_the_slot_once(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    pat = patient(runtime, "Ng")
    join(engine, pat, MORNINGS, now=DAY_BEFORE)
    offer_id = _offer_to(runtime, slot_id)
    start = threading.Barrier(7)
    won: list[str] = []
    lost: list[int] = []

    def attempt(desk: bool) -> None:
        start.wait()
        try:
            if desk:
                booked = runtime.booking.book(BookingOrder(slot_id=slot_id, requested_by="desk"))
            else:
                booked = accept(engine, runtime.booking, offer_id, pat, DAY_BEFORE)
            won.append(str(booked["id"]))
        except BookingError as exc:
            lost.append(exc.status)

    threads = [threading.Thread(target=attempt, args=(i == 0,)) for i in range(7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(won) == 1 and lost == [409] * 6
    with engine.connect() as conn:
        claims = conn.execute(select(slot_bookings)).all()
    assert [(c.state, c.appointment_id) for c in claims] == [("booked", won[0])]
    offer = _offer(engine, offer_id)
    assert offer["open_slot_id"] is None
    assert (offer["state"], offer["appointment_id"]) in (("accepted", won[0]), ("lost", None))


def test_an_expired_offer_moves_to_the_next_patient(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    first, second, third = (patient(runtime, n) for n in ("One", "Two", "Three"))
    join(engine, first, MORNINGS, now=DAY_BEFORE)
    join(engine, second, {}, now=DAY_BEFORE)
    third_entry = join(engine, third, {}, now=DAY_BEFORE + timedelta(minutes=1))
    offer_id = _offer_to(runtime, slot_id)
    assert _offer(engine, offer_id)["patient_id"] == first

    assert expire_offers(engine, runtime.settings, DAY_BEFORE + timedelta(minutes=29)) == []
    later = DAY_BEFORE + timedelta(minutes=30)
    (second_offer,) = expire_offers(engine, runtime.settings, later, policy=POLICY)
    assert _offer(engine, offer_id)["state"] == "expired"
    assert _offer(engine, second_offer)["patient_id"] == second
    with pytest.raises(BookingError, match="expired") as late:
        accept(engine, runtime.booking, offer_id, first, later)
    assert late.value.status == 409

    (third_offer,) = decline(engine, runtime.settings, second_offer, second, later)
    assert _offer(engine, third_offer)["patient_id"] == third
    assert leave(engine, runtime.settings, third_entry, later) == []  # nobody is left
    assert _offer(engine, third_offer)["state"] == "declined"
    assert read(runtime, "Slot", slot_id)["status"] == "free"


def test_the_watcher_offers_a_slot_a_cancel_freed_once(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    booked_for, waiting = patient(runtime, "Booked"), patient(runtime, "Waiting")
    join(engine, waiting, MORNINGS, now=DAY_BEFORE)
    # created free is new availability, not a freed slot: no offer
    assert watch_freed_slots(engine, runtime.settings, DAY_BEFORE, grace=timedelta(0)) == []
    appointment = runtime.booking.book(BookingOrder(slot_id=slot_id, patient_id=booked_for))
    seen = read_mark(engine)
    assert seen > 0

    runtime.appointments.cancel(appointment["id"], CancelReason(text="feeling better"))
    assert read(runtime, "Slot", slot_id)["status"] == "free"
    (offer_id,) = watch_freed_slots(
        engine, runtime.settings, DAY_BEFORE, policy=POLICY, grace=timedelta(0)
    )
    assert _offer(engine, offer_id)["patient_id"] == waiting
    assert read_mark(engine) > seen
    assert watch_freed_slots(engine, runtime.settings, DAY_BEFORE, grace=timedelta(0)) == []
    assert accept(engine, runtime.booking, offer_id, waiting, DAY_BEFORE)["status"] == "booked"


def _crash_after_click(engine: Engine, offer_id: int, decided_at: datetime) -> None:
    """What ``accept``'s conditional update leaves when the process dies right after it."""
    with engine.begin() as conn:
        conn.execute(
            update(waitlist_offers)
            .where(waitlist_offers.c.id == offer_id)
            .values(state="accepted", decided_at=decided_at)
        )


def _claims(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(slot_bookings)).all()
    return [(r.state, r.appointment_id, r.requested_by) for r in rows]


def test_recovery_links_an_accepted_offer_whose_booking_landed(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    pat = patient(runtime, "Ng")
    entry = join(engine, pat, MORNINGS, now=DAY_BEFORE)
    offer_id = _offer_to(runtime, slot_id)
    _crash_after_click(engine, offer_id, DAY_BEFORE)
    order = BookingOrder(slot_id=slot_id, patient_id=pat, requested_by=f"waitlist:{offer_id}")
    booked = runtime.booking.book(order)["id"]
    with engine.begin() as conn:  # died before the claim was marked booked, too
        conn.execute(update(slot_bookings).values(state="pending", appointment_id=None))

    early = DAY_BEFORE + timedelta(minutes=1)
    assert recover_accepted(engine, runtime.settings, early) == []
    assert _offer(engine, offer_id)["appointment_id"] is None
    assert recover_accepted(engine, runtime.settings, DAY_BEFORE + timedelta(minutes=3)) == [
        offer_id
    ]

    offer = _offer(engine, offer_id)
    assert (offer["state"], offer["appointment_id"], offer["open_slot_id"]) == (
        "accepted",
        booked,
        None,
    )
    with engine.connect() as conn:
        closed = conn.execute(
            select(waitlist_entries.c.active, waitlist_entries.c.appointment_id).where(
                waitlist_entries.c.id == entry
            )
        ).one()
    assert tuple(closed) == (0, booked)
    assert _claims(engine) == [("booked", booked, f"waitlist:{offer_id}")]
    assert recover_accepted(engine, runtime.settings, DAY_BEFORE + timedelta(hours=1)) == []


def test_recovery_reopens_an_unbooked_offer_once_its_claim_is_stale(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    pat = patient(runtime, "Ng")
    join(engine, pat, MORNINGS, now=DAY_BEFORE)
    offer_id = _offer_to(runtime, slot_id)  # stands until DAY_BEFORE + 30 min, years ahead
    now = utcnow()
    _crash_after_click(engine, offer_id, now - timedelta(minutes=3))
    with engine.begin() as conn:  # the booking claimed the slot, then the process died
        conn.execute(
            insert(slot_bookings).values(
                slot_id=slot_id,
                state="pending",
                requested_by=f"waitlist:{offer_id}",
                created_at=now,
            )
        )

    assert recover_accepted(engine, runtime.settings, now) == []  # the claim may be alive
    assert _offer(engine, offer_id)["state"] == "accepted"
    later = now + timedelta(minutes=6)
    assert recover_accepted(engine, runtime.settings, later) == [offer_id]

    offer = _offer(engine, offer_id)
    assert (offer["state"], offer["decided_at"], offer["open_slot_id"]) == (
        "offered",
        None,
        slot_id,
    )
    assert _claims(engine) == []
    appointment = accept(engine, runtime.booking, offer_id, pat, DAY_BEFORE)
    assert appointment["status"] == "booked"
    assert _offer(engine, offer_id)["appointment_id"] == appointment["id"]


def test_recovery_expires_a_lapsed_offer_and_offers_the_slot_on(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    first, second = patient(runtime, "One"), patient(runtime, "Two")
    join(engine, first, MORNINGS, now=DAY_BEFORE)
    join(engine, second, {}, now=DAY_BEFORE)
    offer_id = _offer_to(runtime, slot_id)
    _crash_after_click(engine, offer_id, DAY_BEFORE + timedelta(minutes=20))

    later = DAY_BEFORE + timedelta(minutes=31)
    assert recover_accepted(engine, runtime.settings, later, policy=POLICY) == [offer_id]
    offer = _offer(engine, offer_id)
    assert (offer["state"], offer["open_slot_id"], offer["appointment_id"]) == (
        "expired",
        None,
        None,
    )
    (next_offer,) = list_offers(engine, patient_id=second)
    assert (next_offer["slot_id"], next_offer["state"]) == (slot_id, "offered")
    assert read(runtime, "Slot", slot_id)["status"] == "free"


def test_recovery_marks_lost_an_offer_whose_slot_someone_else_booked(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    pat = patient(runtime, "Ng")
    join(engine, pat, MORNINGS, now=DAY_BEFORE)
    offer_id = _offer_to(runtime, slot_id)
    _crash_after_click(engine, offer_id, DAY_BEFORE)
    runtime.booking.book(BookingOrder(slot_id=slot_id, requested_by="desk"))

    assert recover_accepted(engine, runtime.settings, DAY_BEFORE + timedelta(minutes=3)) == [
        offer_id
    ]
    offer = _offer(engine, offer_id)
    assert (offer["state"], offer["open_slot_id"], offer["appointment_id"]) == ("lost", None, None)


def test_recovery_passes_on_the_offer_of_a_patient_who_left(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    first, second = patient(runtime, "One"), patient(runtime, "Two")
    entry = join(engine, first, MORNINGS, now=DAY_BEFORE)
    join(engine, second, {}, now=DAY_BEFORE)
    offer_id = _offer_to(runtime, slot_id)
    _crash_after_click(engine, offer_id, DAY_BEFORE)
    assert leave(engine, runtime.settings, entry, DAY_BEFORE) == []  # accepted: not closed

    later = DAY_BEFORE + timedelta(minutes=3)
    assert recover_accepted(engine, runtime.settings, later, policy=POLICY) == [offer_id]
    assert _offer(engine, offer_id)["state"] == "declined"
    (next_offer,) = list_offers(engine, patient_id=second)
    assert (next_offer["slot_id"], next_offer["state"]) == (slot_id, "offered")
