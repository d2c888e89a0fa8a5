"""The notification API: my list and read marks, my devices, the live stream, the operators'
outbox view."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.sandbox_server import serving
from api.app import create_app
from hub.notifications import outbox
from hub.notifications.deliverer import Deliverer
from hub.notifications.dispatcher import Dispatcher
from hub.notifications.outbox import Channels, OutboxPolicy
from hub.notifications.service import NotificationService
from hub.runtime import HubRuntime
from tests.hub.notifications.world import Doctor, World

PASSWORD = "correct horse battery"


@pytest.fixture
def world(engine: Engine) -> World:
    return World(engine)


def _bearer(client: TestClient | httpx.Client, username: str) -> dict[str, str]:
    answer = client.post(
        "/api/auth/token",
        json={"username": username, "password": PASSWORD},
        headers={"Authorization": ""},
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _published(world: World, doctor: Doctor, times: int) -> None:
    for _ in range(times):
        world.event("publish", [], [doctor], actor="admin1")
    Dispatcher(world.engine, Channels(email=True)).run_once()


def test_my_list_unread_count_and_read_marks(client: TestClient, world: World) -> None:
    ann = world.doctor("Ann Ames", password=PASSWORD)
    bob = world.doctor("Bob Burr", password=PASSWORD)
    _published(world, ann, 3)
    _published(world, bob, 1)
    me = _bearer(client, ann.username)

    listed = client.get("/api/notifications", headers=me).json()
    assert listed["unread"] == 3 and len(listed["items"]) == 3
    newest, middle, oldest = (item["id"] for item in listed["items"])
    assert newest > middle > oldest
    assert listed["items"][0]["kind"] == "roster_published" and not listed["items"][0]["read"]

    assert client.post(f"/api/notifications/{middle}/read", headers=me).json() == {"unread": 2}
    unread = client.get("/api/notifications", params={"unread": True}, headers=me).json()
    assert [i["id"] for i in unread["items"]] == [newest, oldest]
    page = client.get("/api/notifications", params={"before": middle}, headers=me).json()
    assert [i["id"] for i in page["items"]] == [oldest]

    bobs = client.get("/api/notifications", headers=_bearer(client, bob.username)).json()
    theirs = bobs["items"][0]["id"]
    assert client.post(f"/api/notifications/{theirs}/read", headers=me).status_code == 404

    everything = client.post("/api/notifications/read", json={}, headers=me).json()
    assert everything == {"marked": 2, "unread": 0}
    assert client.get("/api/notifications/unread-count", headers=me).json() == {"unread": 0}
    assert client.get("/api/notifications/unread-count").status_code == 403  # a service token


def test_my_push_devices(client: TestClient, world: World) -> None:
    ann = world.doctor("Ann Ames", password=PASSWORD)
    bob = world.doctor("Bob Burr", password=PASSWORD)
    as_ann, as_bob = _bearer(client, ann.username), _bearer(client, bob.username)
    token = "fcm:APA91b-example_token"
    body = {"token": token, "platform": "android"}
    assert client.post("/api/notifications/devices", json=body, headers=as_ann).status_code == 201
    assert [
        d["token"] for d in client.get("/api/notifications/devices", headers=as_ann).json()
    ] == [token]
    # the phone changes hands: the token now belongs to Bob only
    client.post("/api/notifications/devices", json=body, headers=as_bob)
    assert client.get("/api/notifications/devices", headers=as_ann).json() == []
    assert client.delete(f"/api/notifications/devices/{token}", headers=as_ann).status_code == 404
    assert client.delete(f"/api/notifications/devices/{token}", headers=as_bob).status_code == 204
    assert client.get("/api/notifications/devices", headers=as_bob).json() == []
    too_long = {"token": "x" * 600}
    assert (
        client.post("/api/notifications/devices", json=too_long, headers=as_bob).status_code == 422
    )


def test_operators_see_parked_deliveries_and_replay_them(client: TestClient, world: World) -> None:
    ann = world.doctor("Ann Ames", email="ann@example.org", password=PASSWORD)
    _published(world, ann, 1)
    # no SMTP configured in this process: the delivery fails until it is parked
    policy = OutboxPolicy(max_attempts=1)
    Deliverer(world.engine, policy).run_once()
    view = client.get("/api/notifications/deliveries", params={"status": "parked"}).json()
    assert view["counts"] == {"parked": 1}
    [parked] = view["items"]
    assert parked["channel"] == "email" and "not configured" in parked["last_error"]
    assert parked["user_id"] == ann.user_id and parked["kind"] == "roster_published"

    as_ann = _bearer(client, ann.username)
    assert client.get("/api/notifications/deliveries", headers=as_ann).status_code == 403
    retried = client.post("/api/notifications/deliveries/retry", json={"ids": [parked["id"]]})
    assert retried.json() == {"retried": [parked["id"]]}
    assert outbox.delivery_counts(world.engine) == {"pending": 1}
    status = client.get("/api/notifications/dispatcher").json()
    assert status["lag"] == 0 and status["last_event_id"] == status["latest_event_id"] > 0


@pytest.fixture
def live(runtime: HubRuntime) -> Iterator[str]:
    """The API on a real port with this process's notification threads running fast."""
    settings = runtime.settings.model_copy(update={"notification_poll_seconds": 0.1})
    service = NotificationService(runtime.engine, settings).start()
    try:
        with serving(create_app(settings, engine=runtime.engine, runtime=runtime)) as base:
            yield base
    finally:
        service.stop()


def _next_notification(lines: Iterator[str]) -> dict[str, object]:
    event: dict[str, str] = {}
    for line in lines:
        if line.startswith(("id:", "event:", "data:")):
            key, _, value = line.partition(":")
            event[key] = value.strip()
        elif line == "" and event.get("event") == "notification":
            return {"id": int(event["id"]), **json.loads(event["data"])}
    raise AssertionError("the stream ended")


def test_the_stream_pushes_my_new_notifications_within_a_second(live: str, world: World) -> None:
    ann = world.doctor("Ann Ames", password=PASSWORD)
    bob = world.doctor("Bob Burr", password=PASSWORD)
    with httpx.Client(base_url=live, timeout=10) as http:
        me = _bearer(http, ann.username)
        with http.stream("GET", "/api/notifications/stream", headers=me) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            time.sleep(0.3)  # the stream has taken its starting point
            world.event("publish", [], [bob], actor="admin1")  # not mine
            started = time.monotonic()
            mine = world.event("publish", [], [ann], actor="admin1")
            pushed = _next_notification(lines)
            elapsed = time.monotonic() - started
        assert pushed["event_id"] == mine and pushed["kind"] == "roster_published"
        assert elapsed < 1.0, f"took {elapsed:.2f}s"

        # a client that reconnects with Last-Event-ID gets what it missed, and only that
        world.event("publish", [], [ann], actor="admin1")
        resume = {**me, "Last-Event-ID": str(pushed["id"])}
        with http.stream("GET", "/api/notifications/stream", headers=resume) as stream:
            missed = _next_notification(stream.iter_lines())
        assert int(str(missed["id"])) > int(str(pushed["id"]))
        assert missed["event_id"] != mine
