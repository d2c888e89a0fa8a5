"""Free canonical Slots in a window, as ranking candidates, and a patient's provider history.

Reads the canonical tables directly (one indexed range query on type, status and start,
then one query each for the Schedules and Locations those Slots name) rather than paging a
FHIR search: a ranking looks at every free slot in the window, up to ``MAX_CANDIDATES``.
A slot already claimed in ``slot_booking`` but not yet marked busy is left out.

:func:`read_change_mark` summarises, in one cheap statement, everything that answer depends
on, so a cache of it (hub.candidate_cache) can tell when it must be rebuilt.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, func, select
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


def free_slots(session: Session, start: datetime, end: datetime) -> CandidateSet:
    """Every free Slot starting in [start, end), with its practitioner, place and types."""
    rows = session.execute(
        select(
            resources.c.id,
            resources.c.start,
            resources.c.end,
            resources.c.schedule_id,
            resources.c.source_system,
            resources.c.resource,
        )
        .where(
            resources.c.resource_type == "Slot",
            resources.c.status == "free",
            resources.c.start >= start,
            resources.c.start < end,
        )
        .order_by(resources.c.start, resources.c.pk)
        .limit(MAX_CANDIDATES + 1)
    ).all()
    truncated = len(rows) > MAX_CANDIDATES
    rows = rows[:MAX_CANDIDATES]
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
    out = []
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
    return CandidateSet(out, truncated)


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
    ones; one statement when ``like`` is given. Read it *before* ``free_slots``: a change
    committed in between then shows as a moved mark (a needless rebuild), never the
    reverse."""
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


def past_practitioners(session: Session, patient_id: str, before: datetime) -> dict[str, int]:
    """Practitioner reference -> how many of the patient's appointments before ``before``
    they took part in (cancelled and no-shows do not count as continuity)."""
    patient_pks = (
        select(search_index.c.resource_pk)
        .where(
            search_index.c.resource_type == "Appointment",
            search_index.c.param == "actor",
            search_index.c.system == "Patient",
            search_index.c.value == patient_id,
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(resources.c.resource).where(
            resources.c.pk.in_(patient_pks),
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
