"""The ranking candidate cache: same answers as a fresh read, and never staler than its mark
and time to live allow (slots booked, claimed, added, moved), whether a change is patched
into the window or the window is read again; bounded in size."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert
from sqlalchemy.orm import Session

import hub.candidate_cache as candidate_cache
import hub.slot_candidates as slot_candidates
from canonical.records import Provenance
from canonical.repository import CanonicalRepository
from hub.candidate_cache import CandidateCache, CandidateView, cache_for, candidates, set_cache
from hub.changes import save_change
from hub.events import events_from_results, record_events
from hub.settings import Settings
from hub.slot_candidates import free_slots, read_change_mark
from hub.tables import slot_bookings
from scheduling.ranking import Candidate, Preferences, Ranking, SlotTable, TimeWindow, rank

NOW = datetime(2030, 3, 4, 7, 20, 13, 500_000, tzinfo=UTC)  # a Monday, mid-second
HOUR = timedelta(hours=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _settings(engine: Engine) -> Settings:
    return Settings(database_url=engine.url.render_as_string(hide_password=False))


def _schedule(engine: Engine, who: str, kind: str) -> str:
    settings = _settings(engine)
    location, _ = save_change(
        engine,
        settings,
        "Location",
        {"resourceType": "Location", "name": f"Clinic {who}", "position": _position(who)},
        source_system="harmony",
    )
    practitioner, _ = save_change(
        engine,
        settings,
        "Practitioner",
        {"resourceType": "Practitioner", "name": [{"text": f"Dr {who}"}]},
        source_system="harmony",
    )
    schedule, _ = save_change(
        engine,
        settings,
        "Schedule",
        {
            "resourceType": "Schedule",
            "actor": [
                {"reference": f"Practitioner/{practitioner.id}"},
                {"reference": f"Location/{location.id}"},
            ],
            "serviceType": [{"text": kind}],
        },
        source_system="harmony",
    )
    return schedule.id


def _position(who: str) -> dict[str, float]:
    return {"latitude": 40.0 + len(who) / 10, "longitude": -74.0}


def _slot(engine: Engine, schedule_id: str, start: datetime, status: str = "free") -> str:
    result, _ = save_change(
        engine,
        _settings(engine),
        "Slot",
        _body(schedule_id, start, status),
        source_system="harmony",
    )
    return result.id


def _body(schedule_id: str, start: datetime, status: str) -> dict[str, Any]:
    return {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{schedule_id}"},
        "status": status,
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
    }


def _set_status(engine: Engine, slot_id: str, status: str) -> None:
    """Change a slot the way the hub does: the version and its domain event together."""
    with Session(engine) as session:
        slot = CanonicalRepository(session).get("Slot", slot_id)
    assert slot is not None
    body = {k: v for k, v in slot.items() if k != "meta"}
    save_change(
        engine, _settings(engine), "Slot", {**body, "status": status}, source_system="harmony"
    )


def _schedule_of(engine: Engine, slot_id: str) -> str:
    with Session(engine) as session:
        slot = CanonicalRepository(session).get("Slot", slot_id)
    assert slot is not None
    return str(slot["schedule"]["reference"].split("/", 1)[1])


@pytest.fixture
def seeded(engine: Engine) -> dict[str, list[str]]:
    """Two practitioners (follow-up, new-patient), 16 free slots over four days from NOW."""
    ada = _schedule(engine, "Ada", "follow-up")
    bea = _schedule(engine, "Beatrice", "new-patient")
    out: dict[str, list[str]] = {"ada": [], "bea": []}
    day = NOW.replace(hour=9, minute=0, second=0, microsecond=0)
    for d in range(4):
        for h in (0, 1, 5, 6):
            who, schedule = ("ada", ada) if h < 5 else ("bea", bea)
            out[who].append(_slot(engine, schedule, day + timedelta(days=d, hours=h)))
    return out


PREFERENCES = [
    Preferences(),
    Preferences(
        preferred_days=frozenset({1, 2}), preferred_times=(TimeWindow(time(14), time(16)),)
    ),
    Preferences(visit_type="new-patient", home=(40.8, -74.0), max_travel_km=500.0),
    Preferences(min_notice=timedelta(days=2), blocked_days=frozenset({3})),
]


def _rank(view: CandidateView, prefs: Preferences, k: int = 5) -> Ranking:
    """As api.slots.ranked_for ranks a view."""
    bounded = replace(prefs, not_before=view.not_before, not_after=view.not_after)
    return replace(rank(view.table, bounded, NOW, k), considered=view.considered)


def _summary(ranking: Ranking) -> list[tuple[str, float, tuple[str, ...]]]:
    return [(p.candidate.slot_id, p.score, tuple(r.code for r in p.meets)) for p in ranking.picks]


def _offered(cache: CandidateCache, engine: Engine, start: datetime, end: datetime) -> set[str]:
    with Session(engine) as session:
        view = cache.view(session, start, end, NOW)
    assert view is not None and view.cached
    return {p.candidate.slot_id for p in _rank(view, Preferences(), k=20).picks}


def test_a_cache_hit_ranks_exactly_as_a_fresh_read(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    cache = CandidateCache()
    start, end = NOW + timedelta(days=1, hours=2), NOW + timedelta(days=3)  # mid-bucket, mid-second
    with Session(engine) as session:
        first = cache.view(session, start, end, NOW)
        again = cache.view(session, start, end, NOW)
        fresh = free_slots(session, start, end)
    assert first is not None and again is not None
    assert again.table is first.table and len(cache) == 1  # the second was a hit
    assert len(first.table) == 16 and first.considered == len(fresh.candidates) == 7
    assert not first.truncated and not fresh.truncated
    table = SlotTable(fresh.candidates)
    for prefs in PREFERENCES:
        uncached = rank(table, prefs, NOW, 5)
        cached = _rank(again, prefs)
        assert _summary(cached) == _summary(uncached) and _summary(cached)
        assert (cached.considered, cached.eligible) == (uncached.considered, uncached.eligible)


def test_a_slot_booked_or_claimed_after_caching_is_gone_once_the_mark_moves(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    cache = CandidateCache()
    start, end = NOW, NOW + timedelta(days=10)
    booked, claimed = seeded["ada"][0], seeded["bea"][0]
    assert {booked, claimed} <= _offered(cache, engine, start, end)
    _set_status(engine, booked, "busy")
    offered = _offered(cache, engine, start, end)
    assert booked not in offered and claimed in offered and len(offered) == 15
    with engine.begin() as conn:  # a booking's claim, before the source has answered
        conn.execute(insert(slot_bookings).values(slot_id=claimed, state="pending", created_at=NOW))
    assert claimed not in _offered(cache, engine, start, end)
    _set_status(engine, booked, "free")  # cancelled: offered again
    assert booked in _offered(cache, engine, start, end)


def test_a_new_free_slot_appears(engine: Engine, seeded: dict[str, list[str]]) -> None:
    cache = CandidateCache()
    start, end = NOW, NOW + timedelta(days=10)
    before = _offered(cache, engine, start, end)
    added = _slot(engine, _schedule_of(engine, seeded["ada"][0]), NOW + timedelta(days=8))
    assert added not in before
    assert _offered(cache, engine, start, end) == before | {added}


def test_what_the_mark_cannot_see_is_served_no_longer_than_the_ttl(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    clock = Clock()
    cache = CandidateCache(ttl=30, clock=clock)
    start, end = NOW, NOW + timedelta(days=10)
    slot_id = seeded["ada"][1]
    assert slot_id in _offered(cache, engine, start, end)
    with Session(engine) as session:
        mark = read_change_mark(session)
    with Session(engine) as session, session.begin():  # a write that skipped the event log
        repo = CanonicalRepository(session)
        slot = repo.get("Slot", slot_id)
        assert slot is not None
        body = {k: v for k, v in slot.items() if k != "meta"}
        provenance = Provenance("harmony", None, None, NOW)
        repo.save("Slot", {**body, "status": "busy"}, provenance)
    with Session(engine) as session:
        assert read_change_mark(session, mark) == mark  # invisible to the mark
    clock.now += 29.9
    assert slot_id in _offered(cache, engine, start, end)  # within the bound: still shown
    clock.now += 0.1
    assert slot_id not in _offered(cache, engine, start, end)


def test_a_late_commit_of_a_lower_event_id_moves_the_mark(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    """PostgreSQL: the slot's event takes its id first and commits after a later one, so the
    highest id does not move; the count above the floor does."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers: no out-of-order commit")
    cache = CandidateCache()
    start, end = NOW, NOW + timedelta(days=10)
    slot_id = seeded["bea"][2]
    with Session(engine) as late:
        repo = CanonicalRepository(late)
        slot = repo.get("Slot", slot_id)
        assert slot is not None
        body = {k: v for k, v in slot.items() if k != "meta"}
        result = repo.save(
            "Slot", {**body, "status": "busy"}, Provenance("harmony", None, None, NOW)
        )
        record_events(late.connection(), events_from_results([result], "", "harmony", None))
        other = _slot(engine, _schedule_of(engine, seeded["ada"][0]), NOW + timedelta(days=9))
        offered = _offered(cache, engine, start, end)
        assert slot_id in offered and other in offered  # the late write is not visible yet
        late.commit()
    assert slot_id not in _offered(cache, engine, start, end)
    assert (cache.builds, cache.refreshes) == (1, 1)  # found as a late id, patched in
    _assert_as_fresh(cache, engine)


def test_a_window_the_cache_does_not_hold_reads_the_database(
    engine: Engine, seeded: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CandidateCache(horizon=timedelta(days=2), bucket=HOUR)
    long_end = NOW + timedelta(days=10)
    with Session(engine) as session:
        assert cache.view(session, NOW, long_end, NOW) is None and len(cache) == 0
        assert cache.view(session, NOW - 2 * HOUR, NOW + HOUR, NOW) is None  # starts before it
        set_cache(engine, cache)
        try:
            view = candidates(session, NOW, long_end, NOW)
            fresh = free_slots(session, NOW, long_end)
        finally:
            set_cache(engine, CandidateCache())
    assert not view.cached and view.not_before is None and view.not_after is None
    assert [c.slot_id for c in view.table.candidates] == [c.slot_id for c in fresh.candidates]
    assert view.considered == 16

    monkeypatch.setattr(slot_candidates, "MAX_CANDIDATES", 6)  # the window overflows
    third_day = NOW.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    with Session(engine) as session:
        early = cache.view(session, NOW, third_day, NOW)  # ends before the first slot left out
        late = cache.view(session, NOW, third_day + timedelta(hours=12), NOW)
    assert early is not None and early.considered == 4 and not early.truncated
    assert late is None


def test_the_default_cache_is_per_database(engine: Engine, seeded: dict[str, list[str]]) -> None:
    cache = cache_for(engine)
    assert cache is not None and cache_for(engine) is cache
    with Session(engine) as session:
        view = candidates(session, NOW, NOW + timedelta(days=10), NOW)
    assert view.cached and view.considered == 16 and len(cache) == 1
    set_cache(engine, None)
    with Session(engine) as session:
        assert not candidates(session, NOW, NOW + timedelta(days=10), NOW).cached
    set_cache(engine, CandidateCache())


def test_at_most_max_windows_are_kept_least_recently_used_first(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    cache = CandidateCache(max_windows=2, horizon=timedelta(days=1), bucket=HOUR)
    days = [NOW + timedelta(days=d) for d in range(3)]
    tables = []
    with Session(engine) as session:
        for day in (days[0], days[1], days[0], days[2], days[0], days[1]):
            view = cache.view(session, day, day + HOUR * 20, day)
            assert view is not None
            tables.append(view.table)
            assert len(cache) <= 2
    assert tables[2] is tables[0]  # day 0 was kept (a hit)
    assert tables[4] is tables[0]  # still kept: used before day 2 came in, day 1 went
    assert tables[5] is not tables[1]  # day 1 was evicted and rebuilt


def _update_slot(engine: Engine, slot_id: str, **fields: Any) -> None:
    """Change a slot the way the hub does: the version and its domain event together."""
    with Session(engine) as session:
        slot = CanonicalRepository(session).get("Slot", slot_id)
    assert slot is not None
    body = {k: v for k, v in slot.items() if k != "meta"}
    save_change(engine, _settings(engine), "Slot", {**body, **fields}, source_system="harmony")


def _move(engine: Engine, slot_id: str, start: datetime) -> None:
    moved = _body("unused", start, "free")
    _update_slot(engine, slot_id, start=moved["start"], end=moved["end"])


def _start_of(engine: Engine, slot_id: str) -> datetime:
    with Session(engine) as session:
        slot = CanonicalRepository(session).get("Slot", slot_id)
    assert slot is not None
    return datetime.fromisoformat(str(slot["start"]).replace("Z", "+00:00"))


def _claim(engine: Engine, slot_id: str) -> None:
    """A booking's claim, inserted before the source is asked."""
    with engine.begin() as conn:
        conn.execute(insert(slot_bookings).values(slot_id=slot_id, state="pending", created_at=NOW))


def _unclaim(engine: Engine, slot_id: str) -> None:
    """The claim dropped (the booking failed, or its appointment ended)."""
    with engine.begin() as conn:
        conn.execute(delete(slot_bookings).where(slot_bookings.c.slot_id == slot_id))


def _cancel(engine: Engine, slot_id: str) -> None:
    """The appointment cancelled: its claim dropped, the slot free again."""
    _unclaim(engine, slot_id)
    _update_slot(engine, slot_id, status="free")


def _decoded(table: SlotTable) -> list[tuple[Any, ...]]:
    """Each row as its columns say it (codes looked up), to hold against its candidate."""
    return [
        (int(s), int(e), table.practitioner_ids[p], table.places[pl], table.kind_sets[k])
        for s, e, p, pl, k in zip(
            table.start, table.end, table.practitioner, table.place, table.kinds, strict=True
        )
    ]


def _as_built(candidates: list[Candidate]) -> list[tuple[Any, ...]]:
    return _decoded(SlotTable(candidates))


def _assert_as_fresh(
    cache: CandidateCache, engine: Engine, start: datetime = NOW, days: int = 10
) -> None:
    """The cached view holds exactly what a fresh read gives, in its order, with columns
    true to its candidates, and ranks exactly as the fresh read does."""
    end = start + timedelta(days=days)
    with Session(engine) as session:
        view = cache.view(session, start, end, NOW)
        fresh = free_slots(session, start, end).candidates
    assert view is not None and view.cached
    assert view.not_before is not None and view.not_after is not None
    lo, hi = view.not_before, view.not_after
    assert [c for c in view.table.candidates if lo <= c.start < hi] == fresh
    assert _decoded(view.table) == _as_built(view.table.candidates)
    table = SlotTable(fresh)
    for prefs in PREFERENCES:
        uncached = rank(table, prefs, NOW, 5)
        cached = _rank(view, prefs)
        assert _summary(cached) == _summary(uncached)
        assert (cached.considered, cached.eligible) == (uncached.considered, uncached.eligible)


def test_each_change_is_patched_in_and_ranks_as_a_fresh_read(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    cache = CandidateCache()
    ada, bea = seeded["ada"], seeded["bea"]
    _assert_as_fresh(cache, engine)
    changes = [
        lambda: _claim(engine, ada[0]),  # a booking: its claim first...
        lambda: _update_slot(engine, ada[0], status="busy"),  # ...then the slot busy
        lambda: _cancel(engine, ada[0]),
        lambda: _claim(engine, bea[1]),
        lambda: _unclaim(engine, bea[1]),  # the booking failed: free again, no slot event
        lambda: _slot(engine, _schedule_of(engine, ada[0]), NOW + timedelta(days=5)),
        lambda: _move(engine, bea[-1], _start_of(engine, ada[0])),  # onto a lower pk's start
        lambda: _move(engine, ada[1], _start_of(engine, bea[3])),  # onto a higher pk's start
        lambda: _move(engine, ada[2], NOW + timedelta(days=90)),  # out of the window
        lambda: _move(engine, ada[2], NOW + timedelta(days=2, minutes=7)),  # and back in
        lambda: _update_slot(engine, bea[0], serviceType=[{"text": "vaccination"}]),
    ]
    for done, change in enumerate(changes, start=1):
        change()
        _assert_as_fresh(cache, engine)
        assert (cache.builds, cache.refreshes) == (1, done)
    assert _offered(cache, engine, NOW, NOW + timedelta(days=10)) >= {ada[0], bea[1]}


def test_a_schedule_change_reads_the_window_again(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    cache = CandidateCache()
    _assert_as_fresh(cache, engine)
    schedule_id = _schedule_of(engine, seeded["ada"][0])
    with Session(engine) as session:
        schedule = CanonicalRepository(session).get("Schedule", schedule_id)
    assert schedule is not None
    body = {k: v for k, v in schedule.items() if k != "meta"}
    changed = {**body, "serviceType": [{"text": "new-patient"}]}
    save_change(engine, _settings(engine), "Schedule", changed, source_system="harmony")
    _assert_as_fresh(cache, engine)
    assert (cache.builds, cache.refreshes) == (2, 0)


def test_many_changes_at_once_are_patched_together(
    engine: Engine, seeded: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CandidateCache()
    ada, bea = seeded["ada"], seeded["bea"]
    _assert_as_fresh(cache, engine)
    _claim(engine, bea[2])  # released again below, in the same batch
    _assert_as_fresh(cache, engine)
    schedule = _schedule_of(engine, bea[0])
    for slot_id in ada[:5]:
        _claim(engine, slot_id)
        _update_slot(engine, slot_id, status="busy")
    added = [_slot(engine, schedule, NOW + timedelta(days=d, hours=3)) for d in range(3)]
    _move(engine, bea[4], _start_of(engine, bea[0]))
    _move(engine, added[0], _start_of(engine, ada[6]))
    _claim(engine, bea[5])
    _unclaim(engine, bea[2])
    _assert_as_fresh(cache, engine)
    assert (cache.builds, cache.refreshes) == (1, 2)

    monkeypatch.setattr(candidate_cache, "MAX_PATCH", 1)  # more than a patch may take
    for slot_id in bea[6:8]:
        _update_slot(engine, slot_id, status="busy")
    _assert_as_fresh(cache, engine)
    assert (cache.builds, cache.refreshes) == (2, 2)


def test_a_refresh_does_not_extend_the_time_to_live(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    """What the mark cannot see, a patch cannot see either: the window is read whole
    ``ttl`` seconds after it was last read whole, however often it was patched."""
    clock = Clock()
    cache = CandidateCache(ttl=30, clock=clock)
    start, end = NOW, NOW + timedelta(days=10)
    hidden = seeded["ada"][1]
    assert hidden in _offered(cache, engine, start, end)
    with Session(engine) as session, session.begin():  # a write that skipped the event log
        repo = CanonicalRepository(session)
        slot = repo.get("Slot", hidden)
        assert slot is not None
        body = {k: v for k, v in slot.items() if k != "meta"}
        repo.save("Slot", {**body, "status": "busy"}, Provenance("harmony", None, None, NOW))
    clock.now += 20
    _update_slot(engine, seeded["bea"][0], status="busy")
    offered = _offered(cache, engine, start, end)
    assert hidden in offered and seeded["bea"][0] not in offered and cache.refreshes == 1
    clock.now += 10
    assert hidden not in _offered(cache, engine, start, end) and cache.builds == 2


def test_a_late_commit_of_a_lower_claim_id_is_patched_in(
    engine: Engine, seeded: dict[str, list[str]]
) -> None:
    """PostgreSQL: a claim takes its id, a later claim commits first and is patched in, then
    the first commits below the highest id seen: the count and sum above the floor see it."""
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite serialises writers: no out-of-order commit")
    cache = CandidateCache()
    start, end = NOW, NOW + timedelta(days=10)
    early, later = seeded["bea"][1], seeded["ada"][3]
    assert {early, later} <= _offered(cache, engine, start, end)
    with engine.connect() as late:
        late.begin()
        late.execute(insert(slot_bookings).values(slot_id=early, state="pending", created_at=NOW))
        _claim(engine, later)
        offered = _offered(cache, engine, start, end)
        assert early in offered and later not in offered
        late.commit()
    assert early not in _offered(cache, engine, start, end)
    assert (cache.builds, cache.refreshes) == (1, 2)
    _assert_as_fresh(cache, engine)


def test_a_patched_table_is_the_table_of_its_candidates() -> None:
    """SlotTable.patched against a table built from the same list: same rows, same ranks,
    also in a zone whose local times were computed before the patch."""
    day = NOW.replace(hour=8, minute=0, second=0, microsecond=0)
    old = [
        Candidate(f"s{i}", day + timedelta(hours=i), day + timedelta(hours=i, minutes=30), "P/a")
        for i in range(8)
    ]
    table = SlotTable(old)
    berlin = Preferences(timezone="Europe/Berlin", preferred_times=(TimeWindow(time(9), time(12)),))
    rank(table, berlin, NOW, 3)  # computes Berlin's local times
    new = [
        replace(old[1], slot_id="n1", practitioner_id="P/b", visit_types=frozenset({"x"})),
        replace(old[5], slot_id="n5", start=old[5].start + timedelta(minutes=10)),
    ]
    patched = table.patched([0, 3, 4], new, [0, 2])  # kept: s1 s2 s5 s6 s7
    expected = [new[0], old[1], old[2], new[1], old[5], old[6], old[7]]
    assert patched.candidates == expected and len(table) == 8  # the old table is unchanged
    assert _decoded(patched) == _as_built(expected)
    fresh = SlotTable(expected)
    for prefs in (*PREFERENCES, berlin, Preferences(visit_type="x")):
        assert _summary(rank(patched, prefs, NOW, 5)) == _summary(rank(fresh, prefs, NOW, 5))
    assert patched.local_day_and_minute("Europe/Berlin")[1].tolist() == (
        fresh.local_day_and_minute("Europe/Berlin")[1].tolist()
    )
    with pytest.raises(ValueError, match="non-decreasing"):
        table.patched([], new, [2, 0])
