"""Notification outbox tables (filled in with the notification service)."""

from __future__ import annotations

from sqlalchemy import MetaData

metadata = MetaData()
