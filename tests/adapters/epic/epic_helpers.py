"""Shared inputs for the Epic adapter tests: one signing key, configs, a mapping set."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from adapters.contract import IntegrationConfig, envelope
from adapters.epic.auth import generate_key
from adapters.epic.sandbox import FHIR_BASE
from adapters.http import RetryPolicy
from mappings.defaults import load_default
from mappings.model import MappingSet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "fhir"
SHARED_FIXTURES = Path("/work/shared/fixtures/fhir")
CLIENT_ID = "harmony-backend"
INTEGRATION = "epic-test"
FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=5.0)


@cache
def signing_key() -> tuple[str, str]:
    """One RSA key for the whole run: generating 2048-bit keys is slow."""
    return generate_key()


def epic_config(server_url: str, **options: Any) -> IntegrationConfig:
    pem, kid = signing_key()
    return IntegrationConfig(
        name=INTEGRATION,
        source_type="epic",
        base_url=f"{server_url}{FHIR_BASE}",
        credentials={"client_id": CLIENT_ID, "private_key_pem": pem, "kid": kid},
        options=options,
    )


def epic_mapping(timezone: str | None = None) -> MappingSet:
    content = load_default("epic")
    assert content is not None
    if timezone:
        content = content.model_copy(update={"timezone": timezone})
    return MappingSet(source="epic", version=1, content=content)


def wrap(kind: str, body: Any, **context: Any) -> bytes:
    """A stored page as the client would have written it."""
    config = IntegrationConfig(INTEGRATION, "epic", "https://epic.example/api/FHIR/R4")
    return envelope(config, kind, "GET test", body, context).to_bytes()


class Sleeps:
    """Records the waits RetryingHttp asks for instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
