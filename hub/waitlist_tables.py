"""Waitlist tables: who waits for a slot, the offers made to them, and the watcher's mark.

They live on the users' metadata. ``waitlist_offer.open_slot_id`` holds the slot id while an
offer is out and NULL otherwise; it is unique, so a slot has at most one open offer on
SQLite and PostgreSQL alike (both treat NULLs as distinct), without a partial index.
``(entry_id, slot_id)`` is unique too: a patient is offered a given slot once, so "the next
patient" is whoever has not yet had it.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from canonical.tables import AUTO_ID
from hub.users import metadata

waitlist_entries = Table(
    "waitlist_entry",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("patient_id", String(64), nullable=False, comment="canonical Patient id"),
    Column("visit_type", String(128), nullable=True),
    Column("practitioner_id", String(128), nullable=True, comment="Practitioner/<id> only"),
    Column("preferences", JSON, nullable=False, comment="as POST /api/slots/rank takes them"),
    Column("active", Integer, nullable=False, default=1),
    Column("appointment_id", String(64), nullable=True, comment="what the wait ended in"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_waitlist_entry_active", "active", "created_at"),
    Index("ix_waitlist_entry_patient", "patient_id"),
)

waitlist_offers = Table(
    "waitlist_offer",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("entry_id", BigInteger, nullable=False, comment="waitlist_entry.id"),
    Column("slot_id", String(64), nullable=False, comment="canonical Slot id"),
    Column(
        "state",
        String(16),
        nullable=False,
        comment="offered | accepted | expired | declined | lost",
    ),
    Column("open_slot_id", String(64), nullable=True, comment="slot_id while offered"),
    Column("score", JSON, nullable=True, comment="the ranking's score and components"),
    Column("offered_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("appointment_id", String(64), nullable=True),
    Column("last_error", Text, nullable=True),
    UniqueConstraint("open_slot_id", name="uq_waitlist_offer_open_slot"),
    UniqueConstraint("entry_id", "slot_id", name="uq_waitlist_offer_entry_slot"),
    Index("ix_waitlist_offer_state_expires", "state", "expires_at"),
    Index("ix_waitlist_offer_slot", "slot_id"),
)

waitlist_cursor = Table(
    "waitlist_cursor",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_event_id", BigInteger, nullable=False, comment="domain_event.id read up to"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
