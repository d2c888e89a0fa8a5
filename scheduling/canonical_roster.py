"""A published roster as canonical FHIR records, so ``/fhir`` serves it like any schedule.

Per physician + service + location: a PractitionerRole (its practitioner is the physician's
canonical Practitioner, created here when the physician has none) and a Schedule whose actor
is that role. Per shift: a busy Slot on the Schedule of whoever works it. A shift that moves
to someone else moves its Slot to their Schedule; a shift that is dropped (open) or deleted
marks its Slot ``entered-in-error`` (the time is no longer that person's duty).

Identifiers (the upsert keys, stable across edits) are under ``urn:harmony:roster:``. What
the writes changed goes to the caller's ``CanonicalChanges`` (domain events in a hub).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from canonical.records import (
    Identifier,
    Provenance,
    SourceBundle,
    SourceRecord,
    conditional_reference,
)
from canonical.repository import CanonicalRepository, UpsertResult, format_instant
from scheduling.context import CanonicalChanges
from scheduling.records import shifts_with_types
from scheduling.tables import physicians, shifts
from scheduling.times import span_text, utcnow

SOURCE_SYSTEM = "harmony-roster"
PHYSICIAN_SYSTEM = "urn:harmony:roster:physician"
ROLE_SYSTEM = "urn:harmony:roster:practitioner-role"
SCHEDULE_SYSTEM = "urn:harmony:roster:schedule"
SHIFT_SYSTEM = "urn:harmony:roster:shift"


def role_key(physician_id: int, service: str, location: str) -> str:
    """The identifier value of a physician's role in one service at one location."""
    return f"{physician_id}-{quote(service, safe='')}-{quote(location, safe='')}"


def sync_shifts(
    session: Session, record_changes: CanonicalChanges, shift_ids: Iterable[int]
) -> list[UpsertResult]:
    """Write the canonical records of these shifts as they are now (inside the caller's
    transaction); deleted shifts must be passed to ``retire_slots`` before their row goes."""
    ids = sorted(set(shift_ids))
    if not ids:
        return []
    conn = session.connection()
    rows = conn.execute(shifts_with_types().where(shifts.c.id.in_(ids))).all()
    people = {
        p.id: p
        for p in conn.execute(
            select(physicians).where(
                physicians.c.id.in_({r.physician_id for r in rows if r.physician_id})
            )
        )
    }
    records: dict[tuple[str, str], SourceRecord] = {}
    retired: list[int] = []
    for row in rows:
        person = people.get(row.physician_id) if row.status == "assigned" else None
        if person is None:
            retired.append(row.id)
            continue
        practitioner = _practitioner(records, person)
        schedule = _role_and_schedule(records, person, row, practitioner)
        records[("Slot", str(row.id))] = SourceRecord(
            "Slot",
            [Identifier(SHIFT_SYSTEM, str(row.id))],
            {
                "resourceType": "Slot",
                "schedule": {"reference": schedule},
                "status": "busy",
                "start": format_instant(row.start),
                "end": format_instant(row.end),
                "serviceType": [{"text": row.service}],
                "comment": f"{row.type_name} {span_text(row.start, row.end, row.type_timezone)}"
                f" ({row.type_timezone}): {person.name}",
            },
        )
    results = _apply(session, record_changes, list(records.values()))
    return results + retire_slots(session, record_changes, retired)


def retire_slots(
    session: Session, record_changes: CanonicalChanges, shift_ids: Iterable[int]
) -> list[UpsertResult]:
    """Mark the Slots of shifts nobody works any more ``entered-in-error``."""
    repo = CanonicalRepository(session)
    records = []
    for shift_id in sorted(set(shift_ids)):
        found = repo.find_by_identifier(str(shift_id), SHIFT_SYSTEM, "Slot")
        if not found:
            continue
        slot = repo.get("Slot", found[0].split("/", 1)[1])
        if slot is None or slot.get("status") == "entered-in-error":
            continue
        body = {k: v for k, v in slot.items() if k not in ("id", "meta")}
        body["status"] = "entered-in-error"
        records.append(SourceRecord("Slot", [Identifier(SHIFT_SYSTEM, str(shift_id))], body))
    return _apply(session, record_changes, records)


def _apply(
    session: Session, record_changes: CanonicalChanges, records: list[SourceRecord]
) -> list[UpsertResult]:
    if not records:
        return []
    provenance = Provenance(
        source_system=SOURCE_SYSTEM, message_id=None, mapping_version=None, received_at=utcnow()
    )
    results = CanonicalRepository(session).apply(SourceBundle(records=records), provenance, None)
    record_changes(session.connection(), results, SOURCE_SYSTEM)
    return results


def _practitioner(records: dict[tuple[str, str], SourceRecord], person: Row[Any]) -> str:
    if person.practitioner_id:
        return f"Practitioner/{person.practitioner_id}"
    key = ("Practitioner", str(person.id))
    records.setdefault(
        key,
        SourceRecord(
            "Practitioner",
            [Identifier(PHYSICIAN_SYSTEM, str(person.id))],
            {"resourceType": "Practitioner", "active": True, "name": [{"text": person.name}]},
        ),
    )
    return conditional_reference("Practitioner", PHYSICIAN_SYSTEM, str(person.id))


def _role_and_schedule(
    records: dict[tuple[str, str], SourceRecord],
    person: Row[Any],
    shift: Row[Any],
    practitioner: str,
) -> str:
    """Adds the role and its schedule; returns the schedule's (conditional) reference."""
    key = role_key(person.id, shift.service, shift.location)
    role_ref = conditional_reference("PractitionerRole", ROLE_SYSTEM, key)
    records.setdefault(
        ("PractitionerRole", key),
        SourceRecord(
            "PractitionerRole",
            [Identifier(ROLE_SYSTEM, key)],
            {
                "resourceType": "PractitionerRole",
                "active": bool(person.active),
                "practitioner": {"reference": practitioner, "display": person.name},
                "code": [{"text": shift.service}],
                "specialty": [{"text": s} for s in person.specialties or ()],
                "location": [{"display": shift.location}],
            },
        ),
    )
    records.setdefault(
        ("Schedule", key),
        SourceRecord(
            "Schedule",
            [Identifier(SCHEDULE_SYSTEM, key)],
            {
                "resourceType": "Schedule",
                "active": True,
                "actor": [{"reference": role_ref, "display": person.name}],
                "serviceType": [{"text": shift.service}],
                "comment": f"{person.name}: {shift.service} at {shift.location} (roster)",
            },
        ),
    )
    return conditional_reference("Schedule", SCHEDULE_SYSTEM, key)
