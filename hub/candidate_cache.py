"""Ranking candidates kept per process, so a ranking request does not rebuild them each time.

Reading the free slots of a 60-day window whole and building their column-wise table costs
3-5 s for 50,000 slots on a loaded 2-core machine (parsing each Slot's JSON is ~1.3 s of
it, the SlotTable 0.1-0.5 s); ranking them costs ~6 ms. A :class:`CandidateCache` keeps the
table of the window that starts at the current hour (``bucket``) and runs ``horizon +
bucket``: every request that ends inside it (the default "next 60 days from now" does for a
whole hour, and so does any shorter window from now on) ranks against that one table,
restricted to its own bounds. The window of the hour before lingers until evicted (at most
``max_windows``, least recently used first; ~30 MB each at 50,000 slots).

Correctness: each request first reads the change mark (hub.slot_candidates.ChangeMark, one
indexed statement) and reuses a window only while the mark is what it was when the window
was last brought up to date. Every canonical write records a domain event in the same
transaction, and every booking inserts its claim before it is sent, so a slot booked,
claimed or made busy, a new free slot, a changed Schedule or Location moves the mark, and
the first request after the commit brings the window up to date: for those the answer is
never stale.

Up to date means patched, not read again: on 50,000 slots and a loaded 2-core machine the
patch, reads included, takes ~15 ms, and the first request after one booking or one new
slot 45-85 ms at p50 (a warm one 15-30 ms, the first after a rebuild 3.5-4 s). The window
keeps the ids of the domain events and claims above its floors that it reflects, so it
finds the new ones, above the highest or (a PostgreSQL late commit) below it; their Slots,
and the claimed slots it knows of (a deleted claim leaves no row to find), are read again
alone (hub.slot_candidates.read_slots, the code of free_slots) and dropped, put in or
replaced in a copy of the table, in free_slots' order (SlotTable.patched). A Schedule or
Location change (it may move many slots), more than ``MAX_PATCH`` slots or too many new
rows at once: the window is read whole, as on first use.

A window is also read whole once it was last read whole ``ttl`` (30 s) ago, however often it
was patched since: that bounds how long what neither the mark nor a patch sees can be served
(a PostgreSQL commit of an id at or below the window's floor, ``MARK_LOOKBACK`` below the
highest id when it was read; a claim id SQLite reused; a claim deleted below the floor while
nothing else changed; a write that skipped the event log). 30 s is acceptable because a slot
shown free too long cannot be double-booked: booking goes through the unique slot claim and
the source, and answers 409 (the booking screen then ranks again); a new slot shown 30 s
late costs nothing. The price of the full read (2-4 s for 50,000 slots here) is paid once
per 30 s by every request that arrives while it runs (they wait for it rather than read the
window themselves); serving the old window meanwhile would hide that and is not done yet.

Windows holding more than ``MAX_CANDIDATES`` free slots answer only requests that end before
the first slot they had to leave out (a patch adds no slot from there on); others read the
database (``free_slots``), as do requests ending after the window (or starting before it),
and engines whose cache was turned off (``set_cache``).
"""

from __future__ import annotations

import threading
import time
import weakref
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from hub.slot_candidates import (
    ChangeMark,
    Seen,
    SlotRead,
    changes_since,
    claimed_now,
    free_slots,
    read_change_mark,
    read_slots,
    read_window,
    seen_now,
    slot_pks,
)
from scheduling.ranking import Candidate, SlotTable

HORIZON = timedelta(days=60)
BUCKET = timedelta(hours=1)
TTL_SECONDS = 30.0
MAX_WINDOWS = 2
MAX_PATCH = 5_000
"""More slots to re-read than this in one refresh: the window is read whole instead."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CandidateView:
    """Candidates for one request: rank ``table`` with ``not_before``/``not_after`` as hard
    bounds (None: every row is in the window) and report ``considered`` slots."""

    table: SlotTable
    not_before: datetime | None
    not_after: datetime | None
    considered: int
    truncated: bool
    cached: bool


@dataclass(frozen=True, slots=True)
class _Window:
    start: datetime
    covered_until: datetime
    """Requests ending at or before this see every free slot the database would give."""
    table: SlotTable
    pks: npt.NDArray[np.int64]
    """Each row's canonical pk: rows that start together are in pk order, as in free_slots."""
    claimed: frozenset[str]
    """Free slots in the window left out because a booking claims them."""
    events: Seen
    claims: Seen
    mark: ChangeMark
    built_at: float
    """When the window was last read whole: the time to live counts from here."""


class CandidateCache:
    """At most ``max_windows`` windows (least recently used goes first), each trusted while
    the change mark stands still and for at most ``ttl`` seconds."""

    def __init__(
        self,
        *,
        max_windows: int = MAX_WINDOWS,
        ttl: float = TTL_SECONDS,
        horizon: timedelta = HORIZON,
        bucket: timedelta = BUCKET,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_windows < 1 or ttl <= 0 or bucket <= timedelta(0):
            raise ValueError("a cache needs a window, a time to live and a bucket")
        self.max_windows = max_windows
        self.ttl = ttl
        self.horizon = horizon
        self.bucket = bucket
        self._clock = clock
        self._windows: OrderedDict[datetime, _Window] = OrderedDict()
        self._lock = threading.Lock()
        self._building = threading.Lock()
        self.builds = 0
        """How many times a window was read whole (first use, time to live, what a refresh
        cannot patch)."""
        self.refreshes = 0
        """How many times a window was patched with what changed instead."""

    def __len__(self) -> int:
        return len(self._windows)

    def view(
        self, session: Session, start: datetime, end: datetime, now: datetime
    ) -> CandidateView | None:
        """The cached candidates for [start, end), or None when the database must answer."""
        key = _floor(now, self.bucket)
        if start < key or end > key + self.horizon + self.bucket:
            return None
        window = self._current(session, key)
        if window is None:
            # Waiting holds no transaction: on SQLite an open one holds the write lock the
            # refreshing request may need, and on PostgreSQL a pooled connection.
            session.rollback()
            with self._building:  # one refresh at a time; the others then reuse it
                window = self._renewed(session, key)
        if end > window.covered_until:
            return None
        lo, hi = _ceil_second(start), _ceil_second(end)
        first, stop = np.searchsorted(window.table.start, [_seconds(lo), _seconds(hi)])
        return CandidateView(window.table, lo, hi, int(stop - first), False, cached=True)

    def _current(self, session: Session, key: datetime) -> _Window | None:
        window = self._held(key)
        if window is None:
            return None
        return window if read_change_mark(session, window.mark) == window.mark else None

    def _held(self, key: datetime) -> _Window | None:
        """The window of ``key`` if it was read whole less than ``ttl`` ago."""
        with self._lock:
            window = self._windows.get(key)
            if window is not None:
                self._windows.move_to_end(key)
        if window is None or self._clock() - window.built_at >= self.ttl:
            return None
        return window

    def _renewed(self, session: Session, key: datetime) -> _Window:
        """The window as it stands now: as held, patched with what changed, or read whole."""
        window = self._held(key)
        if window is None:
            return self._build(session, key)
        mark = read_change_mark(session, window.mark)  # before the changes, as in _build
        if mark == window.mark:
            return window
        patched = _refreshed(session, window, mark)
        if patched is None:
            return self._build(session, key)
        self.refreshes += 1
        return self._keep(key, patched)

    def _build(self, session: Session, key: datetime) -> _Window:
        built_at = self._clock()
        mark = read_change_mark(session)  # before the slots: see read_change_mark
        events, claims = seen_now(session, mark)
        end = key + self.horizon + self.bucket
        found = read_window(session, key, end)
        covered = end
        if found.truncated:  # every slot starting before the last one kept is in
            covered = found.candidates[-1].start if found.candidates else key
        window = _Window(
            start=key,
            covered_until=covered,
            table=SlotTable(found.candidates),
            pks=np.array(found.pks, np.int64),
            claimed=found.claimed,
            events=events,
            claims=claims,
            mark=mark,
            built_at=built_at,
        )
        self.builds += 1
        return self._keep(key, window)

    def _keep(self, key: datetime, window: _Window) -> _Window:
        with self._lock:
            self._windows[key] = window
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_windows:
                self._windows.popitem(last=False)
        return window


def _refreshed(session: Session, window: _Window, mark: ChangeMark) -> _Window | None:
    """``window`` patched with the events and claims since it was read (``mark`` read
    before them); None when they cannot be applied slot by slot: a Schedule or Location
    changed (it may move many slots), or too many changes at once."""
    changes = changes_since(session, window.events, window.claims)
    if changes is None or changes.joined:
        return None
    released = window.claimed - claimed_now(session, window.claimed) if window.claimed else set()
    touched = changes.slots | changes.claimed | released
    if len(touched) > MAX_PATCH:
        return None
    found = read_slots(session, touched, window.start, window.covered_until)
    table, pks = _patched(window, slot_pks(session, touched) if touched else [], found)
    return replace(
        window,
        table=table,
        pks=pks,
        claimed=(window.claimed - touched) | found.claimed,
        events=changes.events,
        claims=changes.claims,
        mark=mark,
    )


def _patched(
    window: _Window, gone: list[int], found: SlotRead
) -> tuple[SlotTable, npt.NDArray[np.int64]]:
    """The window's table and pks without the rows ``gone`` (pks of the slots looked at),
    with ``found`` (their current state) each put where ``free_slots`` would order it: by
    start, then pk."""
    if not gone and not found.candidates:
        return window.table, window.pks
    drop = np.flatnonzero(np.isin(window.pks, gone))
    kept = np.delete(np.arange(len(window.pks)), drop)
    order = _Order(window.table.start[kept], window.pks[kept], window.table.candidates, kept)
    pairs = zip(found.candidates, found.pks, strict=True)
    added = sorted(pairs, key=lambda pair: (pair[0].start, pair[1]))
    at = [order.position(c, pk) for c, pk in added]
    table = window.table.patched(drop.tolist(), [c for c, _ in added], at)
    pks = np.insert(np.delete(window.pks, drop), at, [pk for _, pk in added])
    return table, pks.astype(np.int64)


@dataclass(frozen=True, slots=True)
class _Order:
    """The rows a patch keeps, to find where a new one goes."""

    starts: npt.NDArray[np.int64]
    pks: npt.NDArray[np.int64]
    rows: list[Candidate]
    kept: npt.NDArray[np.int64]

    def position(self, candidate: Candidate, pk: int) -> int:
        """After every kept row that starts before ``candidate``, or with it and a lower pk
        (whole seconds narrow the search; the exact start and the pk decide within one)."""
        second = _seconds(candidate.start)
        lo, hi = (int(i) for i in np.searchsorted(self.starts, [second, second + 1]))
        within = bisect_left(
            range(lo, hi),
            (candidate.start, pk),
            key=lambda j: (self.rows[int(self.kept[j])].start, int(self.pks[j])),
        )
        return lo + within


_caches: weakref.WeakKeyDictionary[Engine, CandidateCache | None] = weakref.WeakKeyDictionary()
_registry = threading.Lock()


def cache_for(bind: Engine | Connection) -> CandidateCache | None:
    """The cache of this database (one per engine, made on first use); None if turned off."""
    engine = bind.engine if isinstance(bind, Connection) else bind
    with _registry:
        if engine not in _caches:
            _caches[engine] = CandidateCache()
        return _caches[engine]


def set_cache(engine: Engine, cache: CandidateCache | None) -> None:
    """Use ``cache`` for this engine from now on (None: always read the database)."""
    with _registry:
        _caches[engine] = cache


def candidates(session: Session, start: datetime, end: datetime, now: datetime) -> CandidateView:
    """Free slots starting in [start, end) for ranking: cached when the window allows."""
    bind = session.get_bind()
    cache = cache_for(bind) if isinstance(bind, Engine | Connection) else None
    view = cache.view(session, start, end, now) if cache is not None else None
    if view is not None:
        return view
    found = free_slots(session, start, end)
    table = SlotTable(found.candidates)
    return CandidateView(table, None, None, len(table), found.truncated, cached=False)


def _floor(value: datetime, step: timedelta) -> datetime:
    return EPOCH + ((value - EPOCH) // step) * step


def _ceil_second(value: datetime) -> datetime:
    """Ranking compares whole seconds: bounds rounded up keep exactly the slots (which start
    on whole seconds) that ``start >= bound`` in the database would keep."""
    whole = value.replace(microsecond=0)
    return whole if whole == value else whole + timedelta(seconds=1)


def _seconds(value: datetime) -> int:
    return int(value.timestamp())
