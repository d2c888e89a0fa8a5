"""Free canonical Slots in a window, as ranking candidates, and a patient's provider history.

Reads the canonical tables directly (one indexed range query on type, status and start,
then one query each for the Schedules and Locations those Slots name) rather than paging a
FHIR search: a ranking looks at every free slot in the window, up to ``MAX_CANDIDATES``.
A slot already claimed in ``slot_booking`` but not yet marked busy is left out.

:func:`read_change_mark` summarises, in one cheap statement, everything that answer depends
on, so a cache of it (hub.candidate_cache) can tell when it is out of date; then
:func:`changes_since` says which Slots changed (or that a Schedule or Location did) and
:func:`read_slots` reads just those, with the same code as :func:`free_slots`, so the cache
can patch its answer instead of reading every slot again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Executable,
    Row,
    ScalarSelect,
    Table,
    bindparam,
    func,
    select,
)
from sqlalchemy.orm import Session

from canonical.tables import resources, search_index
from hub.message_store import as_utc
from hub.tables import domain_events, slot_bookings
from scheduling.ranking import Candidate, Place

MAX_CANDIDATES = 50_000
PAST_STATUSES = ("booked", "arrived", "fulfilled", "checked-in")
LOCATION_COMMENT = "Location: "
MARK_LOOKBACK = 10_000
"""How far below the highest id a change mark also counts rows: see :class:`ChangeMark`."""


@dataclass(frozen=True, slots=True)
class CandidateSet:
    candidates: list[Candidate]
    truncated: bool


@dataclass(frozen=True, slots=True)
class SlotRead:
    """Free Slots as a cache needs them: the candidates (in ``free_slots`` order: start, then
    row), each one's row ``pk`` (which orders slots that start together), and the free slots
    left out only because a booking claims them (a cache re-checks those claims)."""

    candidates: list[Candidate]
    pks: list[int]
    claimed: frozenset[str]
    truncated: bool


def free_slots(session: Session, start: datetime, end: datetime) -> CandidateSet:
    """Every free Slot starting in [start, end), with its practitioner, place and types."""
    found = read_window(session, start, end)
    return CandidateSet(found.candidates, found.truncated)


def read_window(session: Session, start: datetime, end: datetime) -> SlotRead:
    """``free_slots`` with each candidate's row pk and the claimed slots it left out."""
    rows = session.execute(
        _SLOT_ROWS.where(
            resources.c.status == "free", resources.c.start >= start, resources.c.start < end
        )
        .order_by(resources.c.start, resources.c.pk)
        .limit(MAX_CANDIDATES + 1)
    ).all()
    truncated = len(rows) > MAX_CANDIDATES
    return _read(session, rows[:MAX_CANDIDATES], truncated)


def read_slots(session: Session, ids: Collection[str], start: datetime, end: datetime) -> SlotRead:
    """What ``read_window(start, end)`` would say now of these Slots (any order): a cache
    patches its window with this rather than reading every slot again."""
    wanted = sorted(ids)
    rows: list[Any] = []
    for i in range(0, len(wanted), 1000):
        rows += session.execute(
            _SLOT_ROWS.where(
                resources.c.id.in_(wanted[i : i + 1000]),
                resources.c.status == "free",
                resources.c.start >= start,
                resources.c.start < end,
            )
        ).all()
    return _read(session, rows, False)


def slot_pks(session: Session, ids: Collection[str]) -> list[int]:
    """The row pks of these Slots, whatever their status now: a cache finds by them the rows
    it must drop (a Slot keeps its row, and so its pk, through every version)."""
    wanted = sorted(ids)
    pks: list[int] = []
    for i in range(0, len(wanted), 1000):
        pks += session.execute(
            select(resources.c.pk).where(
                resources.c.resource_type == "Slot", resources.c.id.in_(wanted[i : i + 1000])
            )
        ).scalars()
    return pks


def _read(session: Session, rows: Sequence[Any], truncated: bool) -> SlotRead:
    """Rows of ``_SLOT_ROWS`` to candidates: claimed ones and ones without times left out."""
    claimed = _claimed(session, [r.id for r in rows])
    schedules = _by_id(session, "Schedule", {r.schedule_id for r in rows if r.schedule_id})
    location_ids = {
        ref.split("/", 1)[1]
        for s in schedules.values()
        for ref in _actor_refs(s)
        if ref.startswith("Location/")
    }
    places = {
        lid: _place(lid, loc) for lid, loc in _by_id(session, "Location", location_ids).items()
    }
    out: list[Candidate] = []
    pks: list[int] = []
    for row in rows:
        if row.id in claimed or row.start is None or row.end is None:
            continue
        schedule = schedules.get(row.schedule_id or "", {})
        refs = _actor_refs(schedule)
        practitioner = next((r for r in refs if r.startswith("Practitioner/")), None)
        location = next((r.split("/", 1)[1] for r in refs if r.startswith("Location/")), None)
        place = places.get(location) if location else _comment_place(row.resource)
        if location and place is None:
            place = Place(f"Location/{location}")
        out.append(
            Candidate(
                slot_id=row.id,
                start=as_utc(row.start),
                end=as_utc(row.end),
                practitioner_id=practitioner,
                place=place,
                visit_types=_visit_types(row.resource) | _visit_types(schedule),
                source=_source(row.resource, row.source_system),
            )
        )
        pks.append(int(row.pk))
    return SlotRead(out, pks, frozenset(claimed), truncated)


_SLOT_ROWS = select(
    resources.c.pk,
    resources.c.id,
    resources.c.start,
    resources.c.end,
    resources.c.schedule_id,
    resources.c.source_system,
    resources.c.resource,
).where(resources.c.resource_type == "Slot")


@dataclass(frozen=True, slots=True)
class ChangeMark:
    """Where the change log and the slot claims stood when ``free_slots`` was last read.

    What ``free_slots`` returns changes only through a canonical write (a Slot's status or
    times, its Schedule, a Location), which records a ``domain_event`` in the writing
    transaction itself (hub.changes, hub.worker, hub.appointments, scheduling), or through a
    claim in ``slot_booking`` (inserted before a booking is sent, deleted when it fails or
    ends). For each of the two tables the mark holds the highest id and how many rows lie
    above a floor: the highest id when the cached answer was read, less ``MARK_LOOKBACK``.
    A new row moves the highest id. On PostgreSQL a lower id can commit after a higher one,
    which the highest id alone would miss; the count above the floor sees it as long as
    fewer than ``MARK_LOOKBACK`` ids were handed out after it before the answer was read. A
    claim deleted above the floor changes the count. What the mark cannot see (a commit later
    still, a claim id SQLite reuses after deleting the highest one, a write that skipped the
    event log) is left to the cache's time to live.
    """

    event_floor: int
    claim_floor: int
    events_max: int
    events_above: int
    claims_max: int
    claims_above: int


def read_change_mark(session: Session, like: ChangeMark | None = None) -> ChangeMark:
    """The current mark, counting above ``like``'s floors (to compare with it) or above new
    ones; one statement when ``like`` is given. Read it *before* ``free_slots`` (or the
    changes and ``read_slots``): a change committed in between then shows as a moved mark (a
    needless refresh), never the reverse."""
    if like is None:
        events_max, claims_max = session.execute(_HIGHEST).one()
        event_floor = (events_max or 0) - MARK_LOOKBACK
        claim_floor = (claims_max or 0) - MARK_LOOKBACK
    else:
        event_floor, claim_floor = like.event_floor, like.claim_floor
    row = session.execute(_MARK, {"event_floor": event_floor, "claim_floor": claim_floor}).one()
    return ChangeMark(event_floor, claim_floor, int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def _count_above(column: ColumnElement[int], floor: str) -> ScalarSelect[int]:
    return select(func.count()).where(column > bindparam(floor)).scalar_subquery()


# Built once: a request reads the mark every time, and building the statement cost more
# than running it (an index probe for each max, an index range for each count).
_HIGHEST = select(
    select(func.max(domain_events.c.id)).scalar_subquery(),
    select(func.max(slot_bookings.c.id)).scalar_subquery(),
)
_MARK = select(
    select(func.coalesce(func.max(domain_events.c.id), 0)).scalar_subquery(),
    _count_above(domain_events.c.id, "event_floor"),
    select(func.coalesce(func.max(slot_bookings.c.id), 0)).scalar_subquery(),
    _count_above(slot_bookings.c.id, "claim_floor"),
)


JOINED_TYPES = frozenset({"Schedule", "Location"})
"""Resource types ``free_slots`` joins to its Slots: a change to one may change many slots."""
MAX_CHANGES = 5_000
"""More new rows than this in one table since a cache last looked: it reads everything again."""
MAX_SEEN = 5 * MARK_LOOKBACK
"""A cache keeps at most this many ids it has seen above a floor (then reads everything)."""


@dataclass(frozen=True, slots=True)
class Seen:
    """The ids above ``floor`` of a change table (``domain_events`` or ``slot_booking``)
    that a cached answer reflects. Ids are handed out in order but, on PostgreSQL, not
    committed in order: a new row is one above the highest seen id, or a late one below it
    (which a count and a sum of the ids in (floor, highest] give away)."""

    floor: int
    ids: frozenset[int]

    @property
    def top(self) -> int:
        return max(self.ids, default=self.floor)


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed since two :class:`Seen`: Slots named by new events, whether a Schedule
    or Location changed (``joined``), slots named by new claims, and the new Seen."""

    slots: frozenset[str]
    joined: bool
    claimed: frozenset[str]
    events: Seen
    claims: Seen


def seen_now(session: Session, mark: ChangeMark) -> tuple[Seen, Seen]:
    """The ids above ``mark``'s floors, events then claims. Read after the mark and before
    the slots (as the mark is read before them): an id read here is in what follows."""
    return (
        Seen(mark.event_floor, frozenset(_ids_in(session, domain_events, mark.event_floor))),
        Seen(mark.claim_floor, frozenset(_ids_in(session, slot_bookings, mark.claim_floor))),
    )


def changes_since(session: Session, events: Seen, claims: Seen) -> Changes | None:
    """New events and claims since ``events`` and ``claims``; None when there are too many
    to apply one by one (more than ``MAX_CHANGES`` rows, or more than ``MAX_SEEN`` ids).
    A deleted claim is not a row: the cache re-checks the claims it knows (``claimed_now``)."""
    new_events = _new_rows(session, _EVENT_LOG, events)
    new_claims = _new_rows(session, _CLAIM_LOG, claims)
    if new_events is None or new_claims is None:
        return None
    event_rows, seen_events = new_events
    claim_rows, seen_claims = new_claims
    return Changes(
        slots=frozenset(r.resource_id for r in event_rows if r.resource_type == "Slot"),
        joined=any(r.resource_type in JOINED_TYPES for r in event_rows),
        claimed=frozenset(r.slot_id for r in claim_rows),
        events=seen_events,
        claims=seen_claims,
    )


def claimed_now(session: Session, slot_ids: Collection[str]) -> set[str]:
    """Which of these slots a booking claims now (one indexed lookup per 1,000)."""
    return _claimed(session, sorted(slot_ids))


@dataclass(frozen=True, slots=True)
class _Log:
    """A change table and its statements, built once (building cost more than running)."""

    table: Table
    columns: tuple[ColumnElement[Any], ...]
    above: Executable
    """Rows above ``top``, in id order, at most one more than ``MAX_CHANGES``."""
    tally: Executable
    """How many ids lie in (``floor``, ``top``], and their sum."""


def _log(table: Table, *columns: ColumnElement[Any]) -> _Log:
    ident = table.c.id
    above = select(ident, *columns).where(ident > bindparam("top"))
    return _Log(
        table,
        columns,
        above.order_by(ident).limit(MAX_CHANGES + 1),
        select(func.count(), func.coalesce(func.sum(ident), 0)).where(
            ident > bindparam("floor"), ident <= bindparam("top")
        ),
    )


_EVENT_LOG = _log(domain_events, domain_events.c.resource_type, domain_events.c.resource_id)
_CLAIM_LOG = _log(slot_bookings, slot_bookings.c.slot_id)


def _new_rows(session: Session, log: _Log, seen: Seen) -> tuple[list[Row[Any]], Seen] | None:
    """Rows of ``log`` not in ``seen``: those above its highest id, and late commits below
    it when the count or sum of the ids in (floor, highest] differs from what was seen."""
    top = seen.top
    rows = list(session.execute(log.above, {"top": top}))
    ids = set(seen.ids)
    count, total = session.execute(log.tally, {"floor": seen.floor, "top": top}).one()
    if (int(count), int(total)) != (len(ids), sum(ids)):
        present = set(_ids_in(session, log.table, seen.floor, top))
        late = sorted(present - ids)
        ident = log.table.c.id
        ids = present
        for i in range(0, len(late), 1000):
            chunk = late[i : i + 1000]
            rows += session.execute(select(ident, *log.columns).where(ident.in_(chunk)))
    ids.update(int(r.id) for r in rows)
    if len(rows) > MAX_CHANGES or len(ids) > MAX_SEEN:
        return None
    return rows, Seen(seen.floor, frozenset(ids))


def _ids_in(session: Session, table: Table, floor: int, top: int | None = None) -> list[int]:
    query = select(table.c.id).where(table.c.id > floor)
    if top is not None:
        query = query.where(table.c.id <= top)
    return [int(i) for i in session.execute(query).scalars()]


def patient_appointments(patient_id: str) -> Any:
    """The pks of the Appointments the patient takes part in (through the search index)."""
    return (
        select(search_index.c.resource_pk)
        .where(
            search_index.c.resource_type == "Appointment",
            search_index.c.param == "actor",
            search_index.c.system == "Patient",
            search_index.c.value == patient_id,
        )
        .scalar_subquery()
    )


def past_practitioners(session: Session, patient_id: str, before: datetime) -> dict[str, int]:
    """Practitioner reference -> how many of the patient's appointments before ``before``
    they took part in (cancelled and no-shows do not count as continuity)."""
    rows = session.execute(
        select(resources.c.resource).where(
            resources.c.pk.in_(patient_appointments(patient_id)),
            resources.c.status.in_(PAST_STATUSES),
            resources.c.start < before,
        )
    ).all()
    seen: Counter[str] = Counter()
    for (appointment,) in rows:
        for participant in appointment.get("participant") or []:
            ref = str((participant.get("actor") or {}).get("reference", ""))
            if ref.startswith("Practitioner/"):
                seen[ref] += 1
    return dict(seen)


def _claimed(session: Session, slot_ids: list[str]) -> set[str]:
    claimed: set[str] = set()
    for i in range(0, len(slot_ids), 1000):
        chunk = slot_ids[i : i + 1000]
        found = session.execute(
            select(slot_bookings.c.slot_id).where(slot_bookings.c.slot_id.in_(chunk))
        )
        claimed.update(found.scalars())
    return claimed


def _by_id(session: Session, rtype: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    wanted = sorted(ids)
    for i in range(0, len(wanted), 1000):
        rows = session.execute(
            select(resources.c.id, resources.c.resource).where(
                resources.c.resource_type == rtype, resources.c.id.in_(wanted[i : i + 1000])
            )
        )
        found.update({rid: resource for rid, resource in rows})
    return found


def _actor_refs(schedule: dict[str, Any]) -> list[str]:
    return [str((a or {}).get("reference", "")) for a in schedule.get("actor") or []]


def _place(location_id: str, location: dict[str, Any]) -> Place:
    position = location.get("position") or {}
    lat, lon = position.get("latitude"), position.get("longitude")
    return Place(
        key=f"Location/{location_id}",
        name=location.get("name"),
        latitude=float(lat) if lat is not None else None,
        longitude=float(lon) if lon is not None else None,
    )


def _comment_place(slot: dict[str, Any]) -> Place | None:
    """Uploads name the place only in the Slot's comment ("Location: Main St")."""
    comment = str(slot.get("comment") or "")
    if comment.startswith(LOCATION_COMMENT):
        name = comment[len(LOCATION_COMMENT) :].strip()
        return Place(key=name, name=name) if name else None
    return None


def _visit_types(resource: dict[str, Any]) -> frozenset[str]:
    """Codes and texts of serviceType, specialty and appointmentType: a patient's visit
    type matches any of them."""
    concepts: list[dict[str, Any]] = [
        *(resource.get("serviceType") or []),
        *(resource.get("specialty") or []),
    ]
    if isinstance(resource.get("appointmentType"), dict):
        concepts.append(resource["appointmentType"])
    names: set[str] = set()
    for concept in concepts:
        if concept.get("text"):
            names.add(str(concept["text"]))
        for coding in concept.get("coding") or []:
            for key in ("code", "display"):
                if coding.get(key):
                    names.add(str(coding[key]))
    return frozenset(names)


def _source(slot: dict[str, Any], source_system: str | None) -> str:
    """The integration a slot came from: its first identifier's system, else the writer."""
    for ident in slot.get("identifier") or []:
        if ident.get("system"):
            return str(ident["system"])
    return source_system or ""
