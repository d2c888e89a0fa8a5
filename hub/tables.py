"""The message store and the domain-event outbox: the hub's own tables."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from canonical.tables import AUTO_ID

metadata = MetaData()


messages = Table(
    "message",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("direction", String(8), nullable=False),  # inbound | outbound
    Column("dedupe_key", String(512), nullable=True, unique=True),
    Column("body_sha256", String(64), nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("message_type", String(32), nullable=True),
    Column("control_id", String(199), nullable=True),
    Column("sender", String(255), nullable=True),
    Column("peer", String(255), nullable=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("ack", LargeBinary, nullable=True),
    Column("mapping_version", String(64), nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Index("ix_message_status_next", "status", "next_attempt_at"),
    Index("ix_message_channel_status", "channel", "status"),
    Index("ix_message_received", "received_at"),
    Index("ix_message_control_id", "control_id"),
)

domain_events = Table(
    "domain_event",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("event", String(64), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source_system", String(64), nullable=True),
    Column("message_id", BigInteger, nullable=True),
    Column("detail", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_domain_event_created", "created_at"),
)

integrations = Table(
    "integration",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("source_type", String(32), nullable=False),
    Column("base_url", String(1024), nullable=False),
    Column("owner", String(255), nullable=True, comment="organization or provider it serves"),
    Column("credentials", LargeBinary, nullable=True, comment="encrypted JSON"),
    Column("webhook_secret", LargeBinary, nullable=True, comment="encrypted"),
    Column("options", JSON, nullable=False),
    Column("sync_interval_seconds", Integer, nullable=False),
    Column("enabled", Integer, nullable=False, default=1),
    Column("cursor", JSON, nullable=True, comment="where the next sync resumes"),
    Column("running_since", DateTime(timezone=True), nullable=True),
    Column("last_sync_at", DateTime(timezone=True), nullable=True),
    Column("last_success_at", DateTime(timezone=True), nullable=True),
    Column("next_sync_at", DateTime(timezone=True), nullable=True),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("pages_stored", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

webhook_events = Table(
    "webhook_event",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("integration", String(64), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("message_id", BigInteger, nullable=True),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("integration", "event_id", name="uq_webhook_event"),
)

slot_bookings = Table(
    "slot_booking",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("slot_id", String(64), nullable=False, unique=True),
    Column("state", String(16), nullable=False, comment="pending | booked"),
    Column("appointment_id", String(64), nullable=True),
    Column("requested_by", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("patient_id", String(64), nullable=True, comment="canonical Patient id (buffers)"),
    Column("practitioner_id", String(64), nullable=True, comment="local slots only (buffers)"),
    Column("start", DateTime(timezone=True), nullable=True),
    Column("end", DateTime(timezone=True), nullable=True),
    Index("ix_slot_booking_patient_start", "patient_id", "start"),
    Index("ix_slot_booking_practitioner_start", "practitioner_id", "start"),
)

appointment_cancellations = Table(
    "appointment_cancellation",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("appointment_id", String(64), nullable=False, unique=True),
    Column("reason", JSON, nullable=False, comment="FHIR CodeableConcept"),
    Column("requested_by", String(255), nullable=True),
    Column("state", String(16), nullable=False, comment="running | done | retrying | parked"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_appointment_cancellation_state_next", "state", "next_attempt_at"),
)

appointment_reminders = Table(
    "appointment_reminder",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("appointment_id", String(64), nullable=False),
    Column("kind", String(8), nullable=False, comment="24h | 1h"),
    Column("state", String(16), nullable=False, comment="queued | skipped"),
    Column("appointment_start", DateTime(timezone=True), nullable=False),
    Column("notification_ids", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("appointment_id", "kind", name="uq_appointment_reminder_kind"),
)
