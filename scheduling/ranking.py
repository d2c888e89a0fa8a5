"""Slot ranking: a patient's preferences against free slots from every source, top k.

Hard rules (minimum notice, blocked days, the search window, visit type, how far the patient
will travel, named practitioners or locations only) filter; soft ones (preferred days and
times, preferred locations, distance, provider continuity, soonness) add named score
components. The picks are kept apart (no two with the same practitioner within
``diversity_minutes``, nor two anywhere within ``same_time_minutes``) so three answers are
three choices, not one slot thrice. Each pick says which preferences it meets and which it
trades off, as codes for programs and text for people.

Optionally (``Preferences.attendance``: None unless the caller gives it; the API's setting
turns it on) a learned no-show risk per slot adds an ``attendance`` component;
scheduling.attendance builds it from booking history. Without it the ranking is exactly the
preference-only one.

The candidates are held column-wise (:class:`SlotTable`) so a query over 50,000 slots is a
handful of NumPy operations: a loop in Python over 50,000 objects costs more than the
50 ms a booking screen can wait. Pure: no clock, no storage; ``now`` is an argument.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EARTH_KM = 6371.0088
TIME_FALLOFF_MINUTES = 120.0
"""Outside a preferred time window the time component fades to 0 over this many minutes."""
SOON_DAYS = 14.0
"""The soonness component halves roughly every ``SOON_DAYS * ln 2`` days after the first."""
POOL = 256
"""How many best-scored slots the diversity pass looks at before it widens to all."""
LOWER_RISK = 0.8
"""A predicted no-show risk at most this times the patient's usual rate is a reason to pick."""
HIGHER_RISK = 1.25
"""A risk at least this times the usual rate is a trade-off; in between, no reason is given."""
RISK_MARGIN = 0.02
"""...and either way only when it differs from the usual rate by 2 points or more."""

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]


class RankingError(ValueError):
    """Preferences that cannot be applied as given (an unknown time zone, a bad window)."""


@dataclass(frozen=True, slots=True)
class Place:
    """Where a slot is: a Location id when the source names one, else the text it gave."""

    key: str
    name: str | None = None
    latitude: float | None = None
    longitude: float | None = None

    @property
    def has_position(self) -> bool:
        return self.latitude is not None and self.longitude is not None


@dataclass(frozen=True, slots=True)
class Candidate:
    """One free slot, whatever source it came from."""

    slot_id: str
    start: datetime  # UTC
    end: datetime  # UTC
    practitioner_id: str | None = None
    place: Place | None = None
    visit_types: frozenset[str] = frozenset()
    source: str = ""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A preferred time of day in the patient's zone, ``start`` inclusive, ``end`` exclusive."""

    start: time
    end: time

    def minutes(self) -> tuple[int, int]:
        return self.start.hour * 60 + self.start.minute, self.end.hour * 60 + self.end.minute


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each soft preference is worth; each component is scaled to 0..1 first."""

    day: float = 2.0
    time: float = 2.0
    location: float = 1.5
    distance: float = 1.0
    continuity: float = 2.5
    visit_type: float = 1.0
    soon: float = 1.0
    attendance: float = 1.5
    """Only with ``Preferences.attendance``: 10 points less no-show risk is worth 0.15,
    about two days' soonness, under a tenth of a preferred day."""


@dataclass(frozen=True, slots=True)
class Attendance:
    """A learned component: each candidate's predicted no-show risk (0..1), and the
    patient's usual rate for the reasons ("lower than this patient's usual 21 %")."""

    risk: Callable[[SlotTable], Float]
    usual: float
    whose: str = "this patient's usual"


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the patient asked for. Weekdays are 0 (Monday) to 6, in ``timezone``."""

    timezone: str = "UTC"
    preferred_days: frozenset[int] = frozenset()
    blocked_days: frozenset[int] = frozenset()
    preferred_times: tuple[TimeWindow, ...] = ()
    min_notice: timedelta = timedelta(0)
    not_before: datetime | None = None
    not_after: datetime | None = None
    visit_type: str | None = None
    locations: frozenset[str] = frozenset()
    home: tuple[float, float] | None = None  # latitude, longitude
    max_travel_km: float | None = None
    practitioners: frozenset[str] = frozenset()
    only_practitioners: frozenset[str] = frozenset()
    only_locations: frozenset[str] = frozenset()
    past_visits: Mapping[str, int] = field(default_factory=dict)
    """Practitioner id -> visits in the patient's history (provider continuity); may be empty."""
    weights: Weights = Weights()
    diversity_minutes: int = 180
    same_time_minutes: int = 30
    attendance: Attendance | None = None
    """Predicted no-show risk per slot, when the hub has the history to learn it."""


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class RankedSlot:
    candidate: Candidate
    score: float
    components: dict[str, float]
    meets: tuple[Reason, ...]
    trades_off: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class Ranking:
    picks: list[RankedSlot]
    considered: int
    eligible: int


def _encode(values: Iterable[Any], first: Any) -> tuple[Int, list[Any]]:
    """Values to small integers (``first`` is 0), so a per-slot attribute becomes an index
    into a per-distinct-value array: a preference is evaluated once per practitioner or
    place, not once per slot."""
    index: dict[Any, int] = {first: 0}
    codes = [index.setdefault(v, len(index)) for v in values]
    return np.array(codes, np.int64), list(index)


class SlotTable:
    """Candidates column-wise: build once per candidate set, rank many queries against it."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self.candidates = list(candidates)
        cs = self.candidates
        if any(c.start.tzinfo is None or c.end.tzinfo is None for c in cs):
            raise RankingError("every candidate's start and end must carry a UTC offset")
        self.start = np.array([c.start.timestamp() for c in cs], np.float64).astype(np.int64)
        self.end = np.array([c.end.timestamp() for c in cs], np.float64).astype(np.int64)
        self.practitioner, self.practitioner_ids = _encode((c.practitioner_id for c in cs), None)
        self.place, self.places = _encode((c.place for c in cs), None)
        self.kinds, self.kind_sets = _encode((c.visit_types for c in cs), frozenset())
        self._local: dict[str, tuple[Int, Int]] = {}

    def __len__(self) -> int:
        return len(self.candidates)

    def patched(
        self, drop: Sequence[int], added: Sequence[Candidate], at: Sequence[int]
    ) -> SlotTable:
        """This table without the rows ``drop``, with ``added[i]`` put before row ``at[i]``
        of the rows left (``numpy.insert``'s rule; ``at`` non-decreasing): row for row the
        table built from that candidate list, for the cost of copying columns instead of a
        Python pass over every candidate (30 rows in and out of 50,000: ~5 ms on a loaded
        2-core machine, where building the table takes 90-500 ms). A practitioner, place
        or visit-type set no row uses any more keeps its code: ``rank`` only looks codes
        up, so it ranks alike. Per-zone local times already computed are patched too."""
        drops = np.unique(np.asarray(drop, np.int64))
        where = np.asarray(at, np.int64)
        if len(where) != len(added) or np.any(np.diff(where) < 0):
            raise ValueError("one non-decreasing position per added candidate")
        extra = SlotTable(added)

        def column(old: Int, new: Int) -> Int:
            return np.insert(np.delete(old, drops), where, new)

        out = copy.copy(self)
        out.candidates = _spliced(self.candidates, drops, where, added)
        out.start = column(self.start, extra.start)
        out.end = column(self.end, extra.end)
        codes, out.practitioner_ids = _recode(self.practitioner_ids, extra.practitioner_ids)
        out.practitioner = column(self.practitioner, codes[extra.practitioner])
        codes, out.places = _recode(self.places, extra.places)
        out.place = column(self.place, codes[extra.place])
        codes, out.kind_sets = _recode(self.kind_sets, extra.kind_sets)
        out.kinds = column(self.kinds, codes[extra.kinds])
        out._local = {}
        for zone, (day, minute) in list(self._local.items()):
            new_day, new_minute = extra.local_day_and_minute(zone)
            out._local[zone] = (column(day, new_day), column(minute, new_minute))
        return out

    def local_day_and_minute(self, zone_name: str) -> tuple[Int, Int]:
        """Weekday and minute of day of each start in ``zone_name``, cached per zone.

        Offsets are looked up once per distinct UTC hour (a zone changes offset on the hour
        or half hour at most), not once per slot."""
        cached = self._local.get(zone_name)
        if cached is not None:
            return cached
        zone = zone_of(zone_name)
        step = 1800
        buckets, inverse = np.unique(self.start // step, return_inverse=True)
        offsets = np.array(
            [
                _offset_seconds(zone, datetime.fromtimestamp(int(b) * step, UTC))
                for b in buckets.tolist()
            ],
            dtype=np.int64,
        )
        local = self.start + offsets[inverse.reshape(-1)]
        days = local // 86400
        result = ((days + 3) % 7, (local % 86400) // 60)  # 1970-01-01 was a Thursday
        self._local[zone_name] = result
        return result


def _recode(known: list[Any], values: list[Any]) -> tuple[Int, list[Any]]:
    """Codes in ``known`` (extended by what it lacks) for each of another table's values."""
    merged = list(known)
    index = {v: i for i, v in enumerate(merged)}
    for value in values:
        if value not in index:
            index[value] = len(merged)
            merged.append(value)
    return np.array([index[v] for v in values], np.int64), merged


def _spliced(
    items: list[Candidate], drop: Int, at: Int, added: Sequence[Candidate]
) -> list[Candidate]:
    """``items`` less the positions ``drop``, ``added[i]`` put before what was kept row
    ``at[i]``: one pass of slice copies between the cuts, no Python step per kept item."""
    kept = np.delete(np.arange(len(items)), drop)
    before = np.append(kept, len(items))[at].tolist()  # as positions in ``items``
    cuts: list[tuple[int, Candidate | None]] = [(i, None) for i in drop.tolist()]
    cuts += zip(before, added, strict=True)
    cuts.sort(key=lambda cut: cut[0])  # stable: the added keep their order
    out: list[Candidate] = []
    prev = 0
    for position, candidate in cuts:  # None: drop the item there
        out += items[prev:position]
        if candidate is not None:
            out.append(candidate)
        prev = position if candidate is not None else position + 1
    out += items[prev:]
    return out


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise RankingError(f"unknown time zone {name!r}") from exc


def rank(
    candidates: SlotTable | Sequence[Candidate],
    prefs: Preferences,
    now: datetime,
    k: int = 3,
) -> Ranking:
    """The best ``k`` slots that pass the hard rules, diverse, each with its reasons."""
    zone_of(prefs.timezone)  # a bad zone is an error even when nothing is free
    table = candidates if isinstance(candidates, SlotTable) else SlotTable(candidates)
    if k < 1 or len(table) == 0:
        return Ranking([], len(table), 0)
    weekday, minute = table.local_day_and_minute(prefs.timezone)
    keep = _hard_filter(table, prefs, now, weekday)
    eligible = int(np.count_nonzero(keep))
    if eligible == 0:
        return Ranking([], len(table), 0)
    parts = _components(table, prefs, keep, weekday, minute)
    w = prefs.weights
    total = np.zeros(len(table))
    for name, values in parts.items():
        total += getattr(w, name) * values
    total = np.where(keep, total, -np.inf)
    chosen = _diverse_top(table, prefs, total, eligible, k)
    picks = [_explain(table, prefs, i, float(total[i]), parts) for i in chosen]
    return Ranking(picks, len(table), eligible)


def _hard_filter(table: SlotTable, prefs: Preferences, now: datetime, weekday: Int) -> Bool:
    earliest = _epoch(now + prefs.min_notice)
    if prefs.not_before is not None:
        earliest = max(earliest, _epoch(prefs.not_before))
    keep: Bool = (table.start >= earliest) & (table.end > table.start)
    if prefs.not_after is not None:
        keep &= table.start < _epoch(prefs.not_after)
    if prefs.blocked_days:
        blocked = np.zeros(7, np.bool_)
        blocked[list(prefs.blocked_days)] = True
        keep &= ~blocked[weekday]
    if prefs.visit_type:
        wanted = _norm(prefs.visit_type)
        ok = np.array([not s or wanted in _norms(s) for s in table.kind_sets], np.bool_)
        keep &= ok[table.kinds]
    if prefs.only_practitioners:
        ok = np.array([p in prefs.only_practitioners for p in table.practitioner_ids], np.bool_)
        keep &= ok[table.practitioner]
    if prefs.only_locations:
        ok = np.array([_place_in(p, prefs.only_locations) for p in table.places], np.bool_)
        keep &= ok[table.place]
    if prefs.max_travel_km is not None and prefs.home is not None:
        km = _distances(table, prefs.home)
        ok = np.isnan(km) | (km <= prefs.max_travel_km)  # unknown distance: shown, traded off
        keep &= ok[table.place]
    return keep


def _components(
    table: SlotTable, prefs: Preferences, keep: Bool, weekday: Int, minute: Int
) -> dict[str, Float]:
    """Each soft preference as a 0..1 array; one not expressed is absent (scores nothing)."""
    parts: dict[str, Float] = {}
    if prefs.preferred_days:
        liked = np.zeros(7)
        liked[list(prefs.preferred_days)] = 1.0
        parts["day"] = liked[weekday]
    if prefs.preferred_times:
        parts["time"] = _time_fit(prefs.preferred_times, minute)
    if prefs.locations:
        liked_places = np.array([float(_place_in(p, prefs.locations)) for p in table.places])
        parts["location"] = liked_places[table.place]
    if prefs.home is not None:
        km = _distances(table, prefs.home)
        reach = prefs.max_travel_km or 25.0
        closeness = np.where(np.isnan(km), 0.0, np.clip(1.0 - km / (2 * reach), 0.0, 1.0))
        parts["distance"] = closeness[table.place]
    wanted = {**{p: 1 for p in prefs.practitioners}, **prefs.past_visits}
    if wanted:
        known = np.array(
            [_continuity(wanted.get(p, 0)) if p else 0.0 for p in table.practitioner_ids]
        )
        parts["continuity"] = known[table.practitioner]
    if prefs.visit_type:
        wanted_type = _norm(prefs.visit_type)
        exact = np.array([1.0 if wanted_type in _norms(s) else 0.0 for s in table.kind_sets])
        parts["visit_type"] = exact[table.kinds]
    first = int(table.start[keep].min())
    parts["soon"] = np.exp(-(table.start - first) / (SOON_DAYS * 86400.0))
    if prefs.attendance is not None:
        risk = np.asarray(prefs.attendance.risk(table), np.float64)
        if risk.shape != (len(table),):
            raise RankingError(f"attendance gave {risk.shape} risks for {len(table)} slots")
        parts["attendance"] = 1.0 - np.clip(np.nan_to_num(risk, nan=0.0), 0.0, 1.0)
    return parts


def _continuity(visits: int) -> float:
    return 0.0 if visits <= 0 else min(1.0, 0.7 + 0.1 * visits)


def _time_fit(windows: Iterable[TimeWindow], minute: Int) -> Float:
    """1 inside a preferred window (windows may run past midnight), fading outside."""
    best = np.zeros(len(minute))
    for window in windows:
        lo, hi = window.minutes()
        span = (hi - lo) % 1440 or 1440
        offset = (minute - lo) % 1440
        before = (lo - minute) % 1440
        after = (offset - span) % 1440 + 1
        away = np.minimum(before, after)
        outside = np.clip(1.0 - away / TIME_FALLOFF_MINUTES, 0.0, 0.99)
        best = np.maximum(best, np.where(offset < span, 1.0, outside))
    return best


def _distances(table: SlotTable, home: tuple[float, float]) -> Float:
    """Great-circle km from home to each distinct place (NaN where a place has no position)."""
    return np.array([_km(home, p) if p and p.has_position else math.nan for p in table.places])


def _km(home: tuple[float, float], place: Place) -> float:
    assert place.latitude is not None and place.longitude is not None
    lat1, lon1, lat2, lon2 = map(math.radians, (home[0], home[1], place.latitude, place.longitude))
    a = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _diverse_top(
    table: SlotTable, prefs: Preferences, total: Float, eligible: int, k: int
) -> list[int]:
    """Greedy best-first, skipping near-duplicates of what is already picked. Looks at the
    best ``POOL`` first and widens to every eligible slot only if that was not enough; if
    the hard rules leave too few distinct choices (one practitioner, one afternoon), the
    rest are filled with the next best that at least do not start at the same time."""
    first = min(eligible, max(POOL, 8 * k))
    passes = [(True, first), (True, eligible), (False, eligible)]
    if first == eligible:
        del passes[1]
    picked: list[int] = []
    for strict, size in passes:
        for i in _best_first(table, total, size):
            if i not in picked and not any(_near(table, prefs, i, j, strict) for j in picked):
                picked.append(i)
                if len(picked) == k:
                    return picked
    return picked


def _best_first(table: SlotTable, total: Float, size: int) -> list[int]:
    """The ``size`` best-scored slots, best first; ties go to the sooner slot."""
    pool = np.argpartition(-total, size - 1)[:size] if size < len(total) else np.arange(size)
    order = pool[np.lexsort((pool, table.start[pool], -total[pool]))]
    return [int(i) for i in order.tolist()]


def _near(table: SlotTable, prefs: Preferences, i: int, j: int, strict: bool) -> bool:
    apart = abs(int(table.start[i]) - int(table.start[j])) / 60
    if apart < prefs.same_time_minutes:
        return True
    same_person = table.practitioner[i] == table.practitioner[j] and table.practitioner[i] != 0
    return bool(strict and same_person and apart < prefs.diversity_minutes)


def _explain(
    table: SlotTable, prefs: Preferences, i: int, score: float, parts: Mapping[str, Float]
) -> RankedSlot:
    c = table.candidates[i]
    comps = {name: round(float(values[i]), 4) for name, values in parts.items()}
    meets: list[Reason] = []
    trades: list[Reason] = []
    weekday, minute = (int(a[i]) for a in table.local_day_and_minute(prefs.timezone))
    day = DAY_NAMES[weekday]
    clock = f"{minute // 60:02d}:{minute % 60:02d}"
    if "day" in comps:
        if comps["day"]:
            meets.append(Reason("preferred-day", f"on a {day}, a preferred day"))
        else:
            trades.append(Reason("other-day", f"on a {day}, not a preferred day"))
    if "time" in comps:
        if comps["time"] >= 1.0:
            meets.append(Reason("preferred-time", f"at {clock}, in a preferred time"))
        else:
            trades.append(Reason("other-time", f"at {clock}, outside the preferred times"))
    if "location" in comps:
        where = _place_label(c.place)
        if comps["location"]:
            meets.append(Reason("preferred-location", f"at {where}, a preferred location"))
        else:
            trades.append(Reason("other-location", f"at {where}, not a preferred location"))
    if prefs.home is not None:
        _explain_distance(c.place, prefs, meets, trades)
    if "continuity" in comps:
        _explain_continuity(c.practitioner_id, prefs, meets, trades)
    if prefs.visit_type:
        if comps.get("visit_type"):
            meets.append(Reason("visit-type", f"offered for {prefs.visit_type}"))
        else:
            trades.append(Reason("visit-type-unstated", "the source does not say the visit type"))
    if comps["soon"] >= 0.999:
        meets.append(Reason("soonest", "the earliest slot that fits"))
    if prefs.attendance is not None:
        _explain_attendance(1.0 - float(parts["attendance"][i]), prefs.attendance, meets, trades)
    return RankedSlot(c, round(score, 4), comps, tuple(meets), tuple(trades))


def _explain_distance(
    place: Place | None, prefs: Preferences, meets: list[Reason], trades: list[Reason]
) -> None:
    if place is None or not place.has_position or prefs.home is None:
        trades.append(Reason("distance-unknown", "how far it is is not known"))
        return
    km = _km(prefs.home, place)
    if prefs.max_travel_km is None or km <= prefs.max_travel_km / 2:
        meets.append(Reason("nearby", f"{km:.1f} km away"))
    else:
        trades.append(Reason("farther", f"{km:.1f} km away, towards the travel limit"))


def _explain_continuity(
    practitioner: str | None, prefs: Preferences, meets: list[Reason], trades: list[Reason]
) -> None:
    visits = prefs.past_visits.get(practitioner or "", 0)
    if practitioner and visits:
        plural = "s" if visits != 1 else ""
        meets.append(Reason("continuity", f"with a provider seen before ({visits} visit{plural})"))
    elif practitioner and practitioner in prefs.practitioners:
        meets.append(Reason("preferred-provider", "with a preferred provider"))
    else:
        trades.append(Reason("new-provider", "with a provider not seen before"))


def _explain_attendance(
    risk: float, attendance: Attendance, meets: list[Reason], trades: list[Reason]
) -> None:
    usual = attendance.usual
    said = f"predicted no-show risk {_percent(risk)}"
    if risk <= usual * LOWER_RISK and usual - risk >= RISK_MARGIN:
        text = f"{said}, lower than {attendance.whose} {_percent(usual)}"
        meets.append(Reason("lower-no-show-risk", text))
    elif risk >= usual * HIGHER_RISK and risk - usual >= RISK_MARGIN:
        text = f"{said}, higher than {attendance.whose} {_percent(usual)}"
        trades.append(Reason("higher-no-show-risk", text))


def _percent(share: float) -> str:
    return "under 1 %" if share < 0.005 else f"{share * 100:.0f} %"


def _place_label(place: Place | None) -> str:
    if place is None:
        return "an unstated location"
    return place.name or place.key


def _place_in(place: Place | None, wanted: frozenset[str]) -> bool:
    if place is None:
        return False
    return place.key in wanted or (place.name is not None and place.name in wanted)


def _norm(value: str) -> str:
    return value.strip().casefold()


def _norms(values: frozenset[str]) -> set[str]:
    return {_norm(v) for v in values}


def _epoch(value: datetime) -> int:
    if value.tzinfo is None:
        raise RankingError(f"{value.isoformat()} has no UTC offset")
    return int(value.timestamp())


def _offset_seconds(zone: ZoneInfo, instant: datetime) -> int:
    offset = instant.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0
