"""Workers on real fixtures: normalize, park with a reason, replay after a mapping fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from canonical.repository import CanonicalRepository
from canonical.tables import metadata as canonical_metadata
from canonical.tables import search_index
from hub import message_store
from hub.message_store import INBOUND, NewMessage
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.tables import domain_events
from mappings.store import MappingStore
from mllp_listener.header import parse_header

FIXTURES = Path(__file__).parents[1] / "fixtures" / "hl7v2"
ACKS = {"mirth_ack_aa_v22.hl7", "python_hl7_ack_a01_aa_v231.hl7"}


def _runtime(engine: Engine, **settings: object) -> HubRuntime:
    url = engine.url.render_as_string(hide_password=False)
    return HubRuntime(Settings(database_url=url, **settings), engine)  # type: ignore[arg-type]


def _store(engine: Engine, raw: bytes) -> int:
    header = parse_header(raw)
    message = NewMessage(
        channel="gmed",
        direction=INBOUND,
        raw=raw,
        message_type=header.message_type,
        control_id=header.control_id,
        sender=header.sender,
    )
    return message_store.store_batch(engine, [message])[0].id


def _status(engine: Engine, message_id: int) -> tuple[str, str | None, str | None]:
    with engine.connect() as conn:
        row = message_store.get(conn, message_id)
    return row.status, row.last_error, row.mapping_version


def test_every_fixture_is_processed_or_filtered_with_a_reason(engine: Engine) -> None:
    runtime = _runtime(engine)
    for path in sorted(FIXTURES.glob("*.hl7")):
        message_id = _store(engine, path.read_bytes())
        outcome = runtime.worker.process_inbound(message_id)
        status, error, mapping_version = _status(engine, message_id)
        if path.name in ACKS:
            assert (outcome, status) == ("filtered", "filtered")
            assert error is not None and "ACK" in error
        else:
            assert (outcome, status, error) == ("processed", "processed", None), path.name
            assert mapping_version == "gmed@v1"
    with engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(domain_events)).scalar_one()
    assert events > 0


def test_unmapped_status_parks_then_replay_after_mapping_fix_succeeds(engine: Engine) -> None:
    runtime = _runtime(engine)
    raw = (FIXTURES / "barts_tie_siu_s12_v24.hl7").read_bytes().replace(b"Confirmed", b"Firmed")
    message_id = _store(engine, raw)
    assert runtime.worker.process_inbound(message_id) == "parked"
    status, error, _ = _status(engine, message_id)
    assert status == "parked"
    assert error is not None and "'Firmed'" in error and "gmed@v1" in error

    with Session(engine) as session, session.begin():
        store = MappingStore(session)
        assert [(u.table, u.code) for u in store.unmapped("gmed")] == [("status", "Firmed")]
        content = store.active("gmed").content.model_copy(deep=True)
        content.status["Firmed"] = "booked"
        store.create("gmed", content, note="Barts sends Firmed", activate=True)

    assert runtime.replay([message_id]) == [message_id]
    assert runtime.worker.process_inbound(message_id) == "processed"
    assert _status(engine, message_id) == ("processed", None, "gmed@v2")
    with Session(engine) as session:
        repo = CanonicalRepository(session)
        (reference,) = repo.find_by_identifier("149549015")
        appointment = repo.get("Appointment", reference.split("/")[1])
        assert appointment is not None and appointment["status"] == "booked"
        assert repo.provenance_of("Appointment", appointment["id"])[-1].mapping_version == "gmed@v2"
        # The status code left the report; the free-text appointment type is still there.
        reported = [(u.table, u.code) for u in MappingStore(session).unmapped("gmed")]
        assert reported == [("appointment_types", "Nephrology New")]


def test_a_database_fault_is_retried_with_backoff_then_parked(engine: Engine) -> None:
    runtime = _runtime(engine, max_attempts=2, retry_base_seconds=30)
    message_id = _store(engine, (FIXTURES / "fhirconv_siu_s12_01_v28.hl7").read_bytes())
    search_index.drop(engine)  # the canonical store is broken under the worker
    try:
        assert runtime.worker.process_inbound(message_id) == "retrying"
        with engine.connect() as conn:
            row = message_store.get(conn, message_id)
        assert row.attempts == 1 and row.next_attempt_at is not None
        assert message_store.due_retries(engine) == []  # not before its backoff
        message_store.replay(engine, [message_id])
        runtime.worker.process_inbound(message_id)
        runtime.worker.process_inbound(message_id)
        assert _status(engine, message_id)[0] == "parked"
    finally:
        canonical_metadata.create_all(engine)
    runtime.replay([message_id])
    assert runtime.worker.process_inbound(message_id) == "processed"


@pytest.mark.parametrize("workers", [2])
def test_one_bad_message_blocks_nothing_through_the_bus(engine: Engine, workers: int) -> None:
    runtime = _runtime(engine, broker_prefix=f"w{id(engine)}")
    good = [p.read_bytes() for p in sorted(FIXTURES.glob("fhirconv_siu_*.hl7"))]
    bad = good[0].replace(b"|Add|", b"|Add|").replace(b"SCH|12345|36996", b"SCH||")
    ids = [_store(engine, raw) for raw in [bad, *good]]
    runtime.start(workers=workers)  # re-queues everything stored, then works the bus
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses = [_status(engine, i)[0] for i in ids]
            if all(s in ("processed", "parked") for s in statuses):
                break
            time.sleep(0.1)
    finally:
        runtime.stop()
    assert statuses[0] == "parked"
    assert "IncompleteMessage" in (_status(engine, ids[0])[1] or "")
    assert statuses[1:] == ["processed"] * len(good)
