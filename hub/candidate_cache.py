"""Ranking candidates kept per process, so a ranking request does not rebuild them each time.

Reading the free slots of a 60-day window and building their column-wise table costs
~75 ms for 50,000 slots; ranking them costs ~4 ms. A :class:`CandidateCache` keeps the
table of the window that starts at the current hour (``bucket``) and runs ``horizon +
bucket``: every request that ends inside it (the default "next 60 days from now" does for a
whole hour, and so does any shorter window from now on) ranks against that one table,
restricted to its own bounds. The window of the hour before lingers until evicted (at most
``max_windows``, least recently used first; ~30 MB each at 50,000 slots).

Correctness: each request first reads the change mark (hub.slot_candidates.ChangeMark, one
indexed statement) and reuses a window only while the mark is what it was when the window
was built. Every canonical write records a domain event in the same transaction, and every
booking inserts its claim before it is sent, so a slot booked, claimed or made busy, a new
free slot, a changed Schedule or Location moves the mark, and the first request after the
commit rebuilds: for those the answer is never stale. A window is also rebuilt once it is
older than ``ttl`` (30 s), which bounds how long what the mark cannot see (a PostgreSQL
commit more than ``MARK_LOOKBACK`` ids out of order, a claim id SQLite reused, a write that
skipped the event log) can be served. 30 s is acceptable because a slot shown free too long
cannot be double-booked: booking goes through the unique slot claim and the source, and
answers 409 (the booking screen then ranks again); a new slot shown 30 s late costs nothing.
It is long enough that the rebuild (one request in a few hundred at 10 requests a second)
stays out of the p99.

Windows holding more than ``MAX_CANDIDATES`` free slots answer only requests that end before
the first slot they had to leave out; others read the database (``free_slots``), as do
requests ending after the window (or starting before it), and engines whose cache was turned
off (``set_cache``).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from hub.slot_candidates import ChangeMark, free_slots, read_change_mark
from scheduling.ranking import SlotTable

HORIZON = timedelta(days=60)
BUCKET = timedelta(hours=1)
TTL_SECONDS = 30.0
MAX_WINDOWS = 2
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
    covered_until: datetime
    """Requests ending at or before this see every free slot the database would give."""
    table: SlotTable
    mark: ChangeMark
    built_at: float


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
            with self._building:  # one rebuild at a time; the others then reuse it
                window = self._current(session, key) or self._build(session, key)
        if end > window.covered_until:
            return None
        lo, hi = _ceil_second(start), _ceil_second(end)
        first, stop = np.searchsorted(window.table.start, [_seconds(lo), _seconds(hi)])
        return CandidateView(window.table, lo, hi, int(stop - first), False, cached=True)

    def _current(self, session: Session, key: datetime) -> _Window | None:
        with self._lock:
            window = self._windows.get(key)
            if window is not None:
                self._windows.move_to_end(key)
        if window is None or self._clock() - window.built_at >= self.ttl:
            return None
        return window if read_change_mark(session, window.mark) == window.mark else None

    def _build(self, session: Session, key: datetime) -> _Window:
        built_at = self._clock()
        mark = read_change_mark(session)  # before the slots: see read_change_mark
        end = key + self.horizon + self.bucket
        found = free_slots(session, key, end)
        covered = end
        if found.truncated:  # every slot starting before the last one kept is in
            covered = found.candidates[-1].start if found.candidates else key
        window = _Window(covered, SlotTable(found.candidates), mark, built_at)
        with self._lock:
            self._windows[key] = window
            self._windows.move_to_end(key)
            while len(self._windows) > self.max_windows:
                self._windows.popitem(last=False)
        return window


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
