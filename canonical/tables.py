"""Storage for canonical resources, portable between SQLite and PostgreSQL.

Each resource is kept whole as JSON, with the fields that searches filter on copied into
indexed columns (``resources``) or into one row per reference/token (``search_index``).
Identifiers of every source point at the record they name (``identifiers``); every version
and where it came from is kept (``resource_versions``, ``provenance``).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# BIGINT on PostgreSQL, INTEGER on SQLite: SQLite only auto-increments INTEGER PRIMARY KEY.
AUTO_ID = BigInteger().with_variant(Integer(), "sqlite")

resources = Table(
    "canonical_resources",
    metadata,
    Column("pk", AUTO_ID, primary_key=True, autoincrement=True),
    Column("resource_type", String(32), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("status", String(32)),
    Column("start", DateTime(timezone=True)),
    Column("end", DateTime(timezone=True)),
    Column("schedule_id", String(64), comment="Slot.schedule id, for slot searches"),
    Column("source_system", String(200), comment="system that wrote the current version"),
    Column("message_seq", BigInteger, comment="highest inbound message sequence applied"),
    Column("content_hash", String(64), nullable=False),
    Column("resource", JSON, nullable=False),
    UniqueConstraint("resource_type", "id", name="uq_canonical_resources_type_id"),
    Index("ix_canonical_resources_type_start", "resource_type", "start"),
    Index("ix_canonical_resources_type_status_start", "resource_type", "status", "start"),
    Index("ix_canonical_resources_schedule_start", "schedule_id", "start"),
    Index("ix_canonical_resources_type_updated", "resource_type", "last_updated"),
    Index("ix_canonical_resources_source", "source_system"),
)

resource_versions = Table(
    "canonical_resource_versions",
    metadata,
    Column("pk", AUTO_ID, primary_key=True, autoincrement=True),
    Column(
        "resource_pk",
        AUTO_ID,
        ForeignKey("canonical_resources.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("resource", JSON, nullable=False),
    UniqueConstraint("resource_pk", "version_id", name="uq_canonical_versions_resource_version"),
)

provenance = Table(
    "canonical_provenance",
    metadata,
    Column("pk", AUTO_ID, primary_key=True, autoincrement=True),
    Column(
        "resource_pk",
        AUTO_ID,
        ForeignKey("canonical_resources.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("version_id", Integer, nullable=False),
    Column("source_system", String(200), nullable=False),
    Column("source_id", String(500), comment="the primary identifier as system|value"),
    Column("message_id", BigInteger),
    Column("message_seq", BigInteger),
    Column("mapping_version", String(100)),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("original_time_text", Text),
    UniqueConstraint("resource_pk", "version_id", name="uq_canonical_provenance_version"),
    Index("ix_canonical_provenance_message", "message_id"),
)

identifiers = Table(
    "canonical_identifiers",
    metadata,
    Column("pk", AUTO_ID, primary_key=True, autoincrement=True),
    Column("resource_type", String(32), nullable=False),
    Column("system", String(500), nullable=False, comment="'' when the identifier has none"),
    Column("value", String(500), nullable=False),
    Column(
        "resource_pk",
        AUTO_ID,
        ForeignKey("canonical_resources.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    UniqueConstraint("resource_type", "system", "value", name="uq_canonical_identifiers"),
    Index("ix_canonical_identifiers_type_value", "resource_type", "value"),
    Index("ix_canonical_identifiers_value", "value"),
    Index("ix_canonical_identifiers_resource", "resource_pk"),
)

search_index = Table(
    "canonical_search_index",
    metadata,
    Column("pk", AUTO_ID, primary_key=True, autoincrement=True),
    Column(
        "resource_pk",
        AUTO_ID,
        ForeignKey("canonical_resources.pk", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("resource_type", String(32), nullable=False),
    Column("param", String(64), nullable=False),
    Column(
        "system",
        String(500),
        nullable=False,
        comment="references: the target type; tokens: the code system ('' if none)",
    ),
    Column("value", String(500), nullable=False, comment="references: target id; tokens: code"),
    Index("ix_canonical_search", "resource_type", "param", "value", "system"),
    Index("ix_canonical_search_resource", "resource_pk"),
)
