"""Cancel and reschedule against the athena sandbox over HTTP: the source decides, Harmony
stores its answers, and a cancel that fails after a reschedule is retried, not forgotten."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from adapters.athena.sandbox import create_sandbox
from adapters.athena.sandbox_state import AthenaSandboxState
from adapters.sandbox_server import serving
from canonical.search import search
from hub.appointments import CancelReason
from hub.booking import BookingError, BookingOrder
from hub.integrations import IntegrationRegistry
from hub.message_store import utcnow
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.tables import appointment_cancellations, messages, slot_bookings
from tests.hub.test_appointments_seed import free_slots, read, upload
from tests.hub.test_sync import fast_client


@pytest.fixture
def sandbox() -> Iterator[tuple[AthenaSandboxState, str]]:
    state = AthenaSandboxState()
    with serving(create_sandbox(state)) as url:
        yield state, url


@pytest.fixture
def hub(engine: Engine, sandbox: tuple[AthenaSandboxState, str]) -> Iterator[HubRuntime]:
    url = engine.url.render_as_string(hide_password=False)
    runtime = HubRuntime(Settings(database_url=url), engine)
    runtime.syncs.runner.clients = fast_client
    runtime.booking.clients = fast_client
    IntegrationRegistry(engine, runtime.settings).add(
        "athena-main",
        "athena",
        sandbox[1],
        credentials={"client_id": "sandbox-client", "client_secret": "sandbox-secret"},
        options={"practiceid": "195900", "departmentids": ["1"]},
    )
    yield runtime
    runtime.stop()


def _ready(hub: HubRuntime, state: AthenaSandboxState, count: int = 3) -> tuple[list[str], str]:
    """Synced free athena slots (earliest first) and a patient athena knows as patientid 7."""
    state.seed_slots(count)
    report = hub.syncs.runner.run("athena-main")
    for message_id in report.message_ids:
        hub.worker.process_inbound(message_id)
    patient = hub.save_change(
        "Patient",
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:harmony:athena-main:patientid", "value": "7"}],
            "name": [{"family": "Ng"}],
        },
        source_system="harmony",
    ).id
    with Session(hub.engine) as session:
        found = search(session, "Slot", [("status", "free"), ("_sort", "start")])
    return [str(s["id"]) for s in found.resources], patient


def _athena_id(resource: dict[str, object]) -> int:
    for identifier in resource["identifier"]:  # type: ignore[attr-defined]
        if identifier["system"] == "urn:harmony:athena-main:appointmentid":
            return int(identifier["value"])
    raise AssertionError("no athena id")


def _puts(state: AthenaSandboxState, suffix: str) -> int:
    return sum(1 for r in state.requests if r.method == "PUT" and r.path.endswith(suffix))


def test_cancel_in_athena_stores_the_answer_and_the_reason(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    slots, pat = _ready(hub, state)
    booked = hub.booking.book(BookingOrder(slot_id=slots[0], patient_id=pat))
    source_id = _athena_id(booked)
    assert state.appointments[source_id].patientid == "7"

    reason = CancelReason(code="pat-lt", text="no bus on Mondays")
    cancelled = hub.appointments.cancel(booked["id"], reason, requested_by="desk")
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"]["text"] == "no bus on Mondays"
    assert state.appointments[source_id].status == "x"
    assert "no bus on Mondays" in state.appointments[source_id].notes[-1]
    # athena reopens the time as a new slot, so the old canonical slot is not free again
    assert read(hub, "Slot", slots[0])["status"] == "entered-in-error"
    with hub.engine.connect() as conn:
        assert conn.execute(select(slot_bookings)).all() == []
        out = conn.execute(
            select(messages.c.status).where(
                messages.c.channel == "athena-out", messages.c.message_type == "cancel"
            )
        ).all()
    assert [r.status for r in out] == ["sent"]

    again = hub.appointments.cancel(booked["id"], reason)
    assert again["status"] == "cancelled" and _puts(state, "/cancel") == 1


def test_a_failing_cancel_changes_nothing_and_can_be_tried_again(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    slots, pat = _ready(hub, state)
    booked = hub.booking.book(BookingOrder(slot_id=slots[0], patient_id=pat))
    state.faults.fail_next(500, times=10, path="/cancel")
    with pytest.raises(BookingError, match="could not cancel") as failed:
        hub.appointments.cancel(booked["id"], CancelReason(code="pat"))
    assert failed.value.status == 502
    assert read(hub, "Appointment", booked["id"])["status"] == "booked"
    with hub.engine.connect() as conn:
        assert conn.execute(select(appointment_cancellations)).all() == []
        assert len(conn.execute(select(slot_bookings)).all()) == 1
        parked = conn.execute(
            select(messages.c.status).where(messages.c.message_type == "cancel")
        ).scalar()
    assert parked == "parked"
    state.faults.heal()
    assert hub.appointments.cancel(booked["id"], CancelReason(code="pat"))["status"] == "cancelled"


def test_reschedule_within_athena_uses_its_native_reschedule(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    slots, pat = _ready(hub, state)
    old = hub.booking.book(BookingOrder(slot_id=slots[0], patient_id=pat))
    moved = hub.appointments.reschedule(old["id"], slots[2], requested_by="desk")
    assert moved.cancel_error is None
    assert _puts(state, "/reschedule") == 1 and _puts(state, "/cancel") == 0
    assert state.appointments[_athena_id(old)].status == "x"
    assert state.appointments[_athena_id(moved.appointment)].status == "f"
    assert moved.appointment["status"] == "booked"
    assert moved.replaced["status"] == "cancelled"
    assert moved.replaced["cancelationReason"] == {"text": "rescheduled"}


def test_reschedule_to_a_slot_taken_meanwhile_leaves_the_old_one_booked(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    slots, pat = _ready(hub, state)
    old = hub.booking.book(BookingOrder(slot_id=slots[0], patient_id=pat))
    taken = read(hub, "Slot", slots[1])
    state.book(_athena_id(taken), "99", "2")  # the front desk was quicker
    with pytest.raises(BookingError, match="no longer free") as refused:
        hub.appointments.reschedule(old["id"], slots[1])
    assert refused.value.status == 409
    assert state.appointments[_athena_id(old)].status == "f"
    assert read(hub, "Appointment", old["id"]) == old
    with hub.engine.connect() as conn:
        assert conn.execute(select(appointment_cancellations)).all() == []


def test_an_old_appointment_athena_will_not_cancel_is_queued_and_retried(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    slots, pat = _ready(hub, state)
    old = hub.booking.book(BookingOrder(slot_id=slots[0], patient_id=pat))
    upload(hub, [("Dr Ada", "2030-05-07T09:00", "2030-05-07T09:30")])
    (local,) = [s for s in free_slots(hub) if s not in slots]

    state.faults.fail_next(503, times=10, path="/cancel")
    moved = hub.appointments.reschedule(old["id"], local, requested_by="desk")
    assert moved.appointment["status"] == "booked"
    assert moved.cancel_error is not None and "could not cancel" in moved.cancel_error
    assert moved.replaced["status"] == "booked"  # still booked, and said so
    pending = hub.appointments.pending_cancellations()
    assert [(p["appointment_id"], p["state"], p["attempts"]) for p in pending] == [
        (old["id"], "retrying", 1)
    ]

    tried = _puts(state, "/cancel")
    hub.appointment_pass(utcnow())  # not due yet: nothing is tried
    assert _puts(state, "/cancel") == tried
    state.faults.heal()
    hub.appointment_pass(utcnow() + timedelta(hours=1))
    assert read(hub, "Appointment", old["id"])["status"] == "cancelled"
    assert state.appointments[_athena_id(old)].status == "x"
    assert hub.appointments.pending_cancellations() == []


def test_a_retried_cancel_is_parked_after_too_many_failures(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    hub.settings.appointment_cancel_max_attempts = 2
    slots, pat = _ready(hub, state)
    old = hub.booking.book(BookingOrder(slot_id=slots[0], patient_id=pat))
    upload(hub, [("Dr Ada", "2030-05-07T09:00", "2030-05-07T09:30")])
    (local,) = [s for s in free_slots(hub) if s not in slots]
    state.faults.fail_next(503, times=100, path="/cancel")
    hub.appointments.reschedule(old["id"], local)
    hub.appointments.retry_cancellations(utcnow() + timedelta(hours=1))
    (parked,) = hub.appointments.pending_cancellations("parked")
    assert parked["appointment_id"] == old["id"] and parked["attempts"] == 2
    assert "could not cancel" in parked["last_error"]
