"""Shifts and rosters: physicians, shift types, rosters, shifts, requests, roster events.

``roster_event`` is the log every state change writes (in the same transaction as the
change); the live roster stream and the notification dispatcher read it in id order, so a
change is never announced without having happened, nor happens unannounced.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from canonical.tables import AUTO_ID

metadata = MetaData()

physicians = Table(
    "physician",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=True, unique=True, comment="app_user.id"),
    Column("name", String(255), nullable=False),
    Column("practitioner_id", String(64), nullable=True, comment="canonical Practitioner id"),
    Column("specialties", JSON, nullable=False),
    Column("locations", JSON, nullable=False),
    Column("services", JSON, nullable=False),
    Column("fte", Float, nullable=False, default=1.0),
    Column("blackout_dates", JSON, nullable=False, comment="ISO dates the physician is away"),
    Column("active", Integer, nullable=False, default=1),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

shift_types = Table(
    "shift_type",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("code", String(32), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False, comment="call | clinic | night | weekend | ..."),
    Column("start_time", String(5), nullable=False, comment="HH:MM local"),
    Column("duration_minutes", Integer, nullable=False),
    Column("service", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("required_specialties", JSON, nullable=False),
    Column("version", Integer, nullable=False, default=1),
)

rosters = Table(
    "roster",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False, comment="inclusive"),
    Column("status", String(16), nullable=False, comment="draft | published"),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

shifts = Table(
    "shift",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("roster_id", BigInteger, ForeignKey("roster.id"), nullable=False),
    Column("shift_type_id", BigInteger, ForeignKey("shift_type.id"), nullable=False),
    Column("physician_id", BigInteger, ForeignKey("physician.id"), nullable=True),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    Column("service", String(64), nullable=False),
    Column("location", String(64), nullable=False),
    Column("status", String(16), nullable=False, comment="assigned | open | deleted"),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_shift_physician_start", "physician_id", "start"),
    Index("ix_shift_start_end", "start", "end"),
    Index("ix_shift_roster", "roster_id"),
)

shift_requests = Table(
    "shift_request",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, comment="pickup | swap"),
    Column("shift_id", BigInteger, ForeignKey("shift.id"), nullable=False),
    Column("requester_id", BigInteger, ForeignKey("physician.id"), nullable=False),
    Column("counterparty_id", BigInteger, ForeignKey("physician.id"), nullable=True),
    Column("counterparty_shift_id", BigInteger, ForeignKey("shift.id"), nullable=True),
    Column(
        "status",
        String(16),
        nullable=False,
        comment="pending | accepted | declined | approved | rejected | withdrawn",
    ),
    Column("note", Text, nullable=True),
    Column("decided_by", String(255), nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_shift_request_status", "status"),
)

roster_events = Table(
    "roster_event",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column(
        "kind",
        String(32),
        nullable=False,
        comment="what happened; the kinds are listed in scheduling/roster_events.py",
    ),
    Column("roster_id", BigInteger, nullable=True),
    Column("shift_ids", JSON, nullable=False),
    Column("request_id", BigInteger, nullable=True),
    Column("physician_ids", JSON, nullable=False, comment="physicians the change concerns"),
    Column("actor", String(255), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

roster_rules = Table(
    "roster_rule",
    metadata,
    Column("id", Integer, primary_key=True, comment="always 1: one rule set for the hub"),
    Column("rules", JSON, nullable=False, comment="overrides of the HARMONY_ROSTER_* defaults"),
    Column("version", Integer, nullable=False, default=1),
    Column("updated_by", String(255), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

roster_generation_jobs = Table(
    "roster_generation_job",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("roster_id", BigInteger, ForeignKey("roster.id"), nullable=False),
    Column(
        "state",
        String(16),
        nullable=False,
        comment="queued | running | succeeded | stopped | failed",
    ),
    Column("time_limit", Float, nullable=False, comment="seconds of solving"),
    Column("request", JSON, nullable=False, comment="coverage, options, wishes as posted"),
    Column("elapsed_seconds", Float, nullable=True, comment="progress: time solving so far"),
    Column("objective", Float, nullable=True, comment="progress: best roster's cost so far"),
    Column("bound", Float, nullable=True, comment="progress: proven lower bound so far"),
    Column("stop_requested", Integer, nullable=False, default=0),
    Column(
        "heartbeat_at",
        DateTime(timezone=True),
        nullable=False,
        comment="the owning process's last sign of life; old while active: interrupted",
    ),
    Column("created_by", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("report", JSON, nullable=True, comment="GenerationReport.as_json() when finished"),
    Column("error", Text, nullable=True),
    Index("ix_roster_generation_job_roster", "roster_id", "state"),
    Index("ix_roster_generation_job_state", "state", "heartbeat_at"),
)
