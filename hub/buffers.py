"""Buffer times between visits, checked while a slot is claimed.

Two rules: a patient's visits keep ``appointment_buffer_minutes`` apart (whatever system owns
them), and so do one practitioner's visits on slots booked in Harmony (GMED, uploads), with
an optional per-practitioner buffer. A buffer of 0 refuses overlapping visits only; with
no buffer configured (the default) there is no rule.

The check and the claim row it protects commit in one transaction that holds a lock per
patient and per practitioner: PostgreSQL transaction-level advisory locks (taken in sorted
order, so two claims never deadlock), and on SQLite the write lock every transaction takes
at BEGIN IMMEDIATE. Of two racing bookings that break a rule together, exactly one commits;
the other sees its claim row (or its appointment) and is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select, text

from canonical.search import parse
from canonical.tables import identifiers, resources
from hub import message_store
from hub.settings import Settings
from hub.tables import slot_bookings

STALE_PENDING = timedelta(minutes=5)
"""A pending claim older than this was left by a crash (hub.booking drops it too)."""
INACTIVE = ("cancelled", "noshow", "entered-in-error", "proposed", "waitlist")
"""Appointment statuses that hold no time."""


@dataclass(frozen=True, slots=True)
class ClaimScope:
    """What a claim would hold: one slot's time for a patient and (local slots) a practitioner."""

    slot_id: str
    start: datetime | None
    end: datetime | None
    patient_id: str | None = None
    practitioner_id: str | None = None
    replaces: str | None = None
    """An appointment being rescheduled away from: it does not count against the new slot."""


@dataclass(frozen=True, slots=True)
class BufferConflict:
    """The rule a claim breaks and the visit it comes too close to."""

    rule: str
    """``patient-buffer`` or ``practitioner-buffer``."""
    minutes: int
    subject: str
    appointment_id: str | None
    start: datetime
    end: datetime

    def message(self) -> str:
        what = f"Appointment/{self.appointment_id}" if self.appointment_id else "a booking"
        rule = (
            f"visits must be at least {self.minutes} minutes apart"
            if self.minutes
            else "visits must not overlap"
        )
        start, end = message_store.utc_text(self.start), message_store.utc_text(self.end)
        return (
            f"refused by the {self.rule} rule: {self.subject} already has {what} at "
            f"{start} to {end}, and {rule}"
        )

    def detail(self) -> dict[str, Any]:
        return {
            "message": self.message(),
            "rule": self.rule,
            "buffer_minutes": self.minutes,
            "subject": self.subject,
            "conflict": {
                "appointment_id": self.appointment_id,
                "start": message_store.utc_text(self.start),
                "end": message_store.utc_text(self.end),
            },
        }


def lock_subjects(conn: Connection, scope: ClaimScope) -> None:
    """Serialize claims per patient and per practitioner until this transaction ends."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already made this the only writer
    keys = []
    if scope.patient_id:
        keys.append(f"patient:{scope.patient_id}")
    if scope.practitioner_id:
        keys.append(f"practitioner:{scope.practitioner_id}")
    for key in sorted(keys):
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(key)})


def find_conflict(conn: Connection, settings: Settings, scope: ClaimScope) -> BufferConflict | None:
    """The first visit ``scope`` would come too close to, or None."""
    if scope.start is None or scope.end is None:
        return None
    minutes: int | None = settings.appointment_buffer_minutes
    if scope.patient_id and minutes is not None:
        found = _conflict(conn, scope, "patient", scope.patient_id, minutes)
        if found:
            return found
    if scope.practitioner_id:
        minutes = practitioner_buffer(conn, settings, scope.practitioner_id)
        if minutes is not None:
            return _conflict(conn, scope, "practitioner", scope.practitioner_id, minutes)
    return None


def practitioner_buffer(conn: Connection, settings: Settings, practitioner_id: str) -> int | None:
    """The practitioner's own buffer (by canonical id or 'system|value'), else the default."""
    overrides = settings.appointment_practitioner_buffer_minutes
    if practitioner_id in overrides:
        return overrides[practitioner_id]
    if overrides:
        rows = conn.execute(
            select(identifiers.c.system, identifiers.c.value)
            .join(resources, resources.c.pk == identifiers.c.resource_pk)
            .where(resources.c.resource_type == "Practitioner", resources.c.id == practitioner_id)
        )
        for row in rows:
            key = f"{row.system}|{row.value}"
            if key in overrides:
                return overrides[key]
    return settings.appointment_buffer_minutes


def _conflict(
    conn: Connection, scope: ClaimScope, kind: str, subject_id: str, minutes: int
) -> BufferConflict | None:
    assert scope.start is not None and scope.end is not None
    gap = timedelta(minutes=minutes)
    low, high = scope.start - gap, scope.end + gap
    subject = f"{kind.capitalize()}/{subject_id}"
    rule = f"{kind}-buffer"
    query = parse("Appointment", [(kind, subject)])
    appointment = conn.execute(
        select(resources.c.id, resources.c.start, resources.c.end)
        .where(
            *query.conditions,
            resources.c.start < high,
            resources.c.end > low,
            resources.c.status.not_in(INACTIVE),
            resources.c.id != (scope.replaces or ""),
        )
        .order_by(resources.c.start)
        .limit(1)
    ).first()
    if appointment is not None:
        return BufferConflict(
            rule,
            minutes,
            subject,
            appointment.id,
            message_store.as_utc(appointment.start),
            message_store.as_utc(appointment.end),
        )
    column = slot_bookings.c.patient_id if kind == "patient" else slot_bookings.c.practitioner_id
    claims = conn.execute(
        select(slot_bookings)
        .where(
            column == subject_id,
            slot_bookings.c.start < high,
            slot_bookings.c.end > low,
            slot_bookings.c.slot_id != scope.slot_id,
        )
        .order_by(slot_bookings.c.start)
    ).all()
    for claim in claims:
        if _claim_holds(conn, claim, scope.replaces):
            return BufferConflict(
                rule,
                minutes,
                subject,
                claim.appointment_id,
                message_store.as_utc(claim.start),
                message_store.as_utc(claim.end),
            )
    return None


def _claim_holds(conn: Connection, claim: Any, replaces: str | None) -> bool:
    """A claim counts while it is being booked (and not abandoned) or its visit stands."""
    if claim.appointment_id is None:
        age = message_store.utcnow() - message_store.as_utc(claim.created_at)
        return claim.state == "pending" and age <= STALE_PENDING
    if claim.appointment_id == replaces:
        return False
    status = conn.execute(
        select(resources.c.status).where(
            resources.c.resource_type == "Appointment", resources.c.id == claim.appointment_id
        )
    ).scalar()
    return status is not None and status not in INACTIVE


def _lock_key(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), signed=True)


def parse_instant(value: Any) -> datetime | None:
    """A FHIR instant as an aware UTC datetime (None when absent or unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return message_store.as_utc(datetime.fromisoformat(value)).astimezone(UTC)
    except ValueError:
        return None
