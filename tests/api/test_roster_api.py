"""The live roster over HTTP: snapshot, roles, the session cookie, and the SSE stream."""

from __future__ import annotations

import itertools
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from adapters.sandbox_server import serving
from api.app import create_app
from api.roster import broadcaster, streams_closing
from hub.db import make_engine
from hub.settings import Settings
from hub.tokens import ACCESS_SECONDS, TokenService
from hub.users import create_user
from scheduling import roster_events
from scheduling.tables import rosters
from tests.integration.harness import running
from tests.scheduling.live_roster_rows import (
    SseReader,
    add_physician,
    add_roster,
    add_shift,
    add_shift_type,
    now,
    swap,
    write_event,
)


@dataclass
class Roster:
    """A published roster with a day/night handoff at 07:00 UTC, and a draft beside it."""

    published: int
    draft: int
    ada: int
    bo: int
    cy: int
    night: int
    day: int
    neuro: int
    handoff: datetime


def seed(engine: Engine, handoff: datetime) -> Roster:
    ada, bo, cy = (add_physician(engine, n) for n in ("Dr Ada", "Dr Bo", "Dr Cy"))
    cardio = add_shift_type(engine, "CARD-CALL", "cardiology", "main")
    neuro = add_shift_type(engine, "NEURO-CALL", "neurology", "north", tz="America/New_York")
    published, draft = add_roster(engine, "June"), add_roster(engine, "July", status="draft")
    twelve = timedelta(hours=12)
    night = add_shift(engine, published, cardio, ada, handoff - twelve, handoff)
    day = add_shift(engine, published, cardio, bo, handoff, handoff + twelve)
    neuro_shift = add_shift(engine, published, neuro, cy, handoff - twelve, handoff + twelve)
    add_shift(engine, draft, cardio, cy, handoff - twelve, handoff + twelve)  # never shown
    return Roster(published, draft, ada, bo, cy, night, day, neuro_shift, handoff)


HANDOFF = datetime(2026, 6, 10, 7, 0, tzinfo=UTC)


def bearer(client: TestClient, engine: Engine, username: str, roles: set[str]) -> dict[str, str]:
    create_user(engine, username, roles=roles, password="pw")
    pair = client.post("/api/auth/token", json={"username": username, "password": "pw"}).json()
    return {"Authorization": f"Bearer {pair['access_token']}"}


def on_call(snapshot: dict, key: str) -> list[str | None]:
    group = next(g for g in snapshot["groups"] if g["key"] == key)
    return [e["physician"] for e in group["on_call"]]


def test_snapshot_at_instants_from_published_rosters_only(
    client: TestClient, engine: Engine
) -> None:
    r = seed(engine, HANDOFF)
    with engine.begin() as conn:
        write_event(conn, "publish", r.published, [], [])
        write_event(conn, "edit", r.draft, [], [r.cy])  # a draft's edit is nobody's business
    before = client.get("/api/roster/now", params={"at": "2026-06-10T06:59:00Z"}).json()
    assert on_call(before, "cardiology|main") == ["Dr Ada"]
    assert on_call(before, "neurology|north") == ["Dr Cy"]
    assert [e["physician"] for e in before["groups"][0]["upcoming"]] == ["Dr Bo"]
    assert [e["kind"] for e in before["recent"]] == ["publish"]
    assert before["last_event_id"] == 2
    at_seven = client.get("/api/roster/now", params={"at": "2026-06-10T03:00:00-04:00"}).json()
    assert on_call(at_seven, "cardiology|main") == ["Dr Bo"]
    assert at_seven["at"] == "2026-06-10T07:00:00Z"
    neuro = next(g for g in at_seven["groups"] if g["key"] == "neurology|north")
    assert neuro["on_call"][0]["end_local"] == "2026-06-10T15:00:00-04:00"
    short = client.get("/api/roster/now", params={"at": "2026-06-10T06:00:00Z", "hours": 0.5})
    assert short.json()["groups"][0]["upcoming"] == []
    later = client.get("/api/roster/now", params={"at": "2026-06-11T07:00:00Z"}).json()
    assert later["groups"] == []  # nothing published then
    assert client.get("/api/roster/now", params={"at": "2026-06-10T07:00"}).status_code == 422
    assert client.get("/api/roster/now", params={"at": "soon"}).status_code == 422
    assert client.get("/api/roster/now", params={"hours": 0}).status_code == 422
    assert client.get("/api/roster/now", params={"hours": 500}).status_code == 422
    assert client.get("/api/roster/now").status_code == 200  # now: nothing on call, still fine


def test_roles_can_read_patient_cannot_nobody_anonymous(client: TestClient, engine: Engine) -> None:
    seed(engine, HANDOFF)
    at = {"at": "2026-06-10T08:00:00Z"}
    for name, roles in [("cc", {"call_center"}), ("nurse", {"staff"}), ("doc", {"physician"})]:
        answer = client.get(
            "/api/roster/now", params=at, headers=bearer(client, engine, name, roles)
        )
        assert answer.status_code == 200, name
        assert on_call(answer.json(), "cardiology|main") == ["Dr Bo"]
    patient = bearer(client, engine, "pat", {"patient"})
    assert client.get("/api/roster/now", params=at, headers=patient).status_code == 403
    robot = bearer(client, engine, "robot", {"integration"})
    assert client.get("/api/roster/now", params=at, headers=robot).status_code == 403
    anonymous = client.get("/api/roster/now", params=at, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    stream = client.get("/api/roster/stream", headers={"Authorization": ""})
    assert stream.status_code == 401
    assert client.get("/api/roster/stream", headers=patient).status_code == 403
    # the roster is read-only: there is nothing a call-center agent could change here
    cc = bearer(client, engine, "cc2", {"call_center"})
    assert client.post("/api/roster/now", headers=cc).status_code == 405
    page = client.get("/roster", headers={"Authorization": ""})
    assert page.status_code == 200 and "EventSource" in page.text  # static, holds no data


def test_session_cookie_authenticates_roster_reads_only(client: TestClient, engine: Engine) -> None:
    seed(engine, HANDOFF)
    patient = bearer(client, engine, "pat", {"patient"})
    assert client.post("/api/roster/session", headers=patient).status_code == 403
    cc = bearer(client, engine, "cc", {"call_center"})
    opened = client.post("/api/roster/session", headers=cc)
    assert opened.status_code == 204
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api/roster" in cookie
    assert "Max-Age=" in cookie
    no_header = {"Authorization": ""}
    answer = client.get("/api/roster/now", params={"at": "2026-06-10T08:00:00Z"}, headers=no_header)
    assert answer.status_code == 200 and on_call(answer.json(), "cardiology|main") == ["Dr Bo"]
    assert client.get("/api/auth/me", headers=no_header).status_code == 401  # roster only
    assert client.delete("/api/roster/session").status_code == 204
    assert client.get("/api/roster/now", headers=no_header).status_code == 401


# --- the stream, on a real server --------------------------------------------------------


@pytest.fixture
def live(engine: Engine) -> Iterator[tuple[str, Settings]]:
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, roster_heartbeat_seconds=0.5)
    with serving(create_app(settings, engine=engine)) as base_url:
        yield base_url, settings


@pytest.fixture
def http(live: tuple[str, Settings]) -> Iterator[httpx.Client]:
    base_url, settings = live
    headers = {"Authorization": f"Bearer {settings.dev_token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        yield client


def open_stream(
    http: httpx.Client, headers: dict[str, str] | None = None, params: dict | None = None
) -> tuple[SseReader, httpx.Response]:
    request = http.build_request("GET", "/api/roster/stream", headers=headers, params=params)
    response = http.send(request, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return SseReader(response), response


def test_a_swap_arrives_on_the_stream_within_a_second(engine: Engine, http: httpx.Client) -> None:
    r = seed(engine, now().replace(microsecond=0) + timedelta(hours=3))
    reader, response = open_stream(http)
    try:
        snapshot = reader.next(kind="snapshot").data
        assert on_call(snapshot, "cardiology|main") == ["Dr Ada"]
        began = time.monotonic()
        event_id = swap(engine, r.night, r.day)
        change = reader.next(timeout=1.0, kind="change")
        assert time.monotonic() - began < 1.0
        assert change.id == str(event_id)
        assert [e["id"] for e in change.data["events"]] == [event_id]
        assert change.data["events"][0]["summary"] == (
            f"swap Dr Ada \u2194 Dr Bo (shifts {r.night}, {r.day}) by admin"
        )
        assert [g["key"] for g in change.data["changed"]] == ["cardiology|main"]
        group = change.data["changed"][0]
        assert [e["physician"] for e in group["on_call"]] == ["Dr Bo"]
        assert [e["physician"] for e in group["upcoming"]] == ["Dr Ada"]
        # a draft's change moves nothing on the live roster and is not announced
        with engine.begin() as conn:
            write_event(conn, "edit", r.draft, [], [r.cy])
        with pytest.raises(queue.Empty):
            reader.next(timeout=0.8, kind="change")
        assert reader.comments, "heartbeat comments keep idle streams open"
    finally:
        response.close()


def test_last_event_id_resumes_with_the_missed_events(engine: Engine, http: httpx.Client) -> None:
    r = seed(engine, now().replace(microsecond=0) + timedelta(hours=3))
    with engine.begin() as conn:
        first = write_event(conn, "publish", r.published, [], [])
    second = swap(engine, r.night, r.day)
    third = swap(engine, r.night, r.day)
    reader, response = open_stream(http, headers={"Last-Event-ID": str(first)})
    try:
        missed = reader.next(kind="missed").data
        assert missed["after"] == first
        assert [e["id"] for e in missed["events"]] == [second, third]
        snapshot = reader.next(kind="snapshot")
        assert snapshot.id == str(third)
        assert on_call(snapshot.data, "cardiology|main") == ["Dr Ada"]  # swapped back
    finally:
        response.close()
    # the page reconnects by hand after a new sign-in, with the id as a query parameter
    reader, response = open_stream(http, params={"last_event_id": second})
    try:
        assert [e["id"] for e in reader.next(kind="missed").data["events"]] == [third]
        assert reader.next(kind="snapshot").id == str(third)
    finally:
        response.close()


def test_handoff_reaches_the_stream_without_any_event(engine: Engine, http: httpx.Client) -> None:
    handoff = now() + timedelta(seconds=1.5)
    r = seed(engine, handoff)
    reader, response = open_stream(http)
    try:
        assert on_call(reader.next(kind="snapshot").data, "cardiology|main") == ["Dr Ada"]
        change = reader.next(timeout=3.0, kind="change")
        assert time.time() >= r.handoff.timestamp()
        assert change.data["events"] == []
        assert [e["physician"] for e in change.data["changed"][0]["on_call"]] == ["Dr Bo"]
    finally:
        response.close()


def test_publishing_a_roster_puts_it_live(engine: Engine, http: httpx.Client) -> None:
    r = seed(engine, now() + timedelta(hours=3))
    reader, response = open_stream(http)
    try:
        reader.next(kind="snapshot")
        with engine.begin() as conn:
            conn.execute(update(rosters).where(rosters.c.id == r.published).values(status="draft"))
            conn.execute(update(rosters).where(rosters.c.id == r.draft).values(status="published"))
            event_id = write_event(conn, "publish", r.draft, [], [])
        change = reader.next(timeout=1.0, kind="change")
        assert [e["id"] for e in change.data["events"]] == [event_id]
        assert on_call({"groups": change.data["changed"]}, "cardiology|main") == ["Dr Cy"]
        assert change.data["removed"] == ["neurology|north"]
    finally:
        response.close()


def test_a_stream_ends_when_its_token_expires(engine: Engine, live: tuple[str, Settings]) -> None:
    base_url, settings = live
    seed(engine, now() + timedelta(hours=3))
    user = create_user(engine, "cc", roles={"call_center"}, password="pw")
    almost_expired = TokenService(settings.secret_key).issue(
        user, now=time.time() - ACCESS_SECONDS + 2
    )
    headers = {"Authorization": f"Bearer {almost_expired.access_token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        reader, response = open_stream(client)
        try:
            reader.next(kind="snapshot")
            assert reader.next(timeout=4.0, kind="reauth").data["reason"]
        finally:
            response.close()


def test_a_draft_read_after_its_publish_shows_only_the_publish(
    engine: Engine, http: httpx.Client
) -> None:
    """The poller reads a draft's making and its publish together (it polls after the
    publish committed): the draft's events say they were a draft's, and stay off."""
    r = seed(engine, now().replace(microsecond=0) + timedelta(hours=3))
    with engine.begin() as conn:
        before = write_event(conn, "publish", r.published, [], [])
    reader, response = open_stream(http)
    try:
        reader.next(kind="snapshot")
        with engine.begin() as conn:
            roster_events.write_event(conn, "roster_create", actor="admin", roster_id=r.draft)
            for kind in ("create", "edit", "move", "delete"):
                roster_events.write_event(
                    conn,
                    kind,
                    actor="admin",
                    roster_id=r.draft,
                    physician_ids=[r.cy],
                    detail={"published": False},
                )
            conn.execute(update(rosters).where(rosters.c.id == r.draft).values(status="published"))
            published = roster_events.write_event(conn, "publish", actor="admin", roster_id=r.draft)
            later = roster_events.write_event(
                conn, "edit", actor="admin", roster_id=r.draft, detail={"published": True}
            )
        change = reader.next(timeout=2.0, kind="change")
        assert [e["id"] for e in change.data["events"]] == [published, later]
    finally:
        response.close()
    # resuming from before them all: the same two are what was missed
    reader, response = open_stream(http, headers={"Last-Event-ID": str(before)})
    try:
        assert [e["id"] for e in reader.next(kind="missed").data["events"]] == [published, later]
    finally:
        response.close()


def test_a_stream_notices_its_client_gone_before_the_next_heartbeat(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url, roster_heartbeat_seconds=60, roster_poll_seconds=0.1)
    app = create_app(settings, engine=engine)
    headers = {"Authorization": f"Bearer {settings.dev_token}"}
    with (
        serving(app) as base_url,
        httpx.Client(base_url=base_url, headers=headers, timeout=10) as client,
    ):
        request = client.build_request("GET", "/api/roster/stream")
        response = client.send(request, stream=True)
        # read on this thread: closing a response another thread is reading leaves the
        # socket open (httpx), and then the client has not gone anywhere; and keep the
        # line iterator: dropping it half-read closes the connection
        lines = response.iter_lines()
        assert "event: snapshot" in itertools.takewhile(
            lambda line: not line.startswith("data:"), lines
        )
        hub = app.state.roster_broadcaster
        time.sleep(0.7)  # past a disconnect check: a live client is not taken for gone
        assert hub.clients == 1
        response.close()
        del lines
        deadline = time.monotonic() + 2.0
        while (hub.clients or hub._task is not None) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert hub.clients == 0, "the stream outlived its client"
        assert hub._task is None, "the poller kept reading with nobody listening"


def test_app_shutdown_ends_the_streams_and_the_poller(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    app = create_app(Settings(database_url=url), engine=engine)
    with TestClient(app):
        hub = broadcaster(app)
        assert not streams_closing(app)
    assert hub.closed and streams_closing(app)


def test_harmony_serve_stops_promptly_with_streams_open(database_url: str) -> None:
    """uvicorn waits for open responses before it exits; the streams end when it stops."""
    with running(database_url) as hub:
        engine = make_engine(database_url)
        try:
            create_user(engine, "cc", roles={"call_center"}, password="pw")
        finally:
            engine.dispose()
        base_url = f"http://127.0.0.1:{hub.api_port}"
        with httpx.Client(base_url=base_url, timeout=10) as client:
            pair = client.post("/api/auth/token", json={"username": "cc", "password": "pw"})
            client.headers["Authorization"] = f"Bearer {pair.json()['access_token']}"
            roster, _ = open_stream(client)
            roster.next(kind="snapshot")
            request = client.build_request("GET", "/api/notifications/stream")
            notes = client.send(request, stream=True)
            assert notes.status_code == 200
            ended = threading.Event()

            def drain() -> None:
                for _ in notes.iter_lines():
                    pass
                ended.set()

            threading.Thread(target=drain, daemon=True).start()
            assert hub.proc is not None
            began = time.monotonic()
            hub.proc.send_signal(signal.SIGTERM)
            hub.proc.wait(15)
            took = time.monotonic() - began
        assert hub.proc.returncode == 0
        assert took < 4.0, f"harmony serve took {took:.1f} s to stop with streams open"
        assert ended.wait(1.0), "the notification stream did not end cleanly"
