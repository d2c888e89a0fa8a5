"""Cancel, reschedule and buffer times on slots Harmony books itself (uploads, GMED)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select

from hub.appointments import CANCEL_REASON_SYSTEM, CancelReason, InvalidReason
from hub.booking import BookingError, BookingOrder
from hub.outbound import GMED_OUT
from hub.runtime import HubRuntime
from hub.tables import appointment_cancellations, domain_events, messages, slot_bookings
from tests.hub.test_appointments_seed import (
    free_slots,
    gmed_slot,
    patient,
    read,
    runtime_for,
    upload,
)

DAY = "2030-05-06"


def _slots(runtime: HubRuntime, *rows: tuple[str, str, str]) -> list[str]:
    upload(runtime, [(who, f"{DAY}T{a}", f"{DAY}T{b}") for who, a, b in rows])
    return free_slots(runtime)


def _claims(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(select(slot_bookings).order_by(slot_bookings.c.id)).all()
    return [(r.slot_id, r.state, r.appointment_id) for r in rows]


def _events(engine: Engine, resource_id: str) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(domain_events.c.event)
            .where(domain_events.c.resource_id == resource_id)
            .order_by(domain_events.c.id)
        )
        return [r.event for r in rows]


def test_cancel_frees_the_slot_and_records_the_reason(engine: Engine) -> None:
    runtime = runtime_for(engine)
    (slot,) = _slots(runtime, ("Dr Ada", "09:00", "09:30"))
    pat = patient(runtime, "Ng")
    booked = runtime.booking.book(BookingOrder(slot_id=slot, patient_id=pat))

    reason = CancelReason(code="pat-fb", text="feeling better")
    cancelled = runtime.appointments.cancel(booked["id"], reason, requested_by="desk")
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"] == {
        "coding": [
            {"system": CANCEL_REASON_SYSTEM, "code": "pat-fb", "display": "Patient: Feeling Better"}
        ],
        "text": "feeling better",
    }
    assert read(runtime, "Slot", slot)["status"] == "free"
    assert _claims(engine) == []
    assert _events(engine, booked["id"])[-1] == "cancelled"
    assert _events(engine, slot)[-1] == "slot-freed"

    again = runtime.appointments.cancel(booked["id"], CancelReason(text="twice"))
    assert again["meta"]["versionId"] == cancelled["meta"]["versionId"]  # nothing changed
    rebooked = runtime.booking.book(BookingOrder(slot_id=slot, patient_id=pat))
    assert rebooked["id"] != booked["id"]


def test_cancel_refusals(engine: Engine) -> None:
    runtime = runtime_for(engine)
    with pytest.raises(BookingError) as missing:
        runtime.appointments.cancel("no-such", CancelReason(text="x"))
    assert missing.value.status == 404
    with pytest.raises(InvalidReason):
        CancelReason(text="  ")
    with pytest.raises(InvalidReason, match="not an appointment-cancellation-reason"):
        CancelReason(code="bored")
    (slot,) = _slots(runtime, ("Dr Ada", "09:00", "09:30"))
    booked = runtime.booking.book(BookingOrder(slot_id=slot))
    noshow = {k: v for k, v in booked.items() if k != "meta"} | {"status": "noshow"}
    runtime.save_change("Appointment", noshow, source_system="harmony")
    with pytest.raises(BookingError, match="is noshow") as ended:
        runtime.appointments.cancel(booked["id"], CancelReason(code="other"))
    assert ended.value.status == 409


def test_cancelling_a_gmed_appointment_sends_siu_s15(engine: Engine) -> None:
    runtime = runtime_for(engine, gmed_outbound_host="127.0.0.1", gmed_outbound_port=9)
    slot = gmed_slot(runtime, f"{DAY}T09:00:00Z", f"{DAY}T09:30:00Z")
    booked = runtime.booking.book(BookingOrder(slot_id=slot, patient_id=patient(runtime, "Lo")))
    runtime.appointments.cancel(booked["id"], CancelReason(code="prov-pers", text="doctor ill"))
    with engine.connect() as conn:
        sent = [r.raw for r in conn.execute(select(messages).where(messages.c.channel == GMED_OUT))]
    assert [b"SIU^S12" in raw for raw in sent] == [True, False]
    assert b"SIU^S15" in sent[1] and b"doctor ill" in sent[1]
    assert read(runtime, "Slot", slot)["status"] == "free"


def test_reschedule_moves_the_visit_and_cancels_the_old_one(engine: Engine) -> None:
    runtime = runtime_for(engine, appointment_buffer_minutes=15)
    first, second = _slots(runtime, ("Dr Ada", "09:00", "09:30"), ("Dr Ada", "09:30", "10:00"))
    pat = patient(runtime, "Ng")
    old = runtime.booking.book(BookingOrder(slot_id=first, patient_id=pat, reason="Check-up"))
    moved = runtime.appointments.reschedule(old["id"], second, requested_by="desk")
    # The old visit is within the buffer of the new slot, but it is the one being replaced.
    assert moved.cancel_error is None
    assert moved.appointment["status"] == "booked"
    assert moved.appointment["slot"] == [{"reference": f"Slot/{second}"}]
    assert moved.appointment["description"] == "Check-up"
    assert {"actor": {"reference": f"Patient/{pat}"}, "status": "accepted"} in moved.appointment[
        "participant"
    ]
    assert moved.replaced["status"] == "cancelled"
    assert moved.replaced["cancelationReason"] == {"text": "rescheduled"}
    assert read(runtime, "Slot", first)["status"] == "free"
    assert _claims(engine) == [(second, "booked", moved.appointment["id"])]


def test_a_failed_reschedule_leaves_the_old_appointment_alone(engine: Engine) -> None:
    runtime = runtime_for(engine)
    first, second = _slots(runtime, ("Dr Ada", "09:00", "09:30"), ("Dr Bo", "11:00", "11:30"))
    old = runtime.booking.book(BookingOrder(slot_id=first, patient_id=patient(runtime, "Ng")))
    runtime.booking.book(BookingOrder(slot_id=second))  # someone else takes it
    with pytest.raises(BookingError) as taken:
        runtime.appointments.reschedule(old["id"], second)
    assert taken.value.status == 409
    assert read(runtime, "Appointment", old["id"]) == old
    assert (first, "booked", old["id"]) in _claims(engine)
    with engine.connect() as conn:
        assert conn.execute(select(appointment_cancellations)).all() == []
    # ... and the appointment can still be moved or cancelled afterwards.
    assert runtime.appointments.cancel(old["id"], CancelReason(code="pat"))["status"] == "cancelled"


def test_patient_buffer_names_the_rule_and_the_other_visit(engine: Engine) -> None:
    runtime = runtime_for(engine, appointment_buffer_minutes=20)
    a, b, c = _slots(
        runtime,
        ("Dr Ada", "09:00", "09:30"),
        ("Dr Bo", "09:40", "10:10"),
        ("Dr Cy", "10:30", "11:00"),
    )
    pat = patient(runtime, "Ng")
    first = runtime.booking.book(BookingOrder(slot_id=a, patient_id=pat))
    with pytest.raises(BookingError) as close:
        runtime.booking.book(BookingOrder(slot_id=b, patient_id=pat))
    assert close.value.status == 409
    assert "patient-buffer" in str(close.value) and "2030-05-06T09:00:00Z" in str(close.value)
    assert close.value.detail is not None
    assert close.value.detail["rule"] == "patient-buffer"
    assert close.value.detail["buffer_minutes"] == 20
    assert close.value.detail["conflict"] == {
        "appointment_id": first["id"],
        "start": "2030-05-06T09:00:00Z",
        "end": "2030-05-06T09:30:00Z",
    }
    assert (b, "pending", None) not in _claims(engine)
    runtime.booking.book(BookingOrder(slot_id=b, patient_id=patient(runtime, "Other")))
    runtime.booking.book(BookingOrder(slot_id=c, patient_id=pat))  # 10:30: a full hour later


def test_a_zero_buffer_refuses_overlapping_visits_only(
    engine: Engine,
) -> None:
    runtime = runtime_for(engine, appointment_buffer_minutes=0)
    a, b, c = _slots(
        runtime,
        ("Dr Ada", "09:00", "09:30"),
        ("Dr Bo", "09:15", "09:45"),
        ("Dr Cy", "09:30", "10:00"),
    )
    pat = patient(runtime, "Ng")
    runtime.booking.book(BookingOrder(slot_id=a, patient_id=pat))
    with pytest.raises(BookingError, match="visits must not overlap"):
        runtime.booking.book(BookingOrder(slot_id=b, patient_id=pat))
    runtime.booking.book(BookingOrder(slot_id=c, patient_id=pat))  # back to back is fine


def test_without_a_configured_buffer_there_is_no_rule(engine: Engine) -> None:
    runtime = runtime_for(engine)
    a, b = _slots(runtime, ("Dr Ada", "09:00", "09:30"), ("Dr Bo", "09:15", "09:45"))
    pat = patient(runtime, "Ng")
    runtime.booking.book(BookingOrder(slot_id=a, patient_id=pat))
    runtime.booking.book(BookingOrder(slot_id=b, patient_id=pat))


def test_practitioner_buffer_on_local_slots_with_an_override(engine: Engine) -> None:
    runtime = runtime_for(engine, appointment_buffer_minutes=10)
    a, b = _slots(runtime, ("Dr Ada", "09:00", "09:30"), ("Dr Ada", "09:30", "10:00"))
    runtime.booking.book(BookingOrder(slot_id=a, patient_id=patient(runtime, "One")))
    with pytest.raises(BookingError) as close:
        runtime.booking.book(BookingOrder(slot_id=b, patient_id=patient(runtime, "Two")))
    assert close.value.detail is not None
    assert close.value.detail["rule"] == "practitioner-buffer"
    assert close.value.detail["subject"].startswith("Practitioner/")

    practitioner = close.value.detail["subject"].split("/")[1]
    relaxed = runtime_for(
        engine,
        appointment_buffer_minutes=10,
        appointment_practitioner_buffer_minutes={practitioner: 0},
    )
    relaxed.booking.book(BookingOrder(slot_id=b, patient_id=patient(relaxed, "Two")))


def test_practitioner_buffer_by_identifier(engine: Engine) -> None:
    runtime = runtime_for(engine)
    a, b = _slots(runtime, ("Dr Ada", "09:00", "09:30"), ("Dr Ada", "09:35", "10:00"))
    strict = runtime_for(
        engine,
        appointment_practitioner_buffer_minutes={
            "urn:harmony-upload:clinic-a:practitioner|Dr Ada": 10
        },
    )
    strict.booking.book(BookingOrder(slot_id=a))
    with pytest.raises(BookingError, match="practitioner-buffer"):
        strict.booking.book(BookingOrder(slot_id=b))


def _race(attempts: list[Callable[[], object]]) -> tuple[int, list[int]]:
    start = threading.Barrier(len(attempts))
    won: list[object] = []
    lost: list[int] = []
    lock = threading.Lock()

    def run(attempt: Callable[[], object]) -> None:
        start.wait()
        try:
            result = attempt()
            with lock:
                won.append(result)
        except BookingError as exc:
            with lock:
                lost.append(exc.status)

    threads = [threading.Thread(target=run, args=(a,)) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(won), lost


def test_racing_bookings_of_one_patient_within_the_buffer_exactly_one_wins(
    engine: Engine,
) -> None:
    runtime = runtime_for(engine, appointment_buffer_minutes=15)
    a, b = _slots(runtime, ("Dr Ada", "09:00", "09:30"), ("Dr Bo", "09:30", "10:00"))
    pat = patient(runtime, "Ng")
    attempts: list[Callable[[], object]] = [
        lambda slot=slot: runtime.booking.book(BookingOrder(slot_id=slot, patient_id=pat))
        for slot in (a, b, a, b, a, b)
    ]
    won, lost = _race(attempts)
    assert (won, lost) == (1, [409] * 5)
    assert [state for _slot, state, _a in _claims(engine)] == ["booked"]


def test_racing_bookings_of_one_practitioner_within_the_buffer_exactly_one_wins(
    engine: Engine,
) -> None:
    runtime = runtime_for(engine, appointment_buffer_minutes=15)
    a, b = _slots(runtime, ("Dr Ada", "09:00", "09:30"), ("Dr Ada", "09:30", "10:00"))
    patients = [patient(runtime, f"P{n}") for n in range(6)]
    attempts: list[Callable[[], object]] = [
        lambda slot=slot, pat=pat: runtime.booking.book(BookingOrder(slot_id=slot, patient_id=pat))
        for slot, pat in zip((a, b, a, b, a, b), patients, strict=True)
    ]
    won, lost = _race(attempts)
    assert (won, lost) == (1, [409] * 5)
    assert [state for _slot, state, _a in _claims(engine)] == ["booked"]
