"""Webhooks from API sources: checked, de-duplicated, stored, then acted on.

Epic and athena style (and anything else that can sign): the sender signs
``<timestamp>.<raw body>`` with HMAC-SHA256 and the integration's webhook secret, and sends
``X-Harmony-Timestamp`` (Unix seconds) and ``X-Harmony-Signature: sha256=<hex>``. A bad
signature or a timestamp outside the window is refused before anything is stored. The body
is ``{"id": ..., "type": "booked" | "cancelled" | "schedule-updated", "resource": {...}}``;
an event id seen before is acknowledged and ignored. An event that carries its resource is
stored and normalized at once; one that does not triggers a resync of the integration.

Google push notifications carry no body and no signature; they are checked by the channel
token (the integration's webhook secret) and turn into an incremental sync.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from adapters.contract import FetchedPage, envelope
from hub import message_store
from hub.integrations import IntegrationRegistry
from hub.message_store import INBOUND, utcnow
from hub.settings import Settings
from hub.sync import page_message
from hub.tables import webhook_events

EVENT_TYPES = frozenset({"booked", "cancelled", "schedule-updated"})
GOOGLE_STATES = frozenset({"sync", "exists", "not_exists"})


class WebhookRefused(Exception):
    """The request is not accepted; ``status`` is the HTTP answer (401 or 400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    status: str
    """``accepted``, ``duplicate`` or ``ignored``."""
    message_id: int | None = None
    resync: bool = False


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value a sender computes (used by the sandboxes and tests too)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def check_signature(
    secret: str | None,
    headers: Mapping[str, str],
    body: bytes,
    window_seconds: int,
    now: float | None = None,
) -> None:
    if not secret:
        raise WebhookRefused(401, "this integration has no webhook secret: webhooks are refused")
    timestamp = headers.get("x-harmony-timestamp", "")
    signature = headers.get("x-harmony-signature", "")
    if not timestamp or not signature:
        raise WebhookRefused(401, "missing X-Harmony-Timestamp or X-Harmony-Signature")
    try:
        sent = float(timestamp)
    except ValueError:
        raise WebhookRefused(
            401, f"X-Harmony-Timestamp {timestamp!r} is not Unix seconds"
        ) from None
    age = (time.time() if now is None else now) - sent
    if abs(age) > window_seconds:
        raise WebhookRefused(
            401, f"timestamp is {age:.0f} s off; only {window_seconds} s are accepted"
        )
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise WebhookRefused(401, "signature does not match the body")


class WebhookReceiver:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        publish: Callable[[str, list[int]], None],
        resync: Callable[[str], Any],
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.publish = publish
        self.resync = resync
        self.registry = IntegrationRegistry(engine, settings)

    def receive(self, name: str, headers: Mapping[str, str], body: bytes) -> WebhookOutcome:
        """``headers`` with lower-case names. Raises UnknownIntegration or WebhookRefused."""
        config = self.registry.config(name)
        secret = self.registry.webhook_secret(name)
        if config.source_type == "google":
            return self._google(name, secret, headers)
        check_signature(secret, headers, body, self.settings.webhook_window_seconds)
        event = _parse_event(body)
        page = envelope(config, "webhook", f"webhook {event['id']}", event)
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(webhook_events).values(
                            integration=name, event_id=str(event["id"]), received_at=utcnow()
                        )
                    )
            except IntegrityError:
                return WebhookOutcome("duplicate")
            stored = message_store.store_in(conn, page_message(name, FetchedPage(page, {})))
        self.publish(INBOUND, [stored.id])
        resync = event["type"] == "schedule-updated" or not event.get("resource")
        if resync:
            self.resync(name)
        return WebhookOutcome("accepted", stored.id, resync)

    def _google(self, name: str, secret: str | None, headers: Mapping[str, str]) -> WebhookOutcome:
        token = headers.get("x-goog-channel-token", "")
        if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
            raise WebhookRefused(401, "X-Goog-Channel-Token does not match this integration")
        state = headers.get("x-goog-resource-state", "")
        if state not in GOOGLE_STATES:
            raise WebhookRefused(400, f"unknown X-Goog-Resource-State {state!r}")
        if state == "sync":
            return WebhookOutcome("ignored")
        self.resync(name)
        return WebhookOutcome("accepted", resync=True)


def _parse_event(body: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WebhookRefused(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(event, dict) or not event.get("id"):
        raise WebhookRefused(400, "body must be a JSON object with an 'id'")
    if event.get("type") not in EVENT_TYPES:
        raise WebhookRefused(
            400, f"event type {event.get('type')!r} is not one of {', '.join(sorted(EVENT_TYPES))}"
        )
    return event
