"""Syncing an API source through the message store, against the athena sandbox over HTTP.

Every page is stored with its cursor, workers turn pages into canonical slots, a sync broken
on page 7 resumes there without doubling a slot, failures back off and open the circuit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from adapters.athena.client import make_client
from adapters.athena.sandbox import create_sandbox
from adapters.athena.sandbox_state import AthenaSandboxState
from adapters.contract import IntegrationConfig, SourceClient
from adapters.http import RetryPolicy
from adapters.sandbox_server import serving
from canonical.search import search
from canonical.tables import resources
from hub import message_store
from hub.booking import BookingError, BookingOrder
from hub.integrations import IntegrationRegistry
from hub.message_store import INBOUND
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.sync import AlreadyRunning, SyncRunner, due_integrations
from mappings.store import MappingStore

FAST = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=1.0)


def fast_client(config: IntegrationConfig) -> SourceClient:
    client: SourceClient = make_client(config, policy=FAST, sleep=lambda _s: None)
    return client


@pytest.fixture
def sandbox() -> Iterator[tuple[AthenaSandboxState, str]]:
    state = AthenaSandboxState()
    with serving(create_sandbox(state)) as url:
        yield state, url


@pytest.fixture
def hub(engine: Engine, sandbox: tuple[AthenaSandboxState, str]) -> Iterator[HubRuntime]:
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, sync_failures_to_open_circuit=3)
    runtime = HubRuntime(settings, engine)
    runtime.syncs.runner.clients = fast_client
    runtime.booking.clients = fast_client
    IntegrationRegistry(engine, settings).add(
        "athena-main",
        "athena",
        sandbox[1],
        credentials={"client_id": "sandbox-client", "client_secret": "sandbox-secret"},
        options={"practiceid": "195900", "departmentids": ["1"], "page_size": 10},
    )
    yield runtime
    runtime.stop()


def _process(runtime: HubRuntime, ids: list[int]) -> list[str]:
    return [runtime.worker.process_inbound(i) for i in ids]


def _count_slots(engine: Engine, **where: Any) -> int:
    query = select(func.count()).select_from(resources).where(resources.c.resource_type == "Slot")
    for column, value in where.items():
        query = query.where(getattr(resources.c, column) == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_a_full_sync_lands_free_slots_with_the_source_identifier(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    sandbox[0].seed_slots(25)
    report = hub.syncs.runner.run("athena-main")
    assert report.error is None and report.pages >= 3
    assert set(_process(hub, report.message_ids)) <= {"processed", "filtered"}
    assert _count_slots(hub.engine, status="free") == 25
    with Session(hub.engine) as session:
        slot = search(session, "Slot", [("_count", "1")]).resources[0]
    systems = [i["system"] for i in slot["identifier"]]
    assert "urn:harmony:athena-main:appointmentid" in systems
    view = IntegrationRegistry(hub.engine, hub.settings).get("athena-main")
    assert (view.health, view.pages_stored) == ("ok", report.pages)
    with hub.engine.connect() as conn:
        row = message_store.get(conn, report.message_ids[-1])
    assert (row.channel, row.sender, row.direction) == ("athena", "athena-main", INBOUND)


def test_a_sync_broken_on_page_7_resumes_without_duplicates(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    state.seed_slots(100)
    state.faults.break_paging_at(7, path="/appointments/open")
    broken = hub.syncs.runner.run("athena-main")
    assert broken.error is not None and "500" in broken.error
    view = IntegrationRegistry(hub.engine, hub.settings).get("athena-main")
    assert (view.health, view.consecutive_failures, view.running) == ("failing", 1, False)
    state.faults.heal()
    state.requests.clear()
    resumed = hub.syncs.runner.run("athena-main")
    assert resumed.error is None
    offsets = [r.query.get("offset") for r in state.requests if r.path.endswith("/open")]
    assert offsets[0] == "60"
    _process(hub, broken.message_ids + resumed.message_ids)
    assert _count_slots(hub.engine) == 100
    # A second sync and a replay of everything still leave one slot per source slot.
    again = hub.syncs.runner.run("athena-main")
    _process(hub, again.message_ids)
    hub.replay(broken.message_ids + resumed.message_ids)
    _process(hub, broken.message_ids + resumed.message_ids)
    assert _count_slots(hub.engine) == 100


def test_failures_back_off_then_open_the_circuit(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    sandbox[0].faults.fail_next(500, times=100)
    registry = IntegrationRegistry(hub.engine, hub.settings)
    for failures in (1, 2, 3):
        assert hub.syncs.runner.run("athena-main").error is not None
        assert registry.get("athena-main").consecutive_failures == failures
    view = registry.get("athena-main")
    assert view.health == "circuit-open" and "500" in (view.last_error or "")
    assert view.next_sync_at is not None
    assert (view.next_sync_at - message_store.utcnow()).total_seconds() > 800
    assert due_integrations(hub.engine, message_store.utcnow()) == []
    sandbox[0].faults.heal()
    assert hub.syncs.runner.run("athena-main").error is None  # "sync now" still runs
    assert registry.get("athena-main").health == "ok"


def test_one_run_at_a_time(hub: HubRuntime) -> None:
    runner: SyncRunner = hub.syncs.runner
    runner._claim("athena-main")
    with pytest.raises(AlreadyRunning):
        runner.run("athena-main")


def test_an_unmapped_status_parks_the_page_until_the_mapping_is_fixed(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    booked = state.seed_slots(3)[0].appointmentid
    state.set_status(booked, "f")
    with Session(hub.engine) as session, session.begin():
        store = MappingStore(session)
        shipped = store.active("athena").content
        store.create("athena", shipped.model_copy(update={"status": {}}), activate=True)
    report = hub.syncs.runner.run("athena-main")
    statuses = _process(hub, report.message_ids)
    assert "parked" in statuses
    parked = report.message_ids[statuses.index("parked")]
    with hub.engine.connect() as conn:
        assert "UnmappedCode" in (message_store.get(conn, parked).last_error or "")
    with Session(hub.engine) as session, session.begin():
        MappingStore(session).create("athena", shipped, activate=True, note="statuses back")
    hub.replay([parked])
    assert hub.worker.process_inbound(parked) == "processed"


def test_booking_in_athena_and_a_slot_taken_meanwhile(
    hub: HubRuntime, sandbox: tuple[AthenaSandboxState, str]
) -> None:
    state = sandbox[0]
    state.seed_slots(2)
    report = hub.syncs.runner.run("athena-main")
    _process(hub, report.message_ids)
    with Session(hub.engine) as session:
        free = search(session, "Slot", [("status", "free")]).resources
    first, second = free[0]["id"], free[1]["id"]
    IntegrationRegistry(hub.engine, hub.settings).update(
        "athena-main",
        options={"practiceid": "195900", "departmentids": ["1"], "default_patientid": "1"},
    )
    appointment = hub.booking.book(BookingOrder(slot_id=first, appointment_type="2"))
    assert appointment["status"] == "booked"
    systems = {i["system"] for i in appointment.get("identifier", [])}
    assert "urn:harmony:athena-main:appointmentid" in systems
    assert any(a.patientid for a in state.appointments.values())

    source_id = next(
        i["value"] for i in free[1]["identifier"] if i["system"].endswith(":appointmentid")
    )
    state.book(int(source_id), "2", "2")  # someone books it at the front desk
    with pytest.raises(BookingError, match="no longer free") as taken:
        hub.booking.book(BookingOrder(slot_id=second))
    assert taken.value.status == 409
    with Session(hub.engine) as session:
        from canonical.repository import CanonicalRepository

        assert CanonicalRepository(session).get("Slot", second)["status"] == "busy"  # type: ignore[index]
