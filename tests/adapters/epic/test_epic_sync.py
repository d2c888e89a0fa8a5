"""Availability sync against the sandbox: paging, resuming, and every fault on the way."""

from __future__ import annotations

import httpx
import pytest

from adapters.contract import FetchedPage, SourceError
from adapters.epic.client import EpicClient, make_client
from adapters.epic.normalize import normalize_bytes
from adapters.http import RetryPolicy
from canonical.model import validate
from mappings.model import MappingSet
from tests.adapters.epic.conftest import Sandbox
from tests.adapters.epic.epic_helpers import FAST, Sleeps


def _slot_ids(pages: list[FetchedPage], mapping: MappingSet) -> list[str]:
    ids = []
    for page in pages:
        bundle = normalize_bytes(page.envelope.to_bytes(), mapping, "UTC")
        ids += [r.identifiers[0].value for r in bundle.records if r.resource_type == "Slot"]
    return ids


def _all_slots(sandbox: Sandbox) -> set[str]:
    """Every seeded slot, whatever its status: the sync asks for all of them."""
    return set(sandbox.state.slots)


def _slot_records(pages: list[FetchedPage], mapping: MappingSet) -> dict[str, dict[str, object]]:
    """The canonical Slots the pages normalize to, by their primary identifier's value."""
    found = {}
    for page in pages:
        if page.envelope.kind != "slot-bundle":
            continue
        bundle = normalize_bytes(page.envelope.to_bytes(), mapping, "UTC")
        for record in bundle.records:
            if record.resource_type == "Slot":
                found[record.identifiers[0].value] = record.resource
    return found


def test_full_sync_pages_schedules_then_every_slot(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    pages = list(client.sync(None))
    kinds = [p.envelope.kind for p in pages]
    assert kinds[0] == "schedule-bundle" and set(kinds[1:]) == {"slot-bundle"}
    slot_ids = _slot_ids(pages, mapping)
    assert len(slot_ids) == len(set(slot_ids)) == len(_all_slots(sandbox))
    assert pages[-1].cursor["phase"] == "done"
    assert sandbox.state.token_requests == 1
    request = pages[1].envelope.request
    assert "status=" not in request  # every status: a slot taken elsewhere must come back
    assert "start=ge" in request and "start=lt" in request
    assert "_include=Slot%3Aschedule" in request and "_count=10" in request


def test_every_synced_page_normalizes_to_valid_records(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    for page in client.sync(None):
        bundle = normalize_bytes(page.envelope.to_bytes(), mapping, "UTC")
        for record in bundle.records:
            validate(record.resource_type, record.resource)
        if page.envelope.kind == "slot-bundle":
            types = [r.resource_type for r in bundle.records]
            assert types[:3] == ["Practitioner", "Location", "Schedule"]
            assert all(r.resource["status"] == "free" for r in bundle.records[3:])


def test_configured_schedules_limit_the_sync(sandbox: Sandbox, mapping: MappingSet) -> None:
    only = sandbox.schedules[1]
    epic = make_client(sandbox.config(schedules=[only], page_size=50), policy=FAST)
    pages = list(epic.sync(None))
    epic.close()
    expected = {
        sid
        for sid in _all_slots(sandbox)
        if sandbox.state.slots[sid]["schedule"]["reference"] == f"Schedule/{only}"
    }
    assert set(_slot_ids(pages, mapping)) == expected


def test_break_on_page_7_resumes_at_page_7_without_refetching(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    sandbox.state.faults.break_page(7)
    stored: list[FetchedPage] = []
    with pytest.raises(SourceError) as caught:
        for page in client.sync(None):
            stored.append(page)
    assert caught.value.status == 500
    assert len(stored) == 7  # the Schedule page and Slot pages 1-6 of the first schedule
    broken = stored[-1].cursor["next"]
    assert broken is not None and "-pageToken" in broken

    sandbox.state.faults.clear()
    sandbox.state.requests.clear()
    resumed = list(client.sync(stored[-1].cursor))
    assert resumed[0].envelope.request == f"GET {broken}"
    served = set(sandbox.state.requests)
    broken_url = httpx.URL(broken)
    assert f"GET {broken_url.path}?{broken_url.query.decode()}" in served
    for page in stored:  # nothing already stored was asked for again
        url = httpx.URL(page.envelope.request.removeprefix("GET "))
        assert f"GET {url.path}?{url.query.decode()}" not in served
    ids = _slot_ids(stored + resumed, mapping)
    assert len(ids) == len(set(ids)) == len(_all_slots(sandbox))


def test_429_retry_after_is_honoured(sandbox: Sandbox, client: EpicClient, sleeps: Sleeps) -> None:
    sandbox.state.faults.fail_next(status=429, retry_after=2)
    pages = list(client.sync(None))
    assert 2.0 in sleeps.waits
    assert pages[-1].cursor["phase"] == "done"


def test_500s_are_backed_off_and_retried(
    sandbox: Sandbox, client: EpicClient, sleeps: Sleeps, mapping: MappingSet
) -> None:
    sandbox.state.faults.fail_next(status=500, times=2)
    pages = list(client.sync(None))
    assert len(sleeps.waits) == 2 and all(w < 0.01 for w in sleeps.waits)
    assert len(_slot_ids(pages, mapping)) == len(_all_slots(sandbox))


def test_persistent_500_fails_the_sync_with_the_outcome_text(
    sandbox: Sandbox, client: EpicClient
) -> None:
    sandbox.state.faults.fail_next(status=503, times=FAST.max_attempts)
    with pytest.raises(SourceError) as caught:
        list(client.sync(None))
    assert caught.value.status == 503 and caught.value.retryable
    assert "injected 503" in str(caught.value)


def test_slow_answers_time_out_then_the_retry_succeeds(sandbox: Sandbox, sleeps: Sleeps) -> None:
    epic = make_client(sandbox.config(page_size=50), policy=FAST, timeout=0.2, sleep=sleeps)
    sandbox.state.faults.slow(1.0, times=1)
    pages = list(epic.sync(None))
    epic.close()
    assert len(sleeps.waits) == 1  # one timeout, one retry
    assert pages[-1].cursor["phase"] == "done"


def test_answers_slower_than_every_attempt_fail_the_sync(sandbox: Sandbox, sleeps: Sleeps) -> None:
    policy = RetryPolicy(max_attempts=2, base_delay=0.001)
    epic = make_client(sandbox.config(), policy=policy, timeout=0.1, sleep=sleeps)
    sandbox.state.faults.slow(0.5)
    with pytest.raises(SourceError, match="Timeout"):
        list(epic.sync(None))
    epic.close()


def test_tokens_expiring_mid_sync_are_refreshed_once(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    pages = []
    for page in client.sync(None):
        pages.append(page)
        if len(pages) == 3:
            sandbox.state.faults.expire_tokens()
    assert sandbox.state.token_requests == 2
    assert len(_slot_ids(pages, mapping)) == len(_all_slots(sandbox))


def test_finished_cursor_starts_a_new_pass(sandbox: Sandbox, client: EpicClient) -> None:
    first = list(client.sync(None))
    again = list(client.sync(first[-1].cursor))
    assert [p.envelope.request for p in again] == [p.envelope.request for p in first]


def test_seed_slots_serves_ten_thousand_slots(mapping: MappingSet) -> None:
    from adapters.epic.auth import public_jwks
    from adapters.epic.sandbox import create_sandbox
    from adapters.epic.sandbox_state import EpicSandboxState
    from adapters.sandbox_server import serving
    from tests.adapters.epic.epic_helpers import CLIENT_ID, epic_config, signing_key

    state = EpicSandboxState()
    state.seed_slots(10_000)
    state.register_client(CLIENT_ID, public_jwks(*signing_key()))
    with serving(create_sandbox(state)) as url:
        epic = make_client(epic_config(url, page_size=1000), policy=FAST)
        pages = list(epic.sync(None))
        epic.close()
    ids = _slot_ids(pages, mapping)
    assert len(ids) == len(set(ids)) == 10_000


def _page_slot_ids(page: FetchedPage) -> list[str]:
    return [
        entry["resource"]["id"]
        for entry in page.envelope.body.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "Slot"
    ]


def test_a_slot_booked_elsewhere_comes_back_busy(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    first = list(client.sync(None))
    before = _slot_records(first, mapping)
    taken = sorted(before)[len(before) // 2]
    assert before[taken]["status"] == "free"

    appointment = sandbox.state.take_slot(taken)  # another Epic user books it at the desk
    assert appointment["slot"] == [{"reference": f"Slot/{taken}"}]

    again = list(client.sync(first[-1].cursor))
    carrying = [p for p in again if taken in _page_slot_ids(p)]
    assert len(carrying) == 1
    raw = next(
        e["resource"] for e in carrying[0].envelope.body["entry"] if e["resource"]["id"] == taken
    )
    assert raw["status"] == "busy"
    bundle = normalize_bytes(carrying[0].envelope.to_bytes(), mapping, "UTC")
    slots = [r for r in bundle.records if r.resource_type == "Slot"]
    (record,) = [r for r in slots if r.identifiers[0].value == taken]
    assert record.identifiers[0] == next(
        r.identifiers[0]
        for p in first
        if taken in _page_slot_ids(p)
        for r in normalize_bytes(p.envelope.to_bytes(), mapping, "UTC").records
        if r.resource_type == "Slot" and r.identifiers[0].value == taken
    )
    assert record.identifiers[0].system == "urn:harmony:epic-test:Slot"
    assert record.resource["status"] == "busy"
    validate("Slot", record.resource)
    after = _slot_records(again, mapping)
    assert set(after) == set(before)  # the taken slot did not drop out of the answer
    assert {sid for sid, slot in after.items() if slot["status"] != "free"} == {taken}


def test_busy_slots_keep_pages_full_and_resume_at_page_7(
    sandbox: Sandbox, client: EpicClient, mapping: MappingSet
) -> None:
    layout = list(client.sync(None))
    slot_pages = [_page_slot_ids(p) for p in layout[1:]]
    # one slot taken on a page already stored before the break, one on the broken page itself,
    # one on a page after it
    taken = {slot_pages[2][0], slot_pages[6][3], slot_pages[7][9]}
    for slot_id in taken:
        sandbox.state.take_slot(slot_id)

    sandbox.state.faults.break_page(7)
    stored: list[FetchedPage] = []
    with pytest.raises(SourceError):
        for page in client.sync(None):
            stored.append(page)
    assert len(stored) == 7
    sandbox.state.faults.clear()
    resumed = list(client.sync(stored[-1].cursor))
    pages = stored + resumed
    # same pages, same slots on each: busy slots are served in place, not skipped
    assert [_page_slot_ids(p) for p in pages[1:]] == slot_pages
    records = _slot_records(pages, mapping)
    assert set(records) == _all_slots(sandbox)
    assert {sid for sid, slot in records.items() if slot["status"] == "busy"} == taken
    for page in pages[1:]:  # every page still names its Schedule (Slot:schedule included)
        types = {e["resource"]["resourceType"] for e in page.envelope.body["entry"]}
        assert types == {"Slot", "Schedule"}


def test_sandbox_slot_search_reads_status_as_fhir_does(
    sandbox: Sandbox, client: EpicClient
) -> None:
    schedule = sandbox.schedules[0]
    ids = sorted(
        sid
        for sid, s in sandbox.state.slots.items()
        if s["schedule"]["reference"].endswith(schedule)
    )
    sandbox.state.take_slot(ids[0])
    sandbox.state.slots[ids[1]]["status"] = "busy-unavailable"
    base = f"{client.base_url}/Slot?schedule={schedule}&_count=1000"

    def found(query: str) -> dict[str, str]:
        body = client._get(base + query)
        return {
            e["resource"]["id"]: e["resource"]["status"]
            for e in body["entry"]
            if e["resource"]["resourceType"] == "Slot"
        }

    everything = found("")
    assert set(everything) == set(ids)
    assert found("&status=busy") == {ids[0]: "busy"}
    assert found("&status=busy,busy-unavailable") == {ids[0]: "busy", ids[1]: "busy-unavailable"}
    assert len(found("&status=free,busy,busy-unavailable,busy-tentative")) == len(ids)
    assert set(found("&status=free")) == set(ids) - {ids[0], ids[1]}
    with pytest.raises(SourceError) as caught:
        found("&status=taken")
    assert caught.value.status == 400 and "taken" in str(caught.value)
