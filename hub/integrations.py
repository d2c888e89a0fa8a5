"""The integrations registry: which sources feed the hub, with their secrets sealed at rest.

Credentials and webhook secrets are stored encrypted and leave this module only as an
``IntegrationConfig`` for the adapter (or the secret for a signature check); the views the
API and CLI show never carry them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from adapters.contract import IntegrationConfig
from hub.crypto import SecretBox
from hub.message_store import as_utc, utcnow
from hub.settings import Settings
from hub.tables import integrations

SOURCE_TYPES = ("epic", "athena", "google")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class IntegrationError(ValueError):
    """A registry request that cannot be carried out as asked (unknown name, bad field)."""


class UnknownIntegration(IntegrationError):
    pass


@dataclass(frozen=True, slots=True)
class IntegrationView:
    """What operators see: everything but the secrets."""

    name: str
    source_type: str
    base_url: str
    owner: str | None
    options: dict[str, Any]
    sync_interval_seconds: int
    enabled: bool
    has_credentials: bool
    has_webhook_secret: bool
    last_sync_at: datetime | None
    last_success_at: datetime | None
    next_sync_at: datetime | None
    running: bool
    consecutive_failures: int
    last_error: str | None
    pages_stored: int
    health: str

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in self.__slots__:
            value = getattr(self, key)
            out[key] = value.isoformat() if isinstance(value, datetime) else value
        return out


def health_of(row: Row[Any], settings: Settings, now: datetime) -> str:
    """``disabled``, ``never-synced``, ``ok``, ``failing`` or ``circuit-open``."""
    if not row.enabled:
        return "disabled"
    if row.consecutive_failures >= settings.sync_failures_to_open_circuit:
        next_at = row.next_sync_at
        if next_at is not None and as_utc(next_at) > now:
            return "circuit-open"
    if row.consecutive_failures:
        return "failing"
    return "ok" if row.last_success_at is not None else "never-synced"


class IntegrationRegistry:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._box = SecretBox(settings.secret_key)

    def add(
        self,
        name: str,
        source_type: str,
        base_url: str,
        *,
        credentials: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        owner: str | None = None,
        sync_interval_seconds: int | None = None,
        webhook_secret: str | None = None,
        enabled: bool = True,
    ) -> IntegrationView:
        if not NAME.match(name):
            raise IntegrationError(
                f"integration name {name!r}: use lowercase letters, digits and '-' (max 63)"
            )
        if source_type not in SOURCE_TYPES:
            raise IntegrationError(
                f"source type {source_type!r} is not one of {', '.join(SOURCE_TYPES)}"
            )
        now = utcnow()
        values = {
            "name": name,
            "source_type": source_type,
            "base_url": base_url.rstrip("/"),
            "owner": owner,
            "credentials": self._box.seal(credentials) if credentials else None,
            "webhook_secret": self._box.seal(webhook_secret) if webhook_secret else None,
            "options": options or {},
            "sync_interval_seconds": self._interval(sync_interval_seconds),
            "enabled": 1 if enabled else 0,
            "consecutive_failures": 0,
            "pages_stored": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(integrations).values(**values))
        except IntegrityError:
            raise IntegrationError(f"an integration named {name!r} already exists") from None
        return self.get(name)

    def update(self, name: str, **changes: Any) -> IntegrationView:
        """Change any of: base_url, credentials, options, owner, sync_interval_seconds,
        webhook_secret, enabled. Secrets given are sealed; ``None`` leaves a field alone."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        for key, value in changes.items():
            if value is None:
                continue
            if key == "credentials" or key == "webhook_secret":
                values[key] = self._box.seal(value)
            elif key == "sync_interval_seconds":
                values[key] = self._interval(value)
            elif key == "enabled":
                values[key] = 1 if value else 0
                if value:
                    values["consecutive_failures"] = 0
                    values["next_sync_at"] = None
            elif key == "base_url":
                values[key] = str(value).rstrip("/")
            elif key in ("options", "owner"):
                values[key] = value
            else:
                raise IntegrationError(f"cannot change {key!r} of an integration")
        with self.engine.begin() as conn:
            done = conn.execute(
                update(integrations).where(integrations.c.name == name).values(**values)
            )
        if done.rowcount == 0:
            raise UnknownIntegration(f"no integration named {name!r}")
        return self.get(name)

    def remove(self, name: str) -> None:
        with self.engine.begin() as conn:
            done = conn.execute(delete(integrations).where(integrations.c.name == name))
        if done.rowcount == 0:
            raise UnknownIntegration(f"no integration named {name!r}")

    def get(self, name: str) -> IntegrationView:
        return self._view(self._row(name))

    def list(self) -> list[IntegrationView]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(integrations).order_by(integrations.c.name)).all()
        return [self._view(row) for row in rows]

    def config(self, name: str) -> IntegrationConfig:
        """Decrypted, for the adapter only."""
        row = self._row(name)
        return IntegrationConfig(
            name=row.name,
            source_type=row.source_type,
            base_url=row.base_url,
            credentials=self._box.open(row.credentials) if row.credentials else {},
            options=dict(row.options or {}),
        )

    def webhook_secret(self, name: str) -> str | None:
        row = self._row(name)
        return str(self._box.open(row.webhook_secret)) if row.webhook_secret else None

    def _row(self, name: str) -> Row[Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(integrations).where(integrations.c.name == name)).first()
        if row is None:
            raise UnknownIntegration(f"no integration named {name!r}")
        return row

    def _interval(self, seconds: int | None) -> int:
        value = self.settings.sync_interval_seconds if seconds is None else int(seconds)
        if value < 1:
            raise IntegrationError("sync interval must be at least 1 second")
        return value

    def _view(self, row: Row[Any]) -> IntegrationView:
        return IntegrationView(
            name=row.name,
            source_type=row.source_type,
            base_url=row.base_url,
            owner=row.owner,
            options=dict(row.options or {}),
            sync_interval_seconds=row.sync_interval_seconds,
            enabled=bool(row.enabled),
            has_credentials=row.credentials is not None,
            has_webhook_secret=row.webhook_secret is not None,
            last_sync_at=_maybe(row.last_sync_at),
            last_success_at=_maybe(row.last_success_at),
            next_sync_at=_maybe(row.next_sync_at),
            running=row.running_since is not None,
            consecutive_failures=row.consecutive_failures,
            last_error=row.last_error,
            pages_stored=row.pages_stored,
            health=health_of(row, self.settings, utcnow()),
        )


def _maybe(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)
