"""Reminders 24 h and 1 h before a booked appointment, each queued exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from hub.appointments import CancelReason
from hub.booking import BookingOrder
from hub.notifications.outbox import Channels
from hub.notifications.tables import deliveries, notifications
from hub.reminders import queue_reminders
from hub.runtime import HubRuntime
from hub.tables import appointment_reminders
from hub.users import create_user
from tests.hub.test_appointments_seed import free_slots, patient, runtime_for, upload

START = datetime(2030, 5, 6, 9, tzinfo=UTC)
EMAIL = Channels(email=True)


def _booked(runtime: HubRuntime, start: datetime = START, who: str = "Dr Ada") -> str:
    """A booked appointment of a patient whose app user has an email address."""
    end = start + timedelta(minutes=30)
    before = set(free_slots(runtime))
    upload(runtime, [(who, f"{start:%Y-%m-%dT%H:%M}", f"{end:%Y-%m-%dT%H:%M}")])
    (slot,) = set(free_slots(runtime)) - before
    pat = patient(runtime, f"Ng {start:%H%M}")
    create_user(
        runtime.engine, f"pat-{pat[:8]}", roles={"patient"}, patient_id=pat, email="ng@example.org"
    )
    return str(runtime.booking.book(BookingOrder(slot_id=slot, patient_id=pat))["id"])


def _told(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(notifications.c.kind, notifications.c.data).order_by(notifications.c.id)
        ).all()
    return [(r.kind, r.data["appointment_id"]) for r in rows]


def test_24h_then_1h_each_once(engine: Engine) -> None:
    runtime = runtime_for(engine)
    appointment = _booked(runtime)
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(hours=25)) == 0
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(hours=23)) == 1
    for hours in (23, 12, 2):
        assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(hours=hours)) == 0
    assert _told(engine) == [("appointment_reminder_24h", appointment)]
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(minutes=50)) == 1
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(minutes=5)) == 0
    assert queue_reminders(engine, runtime.settings, EMAIL, START + timedelta(minutes=1)) == 0
    assert _told(engine) == [
        ("appointment_reminder_24h", appointment),
        ("appointment_reminder_1h", appointment),
    ]
    with engine.connect() as conn:
        note = conn.execute(select(notifications).order_by(notifications.c.id)).first()
        sent = conn.execute(select(deliveries.c.channel, deliveries.c.target)).all()
    assert note is not None and note.title == "Appointment tomorrow"
    assert "with Dr Ada" in note.body and "Mon 6 May at 09:00 (UTC)" in note.body
    assert [(d.channel, d.target) for d in sent] == [("email", "ng@example.org")] * 2


def test_a_late_booking_gets_only_the_1h_reminder(engine: Engine) -> None:
    runtime = runtime_for(engine)
    appointment = _booked(runtime)
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(minutes=40)) == 1
    assert _told(engine) == [("appointment_reminder_1h", appointment)]
    with engine.connect() as conn:
        states = dict(
            conn.execute(select(appointment_reminders.c.kind, appointment_reminders.c.state)).all()
        )
    assert states == {"1h": "queued", "24h": "skipped"}


def test_cancelled_appointments_are_not_reminded_and_pending_reminders_withdrawn(
    engine: Engine,
) -> None:
    runtime = runtime_for(engine)
    early = _booked(runtime)
    later = _booked(runtime, START + timedelta(hours=3), who="Dr Bo")
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(hours=23)) == 1
    runtime.appointments.cancel(early, CancelReason(code="pat-fb"))
    runtime.appointments.cancel(later, CancelReason(code="pat-fb"))
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(hours=20)) == 0
    assert queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(minutes=30)) == 0
    assert _told(engine) == [("appointment_reminder_24h", early)]
    with engine.connect() as conn:
        (delivery,) = conn.execute(select(deliveries)).all()
    assert (delivery.status, delivery.last_error) == ("dropped", "appointment cancelled")


def test_a_patient_without_a_sign_in_is_recorded_not_retried(engine: Engine) -> None:
    runtime = runtime_for(engine)
    upload(runtime, [("Dr Ada", "2030-05-06T09:00", "2030-05-06T09:30")])
    (slot,) = free_slots(runtime)
    runtime.booking.book(BookingOrder(slot_id=slot, patient_id=patient(runtime, "Solo")))
    runtime.appointment_pass(START - timedelta(hours=2))
    with engine.connect() as conn:
        rows = conn.execute(select(appointment_reminders.c.kind, appointment_reminders.c.state))
        assert [tuple(r) for r in rows] == [("24h", "no-recipient")]
    assert _told(engine) == []


def test_racing_passes_queue_each_reminder_once(engine: Engine) -> None:
    runtime = runtime_for(engine)
    appointments = [_booked(runtime, START + timedelta(hours=n)) for n in range(3)]
    start = threading.Barrier(4)
    counts: list[int] = []

    def run() -> None:
        start.wait()
        counts.append(queue_reminders(engine, runtime.settings, EMAIL, START - timedelta(hours=2)))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 3
    assert sorted(a for _kind, a in _told(engine)) == sorted(appointments)
