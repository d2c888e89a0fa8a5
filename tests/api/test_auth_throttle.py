"""Failed sign-ins are limited per username and per client address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from hub.settings import Settings
from hub.users import LoginThrottle, create_user


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_window_retry_after_and_reset() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window=60, clock=clock)
    for second in (0, 10, 20):
        clock.now = second
        assert throttle.retry_after("Ann", "1.1.1.1") == 0
        throttle.failed("Ann", "1.1.1.1")
    assert throttle.retry_after("ann", None) == 40  # usernames compare case-insensitively
    assert throttle.retry_after("bob", "1.1.1.1") == 40  # the address is limited too
    assert throttle.retry_after("bob", "2.2.2.2") == 0
    clock.now = 60.5  # the first failure aged out
    assert throttle.retry_after("ann", "1.1.1.1") == 0
    throttle.succeeded("ann")
    clock.now = 61
    throttle.failed("ann", "3.3.3.3")
    assert throttle.retry_after("ann", "3.3.3.3") == 0  # success cleared the username


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        login_max_failures=3,
        login_failure_window_seconds=600,
        trusted_proxies=["127.0.0.1"],
    )
    create_user(engine, "dr.lee", roles={"physician"}, password="right")
    create_user(engine, "nurse", roles={"staff"}, password="right")
    with TestClient(create_app(settings, engine=engine), client=("127.0.0.1", 1)) as test_client:
        yield test_client


def login(client: TestClient, user: str, password: str, address: str) -> int:
    answer = client.post(
        "/api/auth/token",
        json={"username": user, "password": password},
        headers={"X-Forwarded-For": address},
    )
    return answer.status_code


def test_api_answers_429_with_retry_after(client: TestClient) -> None:
    assert login(client, "dr.lee", "wrong", "198.51.100.1") == 401
    assert login(client, "dr.lee", "right", "198.51.100.1") == 200  # success resets the user
    for _ in range(3):
        assert login(client, "dr.lee", "wrong", "198.51.100.2") == 401
    limited = client.post(
        "/api/auth/token",
        json={"username": "dr.lee", "password": "right"},
        headers={"X-Forwarded-For": "198.51.100.3"},
    )
    assert limited.status_code == 429  # even the right password, from elsewhere
    assert 590 <= int(limited.headers["Retry-After"]) <= 600
    # the address that guessed is limited for other users too; other addresses are not
    assert login(client, "nurse", "right", "198.51.100.2") == 429
    assert login(client, "nurse", "right", "198.51.100.4") == 200
    # unknown users count like known ones (no hint which usernames exist)
    for _ in range(3):
        assert login(client, "ghost", "x", "198.51.100.5") == 401
    assert login(client, "ghost", "x", "198.51.100.6") == 429
