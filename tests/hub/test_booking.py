"""Booking slots no API source owns (uploads, GMED): claims, races, refusals."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from adapters.contract import Envelope
from canonical.repository import CanonicalRepository
from canonical.search import search
from hub import message_store
from hub.booking import BookingError, BookingOrder
from hub.message_store import INBOUND, NewMessage
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.tables import slot_bookings

CSV = "practitioner,start,end\nDr Ada,2030-05-06T09:00,2030-05-06T09:30\n"


def _runtime(engine: Engine) -> HubRuntime:
    url = engine.url.render_as_string(hide_password=False)
    return HubRuntime(Settings(database_url=url, default_timezone="Europe/London"), engine)


def _free_slot(runtime: HubRuntime) -> str:
    raw = Envelope("clinic-a", "upload", "csv", "upload clinic-a", CSV, {}, "").to_bytes()
    message = NewMessage(channel="upload", direction=INBOUND, raw=raw, control_id="u1")
    with runtime.engine.begin() as conn:
        message_id = message_store.store_in(conn, message).id
    assert runtime.worker.process_inbound(message_id) == "processed"
    with Session(runtime.engine) as session:
        found = search(session, "Slot", [("status", "free")])
    assert len(found.resources) == 1
    return str(found.resources[0]["id"])


def _read(runtime: HubRuntime, resource_type: str, resource_id: str) -> dict[str, object]:
    with Session(runtime.engine) as session:
        resource = CanonicalRepository(session).get(resource_type, resource_id)
    assert resource is not None
    return resource


def test_booking_an_uploaded_slot_makes_the_appointment_here(engine: Engine) -> None:
    runtime = _runtime(engine)
    slot_id = _free_slot(runtime)
    appointment = runtime.booking.book(
        BookingOrder(slot_id=slot_id, reason="Check-up", requested_by="tester")
    )
    assert appointment["status"] == "booked"
    assert appointment["slot"] == [{"reference": f"Slot/{slot_id}"}]
    assert appointment["start"] == "2030-05-06T08:00:00Z"  # London is on BST in May
    assert appointment["participant"][0]["actor"]["display"] == "Dr Ada"
    assert _read(runtime, "Slot", slot_id)["status"] == "busy"
    with pytest.raises(BookingError, match="is busy, not free") as again:
        runtime.booking.book(BookingOrder(slot_id=slot_id))
    assert again.value.status == 409


def test_unknown_slot_and_patient_are_404(engine: Engine) -> None:
    runtime = _runtime(engine)
    with pytest.raises(BookingError) as missing:
        runtime.booking.book(BookingOrder(slot_id="nope"))
    assert missing.value.status == 404
    slot_id = _free_slot(runtime)
    with pytest.raises(BookingError, match="Patient/ghost") as no_patient:
        runtime.booking.book(BookingOrder(slot_id=slot_id, patient_id="ghost"))
    assert no_patient.value.status == 404
    with engine.connect() as conn:
        assert conn.execute(select(slot_bookings)).all() == []


def test_racing_clients_exactly_one_wins(engine: Engine) -> None:
    runtime = _runtime(engine)
    slot_id = _free_slot(runtime)
    start = threading.Barrier(8)
    won: list[str] = []
    lost: list[int] = []

    def attempt() -> None:
        start.wait()
        try:
            won.append(runtime.booking.book(BookingOrder(slot_id=slot_id))["id"])  # type: ignore[arg-type]
        except BookingError as exc:
            lost.append(exc.status)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and lost == [409] * 7
    with engine.connect() as conn:
        claims = conn.execute(select(slot_bookings)).all()
    assert [(c.state, c.appointment_id) for c in claims] == [("booked", won[0])]


def test_a_cancelled_booking_frees_the_claim(engine: Engine) -> None:
    runtime = _runtime(engine)
    slot_id = _free_slot(runtime)
    appointment = runtime.booking.book(BookingOrder(slot_id=slot_id))
    cancelled = {k: v for k, v in appointment.items() if k != "meta"}
    cancelled["status"] = "cancelled"
    runtime.save_change("Appointment", cancelled, source_system="harmony")
    slot = {k: v for k, v in _read(runtime, "Slot", slot_id).items() if k != "meta"}
    runtime.save_change("Slot", {**slot, "status": "free"}, source_system="harmony")
    again = runtime.booking.book(BookingOrder(slot_id=slot_id))
    assert again["id"] != appointment["id"]
