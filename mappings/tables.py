"""Mapping set storage: immutable versions, an activation log, and codes seen but unmapped.

Versions are never edited in place: a message records the label it was read through, so the
content behind a label must stay what it was. Activation is a log rather than a flag so that
rollback can walk back through what was actually active, and so there is an audit trail.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from canonical.tables import AUTO_ID

metadata = MetaData()


SOURCE_LENGTH = 64
CODE_LENGTH = 512

mapping_versions = Table(
    "mapping_version",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("source", String(SOURCE_LENGTH), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content", JSON, nullable=False),
    Column("note", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(255), nullable=False),
    UniqueConstraint("source", "version", name="uq_mapping_version_source_version"),
)

mapping_activations = Table(
    "mapping_activation",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("source", String(SOURCE_LENGTH), nullable=False),
    Column("version", Integer, nullable=False),
    # The activation this one replaced, as rollback should see it: an activation points at
    # the row that was current; a rollback copies the pointer of the row it returns to, so
    # repeated rollbacks keep walking back instead of flipping between two versions.
    Column("previous_id", AUTO_ID, nullable=True),
    Column("kind", String(16), nullable=False),  # activate | rollback | defaults
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("activated_by", String(255), nullable=False),
    ForeignKeyConstraint(
        ["source", "version"],
        ["mapping_version.source", "mapping_version.version"],
        name="fk_mapping_activation_version",
    ),
    Index("ix_mapping_activation_source_id", "source", "id"),
)

mapping_unmapped_codes = Table(
    "mapping_unmapped_code",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("source", String(SOURCE_LENGTH), nullable=False),
    Column("code_table", String(64), nullable=False),
    Column("code", String(CODE_LENGTH), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("last_message_id", BigInteger, nullable=True),
    UniqueConstraint("source", "code_table", "code", name="uq_mapping_unmapped_code"),
)
