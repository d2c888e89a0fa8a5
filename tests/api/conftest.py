"""An API over a fresh database, with a hub runtime (bus, syncs, booking) behind it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from hub.runtime import HubRuntime
from hub.settings import Settings


@pytest.fixture
def runtime(engine: Engine) -> Iterator[HubRuntime]:
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    hub = HubRuntime(settings, engine)
    yield hub
    hub.stop()


@pytest.fixture
def client(runtime: HubRuntime) -> Iterator[TestClient]:
    app = create_app(runtime.settings, engine=runtime.engine, runtime=runtime)
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {runtime.settings.dev_token}"
        yield test_client
