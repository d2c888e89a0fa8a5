"""Outbound to GMED: a change made in Harmony goes out as SIU over MLLP, stored and retried."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from adapters.gmed.parser import parse_message
from canonical.repository import CanonicalRepository
from hub import message_store
from hub.message_store import INBOUND, OUTBOUND, NewMessage
from hub.outbound import GMED_OUT, OutboundSender
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.tables import messages
from mllp_listener import MLLPServer
from tests.integration.harness import free_port
from tests.mllp_listener.mllp_support import RecordingSink

S12 = Path(__file__).parents[1] / "fixtures" / "hl7v2" / "fhirconv_siu_s12_01_v28.hl7"


class GmedSandbox:
    """A GMED receiver on its own event loop thread, storing what it gets."""

    def __init__(self, accepted: frozenset[str]) -> None:
        self.sink = RecordingSink()
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server = MLLPServer(
            self.sink, host="127.0.0.1", port=self.port, accepted_types=accepted
        )
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def sandbox() -> Iterator[GmedSandbox]:
    box = GmedSandbox(frozenset({"SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15", "SIU^S17"}))
    yield box
    box.close()


def _runtime(engine: Engine, port: int) -> HubRuntime:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        gmed_outbound_host="127.0.0.1",
        gmed_outbound_port=port,
        retry_base_seconds=0.1,
    )
    return HubRuntime(settings, engine)


def _ingest_s12(runtime: HubRuntime) -> str:
    stored = message_store.store_batch(
        runtime.engine,
        [NewMessage(channel="gmed", direction=INBOUND, raw=S12.read_bytes(), control_id="S12")],
    )[0]
    assert runtime.worker.process_inbound(stored.id) == "processed"
    with runtime.worker.sessions() as session:
        (reference,) = CanonicalRepository(session).find_by_identifier("36996")
        return reference.split("/", 1)[1]


def _outbound(engine: Engine) -> list[tuple[int, str, str | None]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.id, messages.c.status, messages.c.last_error)
            .where(messages.c.direction == OUTBOUND)
            .order_by(messages.c.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_gmed_messages_do_not_echo_back_to_gmed(engine: Engine, sandbox: GmedSandbox) -> None:
    runtime = _runtime(engine, sandbox.port)
    _ingest_s12(runtime)
    assert _outbound(engine) == []


def test_a_cancel_made_in_harmony_reaches_gmed_as_siu_s15(
    engine: Engine, sandbox: GmedSandbox
) -> None:
    runtime = _runtime(engine, sandbox.port)
    appointment_id = _ingest_s12(runtime)
    with runtime.worker.sessions() as session:
        appointment = CanonicalRepository(session).get("Appointment", appointment_id)
    assert appointment is not None
    appointment["status"] = "cancelled"
    runtime.save_change("Appointment", appointment, source_system="api")

    ((out_id, status, _),) = _outbound(engine)
    assert status == "queued"
    assert OutboundSender(engine, runtime.settings).send(out_id) == "sent"
    with engine.connect() as conn:
        row = message_store.get(conn, out_id)
    assert row.channel == GMED_OUT and row.status == "sent" and b"MSA|AA|" in row.ack
    (received,) = sandbox.sink.received
    siu = parse_message(received.raw)
    assert siu.trigger_event == "S15"
    assert siu.segment("SCH").field(2) == "36996"


def test_gmed_down_means_retry_and_an_ar_means_parked(engine: Engine) -> None:
    runtime = _runtime(engine, free_port())  # nothing listens there
    appointment_id = _ingest_s12(runtime)
    with runtime.worker.sessions() as session:
        appointment = CanonicalRepository(session).get("Appointment", appointment_id)
    assert appointment is not None
    appointment["status"] = "noshow"
    runtime.save_change("Appointment", appointment, source_system="api")
    ((out_id, _, _),) = _outbound(engine)
    sender = OutboundSender(engine, runtime.settings, timeout=2)
    assert sender.send(out_id) == "retrying"
    assert "unreachable" in (_outbound(engine)[0][2] or "")

    refusing = GmedSandbox(frozenset({"SIU^S12"}))  # S26 is refused with AR
    try:
        runtime.settings.gmed_outbound_port = refusing.port
        message_store.replay(engine, [out_id])
        assert OutboundSender(engine, runtime.settings).send(out_id) == "parked"
        assert "AR" in (_outbound(engine)[0][2] or "")
    finally:
        refusing.close()


def test_booking_a_freed_gmed_slot_sends_gmed_an_siu_s12(
    engine: Engine, sandbox: GmedSandbox
) -> None:
    from canonical.search import search
    from hub.booking import BookingOrder

    runtime = _runtime(engine, sandbox.port)
    cancel = S12.with_name("fhirconv_siu_s15_01_v28.hl7").read_bytes()
    stored = message_store.store_batch(
        engine, [NewMessage(channel="gmed", direction=INBOUND, raw=cancel, control_id="S15")]
    )[0]
    assert runtime.worker.process_inbound(stored.id) == "processed"
    with runtime.worker.sessions() as session:
        free = search(session, "Slot", [("status", "free")]).resources
    assert free, "a cancelled GMED appointment frees its slots"
    appointment = runtime.booking.book(BookingOrder(slot_id=free[0]["id"], reason="rebooked"))
    assert appointment["status"] == "booked"
    ((out_id, status, _),) = _outbound(engine)
    assert status == "queued"
    assert OutboundSender(engine, runtime.settings).send(out_id) == "sent"
    (received,) = sandbox.sink.received
    assert parse_message(received.raw).trigger_event == "S12"


def test_appointments_of_other_sources_are_not_sent_to_gmed(
    engine: Engine, sandbox: GmedSandbox
) -> None:
    runtime = _runtime(engine, sandbox.port)
    appointment = {
        "resourceType": "Appointment",
        "status": "booked",
        "start": "2030-01-01T09:00:00Z",
        "end": "2030-01-01T09:30:00Z",
        "identifier": [{"system": "urn:harmony:epic-a:Appointment", "value": "e1"}],
        "participant": [{"actor": {"display": "Dr Lee"}, "status": "accepted"}],
    }
    runtime.save_change("Appointment", appointment, source_system="epic")
    assert _outbound(engine) == []
