"""``harmony serve --demo``: the Epic, athena and Google sandboxes, seeded and registered.

Each sandbox runs on its own port in this process and is registered (or re-pointed, since
ports change between runs) as ``epic-demo``, ``athena-demo`` and ``google-demo``; the sync
scheduler then pulls their availability like any real integration. Google also opens a push
channel to ``/webhooks/google-demo``, so a change in the sandbox calendar triggers a sync.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from adapters.sandbox_server import BackgroundServer
from hub.integrations import IntegrationRegistry, UnknownIntegration
from hub.settings import Settings

log = logging.getLogger(__name__)

DEMO_INTERVAL_SECONDS = 300
EPIC_CLIENT_ID = "harmony-demo"


@dataclass
class DemoSource:
    name: str
    source_type: str
    base_url: str
    credentials: dict[str, Any]
    options: dict[str, Any]
    server: BackgroundServer
    webhook_secret: str | None = None


def _epic() -> DemoSource:
    from adapters.epic.auth import generate_key, public_jwks
    from adapters.epic.sandbox import FHIR_BASE, create_sandbox
    from adapters.epic.sandbox_state import EpicSandboxState

    state = EpicSandboxState()
    state.seed_demo(days=14)
    patient = next(iter(state.patients))
    pem, kid = generate_key()
    state.register_client(EPIC_CLIENT_ID, public_jwks(pem, kid))
    server = BackgroundServer(create_sandbox(state)).start()
    credentials = {"client_id": EPIC_CLIENT_ID, "private_key_pem": pem, "kid": kid}
    options = {"days_ahead": 14, "default_patient": patient}
    return DemoSource("epic-demo", "epic", f"{server.url}{FHIR_BASE}", credentials, options, server)


def _athena() -> DemoSource:
    from adapters.athena.sandbox import create_sandbox
    from adapters.athena.sandbox_state import AthenaSandboxState

    state = AthenaSandboxState()
    state.seed_demo(days=14)
    server = BackgroundServer(create_sandbox(state)).start()
    credentials = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}
    options = {"practiceid": state.practiceid, "days_ahead": 14, "default_patientid": "1"}
    return DemoSource("athena-demo", "athena", server.url, credentials, options, server)


def _google() -> DemoSource:
    from adapters.google.sandbox import create_sandbox
    from adapters.google.sandbox_state import GoogleSandboxState

    state = GoogleSandboxState()
    calendars = state.seed_demo(days=14)
    server = BackgroundServer(create_sandbox(state)).start()
    options = {"calendars": calendars, "days_ahead": 14}
    return DemoSource(
        "google-demo",
        "google",
        server.url,
        state.credentials(),
        options,
        server,
        webhook_secret=secrets.token_urlsafe(24),
    )


def start_demo_sources(engine: Engine, settings: Settings) -> list[DemoSource]:
    """Start and register every sandbox; a sandbox that fails to start is logged, not fatal."""
    registry = IntegrationRegistry(engine, settings)
    sources: list[DemoSource] = []
    for make in (_epic, _athena, _google):
        try:
            source = make()
        except Exception:
            log.exception("demo sandbox %s did not start", make.__name__.strip("_"))
            continue
        fields = {
            "base_url": source.base_url,
            "credentials": source.credentials,
            "options": source.options,
            "webhook_secret": source.webhook_secret,
        }
        try:
            registry.update(source.name, enabled=True, **fields)
        except UnknownIntegration:
            registry.add(
                source.name,
                source.source_type,
                sync_interval_seconds=DEMO_INTERVAL_SECONDS,
                owner="demo",
                **fields,  # type: ignore[arg-type]
            )
        log.info("demo %s sandbox on %s", source.source_type, source.base_url)
        sources.append(source)
    return sources


def open_google_push(sources: list[DemoSource], engine: Engine, settings: Settings) -> None:
    """Ask the Google sandbox to push calendar changes to our webhook (API must be up)."""
    from hub.sources import make_source_client

    registry = IntegrationRegistry(engine, settings)
    for source in sources:
        if source.source_type != "google" or not source.webhook_secret:
            continue
        client: Any = make_source_client(registry.config(source.name))
        address = f"{settings.webhook_base_url()}/webhooks/{source.name}"
        try:
            for calendar in source.options["calendars"]:
                client.watch(calendar["calendar_id"], address, source.webhook_secret)
        except Exception as exc:
            log.warning("could not open Google push channels: %s", exc)
        finally:
            client.close()


def stop_demo_sources(sources: list[DemoSource]) -> None:
    for source in sources:
        source.server.stop()


class GmedReceiver:
    """GMED's inbound side for the demo: ACKs every SIU Harmony sends and logs it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def store(self, received: Any, ack: bytes | None) -> Any:
        from mllp_listener.sink import StoreOutcome

        self.received.append(received.raw)
        header = received.header
        log.info("GMED sandbox received %s", header.message_type if header else "a message")
        return StoreOutcome()


async def start_gmed_receiver(host: str) -> tuple[Any, int]:
    """An MLLP server on a free port standing in for GMED; returns it and its port."""
    from adapters.sandbox_server import free_port
    from mllp_listener.server import MLLPServer

    port = free_port()
    server = MLLPServer(
        GmedReceiver(), host=host, port=port, accepted_types=("SIU^S12", "SIU^S14", "SIU^S15")
    )
    await server.start()
    return server, port
