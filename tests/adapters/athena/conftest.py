"""A served athena sandbox and a client that talks to it over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from adapters.athena.client import AthenaClient, make_client
from adapters.athena.sandbox import create_sandbox
from adapters.athena.sandbox_state import AthenaSandboxState
from adapters.http import RetryPolicy
from adapters.sandbox_server import serving
from mappings.model import MappingSet
from tests.adapters.athena.athena_helpers import athena_mapping, config


@dataclass
class Served:
    state: AthenaSandboxState
    url: str
    sleeps: list[float]
    clients: list[AthenaClient]

    def client(self, *, attempts: int = 3, timeout: float = 5.0, **options: object) -> AthenaClient:
        policy = RetryPolicy(max_attempts=attempts, base_delay=0.001, max_delay=5.0)
        client = make_client(
            config(self.url, **options), policy=policy, timeout=timeout, sleep=self.sleeps.append
        )
        self.clients.append(client)
        return client


@pytest.fixture
def mapping() -> MappingSet:
    return athena_mapping()


@pytest.fixture
def served() -> Iterator[Served]:
    state = AthenaSandboxState()
    with serving(create_sandbox(state)) as url:
        served = Served(state, url, [], [])
        yield served
        for client in served.clients:
            client.close()
