"""MappingStore on SQLite and PostgreSQL: versions, activation, rollback, diff, unmapped report."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from mappings.cache import MappingCache
from mappings.defaults import load_default
from mappings.errors import InvalidSourceName, NothingToRollBack, UnknownSource, UnknownVersion
from mappings.model import Coding, Crosswalk, MappingContent, UnmappedCode
from mappings.store import SHIPPED_BY, MappingStore


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as s:
        yield s


@pytest.fixture
def store(session: Session) -> MappingStore:
    return MappingStore(session)


def shipped(source: str) -> MappingContent:
    content = load_default(source)
    assert content is not None
    return content


def edited(content: MappingContent, **changes: object) -> MappingContent:
    return content.model_copy(update=changes)


def test_fresh_database_serves_shipped_defaults_as_version_1(store: MappingStore) -> None:
    active = store.active("gmed")
    assert active.label == "gmed@v1"
    assert active.content == shipped("gmed")
    [info] = store.versions("gmed")
    assert (info.version, info.active, info.created_by) == (1, True, SHIPPED_BY)
    assert info.created_at.tzinfo is not None


def test_defaults_are_stored_once(store: MappingStore, session: Session) -> None:
    first = store.ensure_defaults("gmed")
    session.commit()
    again = MappingStore(session).ensure_defaults("gmed")
    assert first == again
    assert [i.version for i in store.versions("gmed")] == [1]


def test_every_shipped_source_is_listed(store: MappingStore) -> None:
    assert {"gmed", "epic", "athena", "google"} <= set(store.sources())


def test_unknown_source_and_version(store: MappingStore) -> None:
    with pytest.raises(UnknownSource):
        store.active("nosuchvendor")
    with pytest.raises(UnknownSource):
        store.versions("nosuchvendor")
    with pytest.raises(UnknownVersion):
        store.get("gmed", 7)
    with pytest.raises(InvalidSourceName):
        store.active("../etc/passwd")
    with pytest.raises(InvalidSourceName):
        store.create("Bad Name", MappingContent())


def test_unknown_source_is_a_rejected_input(store: MappingStore) -> None:
    # The hub parks messages whose source has no mapping set instead of retrying them.
    from canonical.errors import RejectedInput

    with pytest.raises(RejectedInput):
        store.active_version("nosuchvendor")


def test_create_numbers_after_defaults_and_does_not_activate(
    store: MappingStore, session: Session
) -> None:
    content = edited(shipped("gmed"), timezone="America/New_York")
    created = store.create("gmed", content, note="clinic is in NY", created_by="ana")
    session.commit()
    assert created.label == "gmed@v2"
    assert store.active_version("gmed") == 1
    infos = {i.version: i for i in store.versions("gmed")}
    assert infos[2].note == "clinic is in NY"
    assert infos[2].created_by == "ana"
    assert not infos[2].active
    assert store.get("gmed", 2).content.timezone == "America/New_York"


def test_create_with_activate_switches(store: MappingStore) -> None:
    created = store.create("gmed", shipped("gmed"), activate=True)
    assert store.active_version("gmed") == created.version == 2
    assert store.active("gmed").label == "gmed@v2"


def test_first_version_of_a_custom_source_is_activated(store: MappingStore) -> None:
    content = MappingContent(status={"ok": "booked"})
    created = store.create("acme", content, created_by="ops")
    assert created.version == 1
    assert store.active("acme").status("OK") == "booked"
    assert "acme" in store.sources()


def test_activation_survives_a_new_session(engine: Engine) -> None:
    with Session(engine) as s:
        MappingStore(s).create("gmed", shipped("gmed"), activate=True)
        s.commit()
    with Session(engine) as s:
        assert MappingStore(s).active_version("gmed") == 2


def test_uncommitted_changes_are_the_callers_to_discard(engine: Engine) -> None:
    with Session(engine) as s:
        MappingStore(s).create("gmed", shipped("gmed"), activate=True)
        s.rollback()
    with Session(engine) as s:
        store = MappingStore(s)
        assert store.active_version("gmed") == 1
        assert [i.version for i in store.versions("gmed")] == [1]


def test_activate_unknown_version_changes_nothing(store: MappingStore) -> None:
    store.ensure_defaults("gmed")
    with pytest.raises(UnknownVersion):
        store.activate("gmed", 5)
    assert store.active_version("gmed") == 1


def test_rollback_walks_back_through_activations(store: MappingStore) -> None:
    base = shipped("gmed")
    for zone in ("Europe/Paris", "Europe/Berlin", "Europe/Rome"):
        store.create("gmed", edited(base, timezone=zone))
    store.activate("gmed", 3)
    store.activate("gmed", 2)
    store.activate("gmed", 4)
    assert store.rollback("gmed").version == 2
    assert store.rollback("gmed").version == 3
    assert store.rollback("gmed").version == 1
    with pytest.raises(NothingToRollBack):
        store.rollback("gmed")
    assert store.active_version("gmed") == 1
    kinds = [a.kind for a in store.history("gmed")]
    assert kinds == ["defaults", "activate", "activate", "activate"] + ["rollback"] * 3


def test_activating_after_rollback_can_be_rolled_back(store: MappingStore) -> None:
    store.create("gmed", edited(shipped("gmed"), timezone="Asia/Tokyo"), activate=True)
    store.rollback("gmed")
    store.activate("gmed", 2)
    assert store.rollback("gmed").version == 1


def test_reactivating_the_active_version_is_a_no_op(store: MappingStore) -> None:
    store.create("gmed", edited(shipped("gmed"), timezone="Asia/Tokyo"), activate=True)
    before = len(store.history("gmed"))
    store.activate("gmed", 2)
    assert len(store.history("gmed")) == before
    assert store.rollback("gmed").version == 1


def test_rollback_of_the_shipped_version_is_refused(store: MappingStore) -> None:
    with pytest.raises(NothingToRollBack, match="first"):
        store.rollback("gmed")


def test_diff_lists_added_removed_and_changed_entries(store: MappingStore) -> None:
    base = shipped("gmed")
    status = dict(base.status)
    removed_key = next(iter(status))
    del status[removed_key]
    status["Ready"] = "booked"
    providers = {"DR1": Crosswalk(system="http://hl7.org/fhir/sid/us-npi", value="1234567893")}
    store.create("gmed", edited(base, status=status, providers=providers, timezone="Europe/Oslo"))
    changes = store.diff("gmed", 1, 2)
    found = {(c.table, c.key): c for c in changes}
    assert found[("status", removed_key)].kind == "removed"
    assert found[("status", removed_key)].before == base.status[removed_key]
    assert found[("status", "Ready")].kind == "added"
    assert found[("providers", "DR1")].after == providers["DR1"].model_dump(mode="json")
    assert found[("timezone", "")].kind == "added"
    assert len(changes) == 4
    assert store.diff("gmed", 1, 1) == []
    reverse = {(c.table, c.key): (c.before, c.after) for c in store.diff("gmed", 2, 1)}
    assert reverse == {k: (c.after, c.before) for k, c in found.items()}


def test_diff_of_unknown_version(store: MappingStore) -> None:
    with pytest.raises(UnknownVersion):
        store.diff("gmed", 1, 9)


def test_unmapped_counts_and_report(store: MappingStore, session: Session) -> None:
    store.record_unmapped("gmed", "status", "Parked", 10)
    store.record_unmapped("gmed", "status", "Parked", 11)
    store.record_unmapped("gmed", "appointment_types", "XRAY", 12)
    store.record_unmapped("gmed", "status", "Lost", None)
    session.commit()
    report = {(e.table, e.code): e for e in store.unmapped("gmed")}
    assert set(report) == {("status", "Parked"), ("appointment_types", "XRAY"), ("status", "Lost")}
    parked = report[("status", "Parked")]
    assert (parked.count, parked.last_message_id, parked.checked_against) == (2, 11, "gmed@v1")
    assert parked.first_seen <= parked.last_seen
    assert report[("status", "Lost")].last_message_id is None
    assert store.unmapped()[0].code == "Parked"  # most frequent first


def test_codes_mapped_later_drop_out_and_rollback_brings_them_back(store: MappingStore) -> None:
    store.record_unmapped("gmed", "status", "Parked", 1)
    store.record_unmapped("gmed", "appointment_types", "XRAY", 2)
    store.record_unmapped("gmed", "trigger_events", "S99", 3)
    base = shipped("gmed")
    fixed = edited(
        base,
        status={**base.status, "PARKED": "pending"},  # lookups ignore case
        appointment_types={**base.appointment_types, "XRAY": Coding(code="XRAY")},
    )
    store.create("gmed", fixed, activate=True)
    assert [(e.table, e.code) for e in store.unmapped("gmed")] == [("trigger_events", "S99")]
    store.rollback("gmed")
    assert len(store.unmapped("gmed")) == 3


def test_unmapped_report_covers_every_source(store: MappingStore) -> None:
    store.record_unmapped("gmed", "status", "Parked", 1)
    store.record_unmapped("epic", "status", "on-hold", 2)
    store.record_unmapped("ghost", "status", "x", 3)  # no mapping set at all
    by_source = {e.source: e for e in store.unmapped()}
    assert set(by_source) == {"gmed", "epic", "ghost"}
    assert by_source["ghost"].checked_against is None
    assert [e.source for e in store.unmapped("epic")] == ["epic"]


def test_unmapped_code_from_a_lookup_can_be_recorded(store: MappingStore) -> None:
    active = store.active("gmed")
    with pytest.raises(UnmappedCode) as caught:
        active.status("Teleported")
    exc = caught.value
    store.record_unmapped(exc.source, exc.table, exc.code, 5)
    [entry] = store.unmapped()
    assert (entry.source, entry.table, entry.code) == ("gmed", "status", "Teleported")


def test_concurrent_unmapped_counts_are_not_lost(engine: Engine) -> None:
    threads, each = 4, 15
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(each):
                with Session(engine) as s:
                    MappingStore(s).record_unmapped("gmed", "status", "Racing", n * 100 + i)
                    s.commit()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    with Session(engine) as s:
        [entry] = MappingStore(s).unmapped()
    assert entry.count == threads * each


def test_concurrent_first_use_stores_defaults_once(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers; the insert race needs PostgreSQL")
    first, second = Session(engine), Session(engine)
    try:
        MappingStore(first).ensure_defaults("gmed")  # holds the unique key, uncommitted
        result: list[int] = []

        def late() -> None:
            result.append(MappingStore(second).active_version("gmed"))
            second.commit()

        t = threading.Thread(target=late)
        t.start()
        t.join(0.5)  # blocked on first's uncommitted row
        first.commit()
        t.join(10)
        assert result == [1]
    finally:
        first.close()
        second.close()
    with Session(engine) as s:
        assert [i.version for i in MappingStore(s).versions("gmed")] == [1]


def test_cache_reuses_parsed_versions_and_sees_activations(store: MappingStore) -> None:
    cache = MappingCache()
    one = cache.active(store, "gmed")
    assert cache.active(store, "gmed") is one
    store.create("gmed", edited(shipped("gmed"), timezone="Europe/Madrid"), activate=True)
    two = cache.active(store, "gmed")
    assert two.version == 2
    store.rollback("gmed")
    assert cache.active(store, "gmed") is one


def test_cache_is_bounded(store: MappingStore) -> None:
    cache = MappingCache(max_entries=1)
    first = cache.active(store, "gmed")
    cache.active(store, "epic")
    assert cache.active(store, "gmed") is not first
    assert cache.active(store, "gmed") == first
