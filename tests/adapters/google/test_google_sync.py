"""Sync against the sandbox: freebusy and events pages, sync tokens, resuming, 410."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.contract import SourceError
from adapters.google.normalize import normalize_bytes
from adapters.http import RetryPolicy
from mappings.model import MappingSet
from tests.adapters.google.conftest import Sandbox
from tests.adapters.google.google_inputs import checked

ADA = "dr.ada.lovelace@clinic.example"
GRACE = "dr.grace.hopper@clinic.example"


def api_gets(sandbox: Sandbox) -> list[str]:
    return [path for method, path in sandbox.state.requests if "/events" in path]


def test_full_sync_then_incremental_round_trip(sandbox: Sandbox, mapping: MappingSet) -> None:
    client = sandbox.client(page_size=3)
    pages = list(client.sync(None))
    kinds = [p.envelope.kind for p in pages]
    assert kinds[0] == "freebusy" and set(kinds[1:]) == {"events"}
    for page in pages:
        checked(normalize_bytes(page.envelope.to_bytes(), mapping, "UTC"))
    # Seeded: 5 booked + 1 all-day + 1 transparent per calendar, 3 per page -> 3 pages each.
    assert len(pages) == 1 + 3 + 3
    assert pages[1].envelope.context["listing"] == "full"
    done = pages[-1].cursor
    assert set(done["sync_tokens"]) == {ADA, GRACE} and "pass" not in done
    freebusy = normalize_bytes(pages[0].envelope.to_bytes(), mapping, "UTC")
    statuses = {r.resource["status"] for r in freebusy.records if r.resource_type == "Slot"}
    assert statuses == {"free", "busy"}

    start = datetime.now(UTC) + timedelta(days=3)
    added = sandbox.state.add_event(ADA, start, start + timedelta(minutes=30), "New patient")
    before = len(sandbox.state.requests)
    pages = list(client.sync(done))
    assert [p.envelope.kind for p in pages] == ["freebusy", "events", "events"]
    assert len(sandbox.state.requests) - before == 3
    assert "syncToken=" in sandbox.state.requests[-2][1]
    ada_page, grace_page = pages[1], pages[2]
    assert ada_page.envelope.context["listing"] == "incremental"
    assert [e["id"] for e in ada_page.envelope.body["items"]] == [added["id"]]
    assert grace_page.envelope.body["items"] == []
    bundle = checked(normalize_bytes(ada_page.envelope.to_bytes(), mapping, "UTC"))
    assert f"{ADA}/{added['id']}" in {r.identifiers[0].value for r in bundle.records}

    sandbox.state.delete_event(ADA, added["id"])
    pages = list(client.sync(pages[-1].cursor))
    [gone] = pages[1].envelope.body["items"]
    assert gone == {
        "kind": "calendar#event",
        "etag": gone["etag"],
        "id": added["id"],
        "status": "cancelled",
    }
    bundle = checked(normalize_bytes(pages[1].envelope.to_bytes(), mapping, "UTC"))
    [appointment] = [r for r in bundle.records if r.resource_type == "Appointment"]
    assert appointment.resource["status"] == "cancelled"


def test_stopped_sync_resumes_without_refetching(sandbox: Sandbox) -> None:
    client = sandbox.client(page_size=2)
    taken = []
    for page in client.sync(None):
        taken.append(page)
        if len(taken) == 3:  # freebusy and two of Ada's four pages
            break
    fetched = len(sandbox.state.requests)
    rest = list(client.sync(taken[-1].cursor))
    assert [p.envelope.kind for p in rest] == ["events"] * 6
    requests = sandbox.state.requests[fetched:]
    assert len(requests) == 6
    assert "freeBusy" not in " ".join(path for _, path in requests)
    assert "pageToken=" in requests[0][1] and ADA in requests[0][1]
    ids = [e["id"] for p in taken[1:] + rest[:2] for e in p.envelope.body["items"]]
    assert len(ids) == len(set(ids)) == 7  # every Ada event once


def test_sync_broken_by_server_errors_resumes_from_last_cursor(sandbox: Sandbox) -> None:
    client = sandbox.client(RetryPolicy(max_attempts=2, base_delay=0.01), page_size=4)
    pages = []
    sandbox.state.faults.fail_next(500, times=2, path=GRACE)
    with pytest.raises(SourceError) as failure:
        for page in client.sync(None):
            pages.append(page)
    assert failure.value.status == 500 and failure.value.retryable
    assert "500 backendError: Backend Error" in str(failure.value)
    assert [p.envelope.kind for p in pages] == ["freebusy", "events", "events"]  # all of Ada
    rest = list(client.sync(pages[-1].cursor))
    assert [p.envelope.context["calendar"]["calendar_id"] for p in rest] == [GRACE, GRACE]
    assert set(rest[-1].cursor["sync_tokens"]) == {ADA, GRACE}


def test_invalidated_sync_token_gives_a_full_resync(sandbox: Sandbox, mapping: MappingSet) -> None:
    client = sandbox.client()
    done = list(client.sync(None))[-1].cursor
    sandbox.state.invalidate_sync_tokens()
    pages = list(client.sync(done))
    gone = [r for r in sandbox.state.requests if "syncToken=" in r[1]]
    assert len(gone) == 2  # each calendar tried its token once, got 410
    assert [p.envelope.context.get("listing") for p in pages] == [None, "full", "full"]
    assert len(pages[1].envelope.body["items"]) == 7
    assert pages[-1].cursor["sync_tokens"][ADA] != done["sync_tokens"][ADA]
    # The new token works again.
    again = list(client.sync(pages[-1].cursor))
    assert [p.envelope.context.get("listing") for p in again] == [
        None,
        "incremental",
        "incremental",
    ]
