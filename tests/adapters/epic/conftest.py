"""A seeded Epic sandbox on a real port, with our client registered by its public JWKS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from adapters.contract import IntegrationConfig
from adapters.epic.auth import public_jwks
from adapters.epic.client import EpicClient, make_client
from adapters.epic.sandbox import create_sandbox
from adapters.epic.sandbox_state import EpicSandboxState
from adapters.sandbox_server import serving
from mappings.model import MappingSet
from tests.adapters.epic.epic_helpers import (
    CLIENT_ID,
    FAST,
    Sleeps,
    epic_config,
    epic_mapping,
    signing_key,
)


@dataclass
class Sandbox:
    state: EpicSandboxState
    url: str
    schedules: list[str]

    def config(self, **options: object) -> IntegrationConfig:
        return epic_config(self.url, **options)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    state = EpicSandboxState()
    # seeded from today in UTC, the day the sync window starts on, so every seeded slot is in
    # the window whatever the hour (Chicago's "today" is a day behind UTC's in its evening)
    schedules = state.seed_demo(days=14, start=datetime.now(UTC).date())
    pem, kid = signing_key()
    state.register_client(CLIENT_ID, public_jwks(pem, kid))
    with serving(create_sandbox(state)) as url:
        yield Sandbox(state, url, schedules)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sandbox: Sandbox, sleeps: Sleeps) -> Iterator[EpicClient]:
    epic = make_client(sandbox.config(page_size=10), policy=FAST, sleep=sleeps)
    yield epic
    epic.close()


@pytest.fixture
def mapping() -> MappingSet:
    return epic_mapping()
