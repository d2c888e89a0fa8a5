"""A seeded Google sandbox on a real port and a client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.google.client import GoogleCalendarClient, make_client
from adapters.google.sandbox import create_sandbox
from adapters.google.sandbox_state import GoogleSandboxState
from adapters.http import RetryPolicy
from adapters.sandbox_server import serving
from mappings.model import MappingSet
from tests.adapters.google.google_inputs import config, google_mapping

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=5.0)


@dataclass
class Sandbox:
    state: GoogleSandboxState
    url: str
    calendars: list[dict[str, Any]]

    def client(self, policy: RetryPolicy = FAST, **options: Any) -> GoogleCalendarClient:
        merged = {"calendars": self.calendars, "days_ahead": 7, **options}
        return make_client(config(self.url, self.state.credentials(), **merged), policy=policy)


@pytest.fixture
def mapping() -> MappingSet:
    return google_mapping()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    state = GoogleSandboxState()
    calendars = state.seed_demo(datetime.now(UTC) - timedelta(hours=1))
    with serving(create_sandbox(state)) as url:
        yield Sandbox(state, url, calendars)
