"""Push through the FCM HTTP v1 sandbox on a real port: tokens, quotas, errors, dead devices."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from adapters.sandbox_server import serving
from hub.message_store import as_utc, utcnow
from hub.notifications import inbox
from hub.notifications.deliverer import Deliverer
from hub.notifications.dispatcher import Dispatcher
from hub.notifications.errors import DeliveryError
from hub.notifications.fcm import FcmClient, ServiceAccount
from hub.notifications.fcm_sandbox import FcmSandboxState, create_fcm_sandbox
from hub.notifications.outbox import Channels, OutboxPolicy
from hub.notifications.service import NotificationService
from hub.notifications.tables import deliveries, device_tokens
from hub.settings import Settings
from tests.hub.notifications.world import World

POLICY = OutboxPolicy(max_attempts=5, base_seconds=0.05, max_seconds=0.2)


@pytest.fixture
def fcm() -> Iterator[tuple[FcmSandboxState, str]]:
    state = FcmSandboxState(project_id="harmony-test")
    with serving(create_fcm_sandbox(state)) as base:
        yield state, base


@pytest.fixture
def client(fcm: tuple[FcmSandboxState, str]) -> Iterator[FcmClient]:
    state, base = fcm
    account = ServiceAccount.from_json(state.service_account(f"{base}/token"))
    push = FcmClient("harmony-test", account, endpoint=base)
    yield push
    push.close()


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def test_a_message_reaches_the_device_with_a_cached_token(
    fcm: tuple[FcmSandboxState, str], client: FcmClient
) -> None:
    state, _ = fcm
    name = client.send("device-1", "Open shift", "Mon 11 Mar", {"event_id": 7, "shift_ids": [1]})
    client.send("device-2", "Open shift", "Tue 12 Mar")
    assert name.startswith("projects/harmony-test/messages/")
    first = state.sent[0].message
    assert first == {
        "token": "device-1",
        "notification": {"title": "Open shift", "body": "Mon 11 Mar"},
        "data": {"event_id": "7", "shift_ids": "[1]"},
    }
    assert state.token_requests == 1  # the second send reused the access token


def test_a_revoked_access_token_is_refreshed_once(
    fcm: tuple[FcmSandboxState, str], client: FcmClient
) -> None:
    state, _ = fcm
    client.send("device-1", "a", "b")
    state.revoke_tokens()
    client.send("device-1", "c", "d")
    assert state.token_requests == 2 and len(state.sent) == 2
    assert state.send_requests == 3  # the refused one, then the retry with a fresh token


def test_a_service_account_google_does_not_know_is_refused(
    fcm: tuple[FcmSandboxState, str],
) -> None:
    _, base = fcm
    stranger = FcmSandboxState(project_id="harmony-test").service_account(f"{base}/token")
    push = FcmClient("harmony-test", ServiceAccount.from_json(stranger), endpoint=base)
    try:
        with pytest.raises(DeliveryError, match="invalid_grant") as refused:
            push.send("device-1", "a", "b")
    finally:
        push.close()
    assert refused.value.permanent


def test_the_sandbox_refuses_what_fcm_refuses(fcm: tuple[FcmSandboxState, str]) -> None:
    state, base = fcm
    token = httpx.post(f"{base}/token", data={"grant_type": "client_credentials"})
    assert token.status_code == 400 and token.json()["error"] == "unsupported_grant_type"
    unauthenticated = httpx.post(f"{base}/v1/projects/harmony-test/messages:send", json={})
    assert unauthenticated.json()["error"]["status"] == "UNAUTHENTICATED"
    account = ServiceAccount.from_json(state.service_account(f"{base}/token"))
    push = FcmClient("harmony-test", account, endpoint=base)
    try:
        bearer = {"Authorization": f"Bearer {push.tokens.get()}"}
    finally:
        push.close()
    bad = httpx.post(
        f"{base}/v1/projects/harmony-test/messages:send",
        json={"message": {"token": "d", "data": {"count": 3}}},
        headers=bearer,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["errorCode"] == "INVALID_ARGUMENT"
    assert "message.data[0].value" in bad.json()["error"]["message"]


def _push_setup(world: World, tokens: list[str], events: int = 1) -> None:
    ann = world.doctor("Ann Ames")
    for token in tokens:
        inbox.register_device(world.engine, ann.user_id, token, "android")
    for _ in range(events):
        world.event("publish", [], [ann], actor="admin1")
    Dispatcher(world.engine, Channels(push=True)).run_once()


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(deliveries).order_by(deliveries.c.id)).all()


def test_quota_exceeded_waits_as_long_as_retry_after_says(
    world: World, fcm: tuple[FcmSandboxState, str], client: FcmClient
) -> None:
    state, _ = fcm
    _push_setup(world, ["device-1"])
    state.fail_next(429, retry_after="30")
    started = utcnow()
    assert Deliverer(world.engine, POLICY, push=client).run_once() == 1
    [row] = _rows(world.engine)
    assert row.status == "retrying" and row.attempts == 1
    assert "429 RESOURCE_EXHAUSTED QUOTA_EXCEEDED" in row.last_error
    # the backoff alone would allow a retry after 0.05 s: the server's 30 s win
    assert as_utc(row.next_attempt_at) >= started + timedelta(seconds=29)
    assert Deliverer(world.engine, POLICY, push=client).run_once() == 0
    assert state.sent == []


def test_a_server_error_then_success(
    world: World, fcm: tuple[FcmSandboxState, str], client: FcmClient
) -> None:
    state, _ = fcm
    _push_setup(world, ["device-1"])
    state.fail_next(500)
    deliverer = Deliverer(world.engine, POLICY, push=client)
    deliverer.run_once()
    assert _rows(world.engine)[0].status == "retrying"
    assert "500 INTERNAL" in _rows(world.engine)[0].last_error
    deadline = time.monotonic() + 5
    while _rows(world.engine)[0].status != "sent":
        assert time.monotonic() < deadline
        time.sleep(0.05)
        deliverer.run_once()
    assert _rows(world.engine)[0].attempts == 2
    [sent] = state.sent
    assert sent.message["token"] == "device-1"
    assert sent.message["data"]["event_kind"] == "publish"


def test_an_unregistered_token_is_forgotten_and_the_others_still_get_theirs(
    world: World, fcm: tuple[FcmSandboxState, str], client: FcmClient
) -> None:
    state, _ = fcm
    _push_setup(world, ["gone-device", "live-device"], events=2)
    state.unregister("gone-device")
    Deliverer(world.engine, POLICY, push=client, batch=1).run_once()  # the first: gone-device

    rows = _rows(world.engine)
    by_target = {(r.target, r.status) for r in rows}
    assert by_target == {
        ("gone-device", "dropped"),
        ("live-device", "pending"),
    }
    gone = [r.last_error for r in rows if r.target == "gone-device"]
    # the one that was tried carries FCM's answer; the other was dropped without a try
    assert "404 NOT_FOUND UNREGISTERED" in gone[0] and gone[1] == "device token unregistered"
    with world.engine.connect() as conn:
        left = conn.execute(select(device_tokens.c.token)).scalars().all()
    assert left == ["live-device"]

    Deliverer(world.engine, POLICY, push=client).run_once()
    assert [s.message["token"] for s in state.sent] == ["live-device", "live-device"]
    assert {r.status for r in _rows(world.engine) if r.target == "live-device"} == {"sent"}


def test_the_service_built_from_settings_pushes_to_registered_devices(
    world: World, fcm: tuple[FcmSandboxState, str], tmp_path: Path
) -> None:
    state, base = fcm
    credentials = tmp_path / "service-account.json"
    credentials.write_text(json.dumps(state.service_account(f"{base}/token")))
    settings = Settings(
        database_url=world.engine.url.render_as_string(hide_password=False),
        fcm_project_id="harmony-test",
        fcm_endpoint=base,
        fcm_credentials_file=credentials,
        notification_poll_seconds=0.1,
    )
    ann = world.doctor("Ann Ames")
    inbox.register_device(world.engine, ann.user_id, "device-9", "ios")
    service = NotificationService(world.engine, settings).start()
    try:
        world.event("publish", [], [ann], actor="admin1")
        deadline = time.monotonic() + 5
        while not state.sent:
            assert time.monotonic() < deadline, "no push arrived"
            time.sleep(0.05)
    finally:
        service.stop()
    assert state.sent[0].message["token"] == "device-9"
    assert state.sent[0].message["notification"]["title"] == "Roster published"
