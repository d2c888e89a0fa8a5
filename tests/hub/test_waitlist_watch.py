"""The freed-slot watcher acts on new events at once but moves its mark only past old ones."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, select

from hub.appointments import CancelReason
from hub.booking import BookingOrder
from hub.tables import domain_events
from hub.waitlist import join, list_offers
from hub.waitlist_watch import read_mark, watch_freed_slots
from tests.hub.test_appointments_seed import patient, runtime_for
from tests.hub.test_waitlist import DAY_BEFORE, MORNINGS, POLICY, _slot


def test_a_fresh_cancel_is_offered_at_once_and_read_again_until_settled(engine: Engine) -> None:
    runtime = runtime_for(engine)
    slot_id = _slot(runtime)
    booked_for, waiting = patient(runtime, "Booked"), patient(runtime, "Waiting")
    appointment = runtime.booking.book(BookingOrder(slot_id=slot_id, patient_id=booked_for))
    watch_freed_slots(engine, runtime.settings, DAY_BEFORE, grace=timedelta(0))
    settled = read_mark(engine)
    join(engine, waiting, MORNINGS, now=DAY_BEFORE)

    runtime.appointments.cancel(appointment["id"], CancelReason(text="feeling better"))
    (offer_id,) = watch_freed_slots(engine, runtime.settings, DAY_BEFORE, policy=POLICY)
    assert read_mark(engine) == settled  # the cancel's events are younger than GRACE
    assert watch_freed_slots(engine, runtime.settings, DAY_BEFORE, policy=POLICY) == []
    assert [o["id"] for o in list_offers(engine, patient_id=waiting)] == [offer_id]

    with engine.connect() as conn:
        newest = conn.execute(select(func.max(domain_events.c.id))).scalar_one()
    later = watch_freed_slots(
        engine, runtime.settings, DAY_BEFORE, policy=POLICY, grace=timedelta(0)
    )  # as if GRACE had passed
    assert later == []
    assert read_mark(engine) == newest
