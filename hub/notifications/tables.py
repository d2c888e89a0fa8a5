"""Notification tables: what each user was told, how it travels, and where the dispatcher is.

``notification`` is the in-app inbox and the source of truth for the SSE stream (so it works
across processes). ``notification_delivery`` is the outbox for email and push: one row per
notification, channel and address, with attempts, last error and next attempt time, so a
failed delivery is retried and, after too many, parked where an operator sees it.
``notification_cursor`` stores how far the dispatcher has read ``roster_event``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
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

notifications = Table(
    "notification",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False, comment="app_user.id"),
    Column("event_id", BigInteger, nullable=False, comment="roster_event.id"),
    Column("kind", String(32), nullable=False, comment="shift_open | pickup_requested | ..."),
    Column("title", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("data", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("event_id", "user_id", "kind", name="uq_notification_event_user_kind"),
    Index("ix_notification_user_id", "user_id", "id"),
)

deliveries = Table(
    "notification_delivery",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("notification_id", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False, comment="email | push"),
    Column("target", String(512), nullable=False, comment="email address or device token"),
    Column(
        "status",
        String(16),
        nullable=False,
        comment="pending | sending | retrying | sent | parked | dropped",
    ),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint(
        "notification_id", "channel", "target", name="uq_notification_delivery_target"
    ),
    Index("ix_notification_delivery_status_next", "status", "next_attempt_at"),
)

device_tokens = Table(
    "notification_device",
    metadata,
    Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False, comment="app_user.id"),
    Column("token", String(512), nullable=False, unique=True, comment="FCM registration token"),
    Column("platform", String(16), nullable=True, comment="android | ios | web"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_notification_device_user", "user_id"),
)

cursors = Table(
    "notification_cursor",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
