"""The client against a served sandbox: full sync, paging, resuming, the changed feed."""

from __future__ import annotations

from collections import Counter

import pytest

from adapters.athena.normalize import normalize_bytes
from adapters.contract import FetchedPage, SourceError
from canonical.errors import NothingToStore
from canonical.model import validate
from mappings.model import MappingSet
from tests.adapters.athena.athena_helpers import TIMEZONE
from tests.adapters.athena.conftest import Served


def kinds(pages: list[FetchedPage]) -> Counter[str]:
    return Counter(p.envelope.kind for p in pages)


def records(pages: list[FetchedPage], mapping: MappingSet) -> Counter[str]:
    found: Counter[str] = Counter()
    for page in pages:
        try:
            bundle = normalize_bytes(page.envelope.to_bytes(), mapping, TIMEZONE)
        except NothingToStore:
            continue
        for record in bundle.records:
            validate(record.resource_type, record.resource)
            found[record.resource_type] += 1
    return found


def open_offsets(served: Served) -> list[str]:
    return [r.query.get("offset", "") for r in served.state.requests if r.path.endswith("/open")]


def test_full_sync_reads_every_list_and_normalizes(served: Served, mapping: MappingSet) -> None:
    served.state.seed_demo(days=7)
    slots = sum(1 for a in served.state.appointments.values() if a.status == "o")
    client = served.client(page_size=20)
    pages = list(client.sync(None))
    counted = kinds(pages)
    assert counted["departments"] == 1 and counted["providers"] == 1
    assert counted["appointments-booked"] == 2  # one per department
    assert counted["appointments-open"] == sum(-(-n // 20) for n in _per_department(served))
    assert records(pages, mapping)["Slot"] == slots
    assert served.state.subscribed  # the changed feed records from the first sync on
    last = pages[-1].cursor
    assert last["mode"] == "changed" and last["departments"] == {
        "1": "US/Eastern",
        "2": "America/Denver",
    }
    # the page context carries the department's zone: Mesa Pediatrics is in Denver
    denver = next(p for p in pages if p.envelope.context.get("departmentid") == "2")
    assert denver.envelope.context["department_timezones"]["2"] == "America/Denver"


def _per_department(served: Served) -> list[int]:
    counts = Counter(a.departmentid for a in served.state.appointments.values() if a.status == "o")
    return list(counts.values())


def test_paging_follows_next_and_each_cursor_resumes_after_its_page(served: Served) -> None:
    served.state.seed_slots(45)
    client = served.client(page_size=10, departmentids=["1"])
    pages = [p for p in client.sync(None) if p.envelope.kind == "appointments-open"]
    assert [len(p.envelope.body["appointments"]) for p in pages] == [10, 10, 10, 10, 5]
    assert pages[0].envelope.body["totalcount"] == 45
    assert [p.cursor["offset"] for p in pages[:4]] == [10, 20, 30, 40]
    assert open_offsets(served) == ["0", "10", "20", "30", "40"]


def test_a_sync_broken_at_page_7_resumes_without_refetching(served: Served) -> None:
    served.state.seed_slots(100)
    served.state.faults.break_paging_at(7, path="/appointments/open")
    client = served.client(page_size=10, departmentids=["1"], attempts=2)
    stored: list[FetchedPage] = []
    with pytest.raises(SourceError, match="500"):
        for page in client.sync(None):
            stored.append(page)  # the hub stores the page and its cursor together
    opened = [p for p in stored if p.envelope.kind == "appointments-open"]
    assert len(opened) == 6
    served.state.faults.heal()
    served.state.requests.clear()
    resumed = list(client.sync(stored[-1].cursor))
    assert open_offsets(served) == ["60", "70", "80", "90"]
    ids = [
        a["appointmentid"]
        for p in opened + resumed
        if p.envelope.kind == "appointments-open"
        for a in p.envelope.body["appointments"]
    ]
    assert len(ids) == len(set(ids)) == 100
    assert not any(r.path.endswith("/departments") for r in served.state.requests)


def test_departments_found_before_a_break_are_kept_in_the_cursor(served: Served) -> None:
    served.state.seed_demo(days=3)
    served.state.default_limit = 1
    served.state.faults.break_paging_at(1, path="/providers", times=2)
    client = served.client(attempts=2, page_size=1)
    stored: list[FetchedPage] = []
    with pytest.raises(SourceError):
        stored.extend(client.sync(None))
    assert [p.envelope.kind for p in stored] == ["departments", "departments"]
    assert stored[-1].cursor["departments"] == {"1": "US/Eastern", "2": "America/Denver"}
    rest = list(client.sync(stored[-1].cursor))
    assert {p.envelope.context.get("departmentid") for p in rest} >= {"1", "2"}


def test_incremental_sync_reads_the_changed_feed_then_open_slots(
    served: Served, mapping: MappingSet
) -> None:
    state = served.state
    made = state.seed_slots(5)
    client = served.client(departmentids=["1"])
    cursor = list(client.sync(None))[-1].cursor
    state.book(made[0].appointmentid, "77", None)
    state.set_status(made[0].appointmentid, "2")
    state.book(made[1].appointmentid, "78", None)
    state.cancel(made[1].appointmentid, "78", "sick")
    pages = list(client.sync(cursor))
    assert [p.envelope.kind for p in pages] == ["appointments-changed", "appointments-open"]
    changed = pages[0].envelope.body["appointments"]
    assert [a["appointmentstatus"] for a in changed] == ["2", "x", "o"]  # the reopened time last
    bundle = normalize_bytes(pages[0].envelope.to_bytes(), mapping, TIMEZONE)
    statuses = {
        r.identifiers[0].value: r.resource["status"]
        for r in bundle.records
        if r.resource_type in ("Appointment", "Slot")
    }
    assert statuses[str(made[0].appointmentid)] in ("checked-in", "busy")
    assert [
        a["status"]
        for a in (r.resource for r in bundle.records if r.resource_type == "Appointment")
    ] == ["checked-in", "cancelled"]
    # the changed feed is consumed: the next run, a minute later, finds it empty
    state.age_processed(60)
    again = list(client.sync(pages[-1].cursor))
    assert [p.envelope.kind for p in again] == ["appointments-changed", "appointments-open"]
    assert again[0].envelope.body["appointments"] == []


def test_changed_feed_pages_while_changes_remain(served: Served) -> None:
    state = served.state
    made = state.seed_slots(12)
    client = served.client(departmentids=["1"], page_size=5)
    cursor = list(client.sync(None))[-1].cursor
    for n, slot in enumerate(made):
        state.book(slot.appointmentid, str(100 + n), None)
    changed = [p for p in client.sync(cursor) if p.envelope.kind == "appointments-changed"]
    assert [len(p.envelope.body["appointments"]) for p in changed] == [5, 5, 2]


def test_a_lost_subscription_means_a_full_run(served: Served) -> None:
    served.state.seed_slots(3)
    client = served.client(departmentids=["1"])
    cursor = list(client.sync(None))[-1].cursor
    served.state.subscribed = False  # someone deleted it: changes in between were not recorded
    pages = list(client.sync(cursor))
    assert "departments" in kinds(pages) and served.state.subscribed
