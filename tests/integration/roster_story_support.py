"""What the roster story runs in: the hub on a real port with its workers, GMED sender and
notification threads; a real SMTP server (aiosmtpd), the GMED receiver (MLLP) and the FCM
sandbox; people who sign in and act over HTTP; and a reader of the live roster stream."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from adapters.gmed.parser import parse_message
from adapters.sandbox_server import free_port, serving
from api.app import create_app
from hub.notifications.fcm_sandbox import FcmSandboxState, create_fcm_sandbox
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.users import create_user
from tests.hub.test_outbound import GmedSandbox

PASSWORD = "a long story password"
WAIT = 5.0
"""How long anything asynchronous (stream, notifications, GMED) may take to show."""

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = WAIT) -> T:
    """Poll ``probe`` until it returns something truthy; fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:g} s still waiting for {what}")
        time.sleep(0.05)


def expect(response: httpx.Response, status: int) -> Any:
    """The JSON body of an answer that must have ``status``."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} answered "
        f"{response.status_code}, wanted {status}: {response.text}"
    )
    return response.json() if response.content else None


def if_match(response: httpx.Response) -> dict[str, str]:
    """The If-Match header that answers a response's ETag."""
    tag = response.headers.get("ETag")
    assert tag, f"{response.request.method} {response.request.url} sent no ETag"
    return {"If-Match": tag}


# --- the outside world -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Email:
    to: tuple[str, ...]
    subject: str
    body: str


class Mailbox:
    """An aiosmtpd handler that keeps every email it accepts."""

    def __init__(self) -> None:
        self.received: list[Email] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content)
        payload = parsed.get_payload(decode=True)
        body = payload.decode() if isinstance(payload, bytes) else str(payload)
        self.received.append(Email(tuple(envelope.rcpt_tos), str(parsed["Subject"]), body))
        return "250 Message accepted for delivery"


@dataclass(frozen=True, slots=True)
class SiuSeen:
    """One roster SIU GMED received: trigger, shift, and the physician in AIP (None: open)."""

    trigger: str
    shift_id: int
    physician_id: int | None


@dataclass
class Hub:
    base_url: str
    engine: Engine
    settings: Settings
    mailbox: Mailbox
    gmed: GmedSandbox
    fcm: FcmSandboxState

    def gmed_received(self) -> list[SiuSeen]:
        seen = []
        for received in list(self.gmed.sink.received):
            siu = parse_message(received.raw)
            aip = siu.segment("AIP")
            physician = aip.component(3, 1) if aip is not None else ""
            sch = siu.segment("SCH")
            assert sch is not None, received.raw
            seen.append(
                SiuSeen(
                    siu.trigger_event,
                    int(sch.component(1, 1)),
                    int(physician) if physician else None,
                )
            )
        return seen

    def pushed(self) -> list[tuple[str, str]]:
        """(device token, title) of every push the FCM sandbox accepted."""
        with self.fcm.lock:
            return [(s.message["token"], s.message["notification"]["title"]) for s in self.fcm.sent]


@contextlib.contextmanager
def running_hub(engine: Engine, tmp_path: Path) -> Iterator[Hub]:
    """The hub as ``harmony serve`` wires it (runtime started: workers, the outbound GMED
    sender, the notification dispatcher and deliverer), its API on a real port, with SMTP,
    GMED and FCM as real servers beside it."""
    with contextlib.ExitStack() as stack:
        mailbox = Mailbox()
        smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        smtp.start()
        stack.callback(smtp.stop)
        gmed = GmedSandbox(frozenset({"SIU^S12", "SIU^S13", "SIU^S14", "SIU^S15"}))
        stack.callback(gmed.close)
        fcm = FcmSandboxState(project_id="harmony-story")
        fcm_base = stack.enter_context(serving(create_fcm_sandbox(fcm)))
        key_file = tmp_path / "fcm-service-account.json"
        key_file.write_text(json.dumps(fcm.service_account(f"{fcm_base}/token")))
        settings = Settings(
            database_url=engine.url.render_as_string(hide_password=False),
            gmed_outbound_host="127.0.0.1",
            gmed_outbound_port=gmed.port,
            retry_base_seconds=0.2,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_sender="roster@harmony.test",
            smtp_timeout_seconds=5,
            fcm_project_id="harmony-story",
            fcm_credentials_file=key_file,
            fcm_endpoint=fcm_base,
            notification_poll_seconds=0.1,
            notification_retry_base_seconds=0.2,
            roster_poll_seconds=0.1,
            # a closed stream is noticed at the next write (heartbeat); keep shutdown short
            roster_heartbeat_seconds=1.0,
        )
        runtime = HubRuntime(settings, engine)
        runtime.start()
        stack.callback(runtime.stop)
        base_url = stack.enter_context(
            serving(create_app(settings, engine=engine, runtime=runtime))
        )
        yield Hub(base_url, engine, settings, mailbox, gmed, fcm)


# --- people ------------------------------------------------------------------------------


@dataclass
class Person:
    """Someone signed in with their own token, acting over HTTP."""

    username: str
    user_id: int
    email: str | None
    http: httpx.Client

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        return self.http.post(path, json=body, headers=headers)

    def patch(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.patch(path, json=body, headers=headers)

    def notifications(self) -> list[dict[str, Any]]:
        """My in-app notifications, oldest first."""
        items: list[dict[str, Any]] = expect(self.get("/api/notifications", limit=200), 200)[
            "items"
        ]
        return items[::-1]

    def notification_kinds(self) -> list[str]:
        return [n["kind"] for n in self.notifications()]

    def wait_for_notification(self, kind: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            return next((n for n in self.notifications() if n["kind"] == kind), None)

        return eventually(probe, f"a {kind!r} notification for {self.username}")


def add_user(
    hub: Hub,
    username: str,
    roles: set[str],
    *,
    physician_id: int | None = None,
    display_name: str | None = None,
) -> None:
    """An account, as an operator creates one (there is no HTTP endpoint for users)."""
    create_user(
        hub.engine,
        username,
        roles=roles,
        password=PASSWORD,
        display_name=display_name,
        email=f"{username}@clinic.test",
        physician_id=physician_id,
    )


def sign_in(hub: Hub, username: str, stack: contextlib.ExitStack) -> Person:
    http = stack.enter_context(httpx.Client(base_url=hub.base_url, timeout=15))
    pair = expect(
        http.post("/api/auth/token", json={"username": username, "password": PASSWORD}), 200
    )
    http.headers["Authorization"] = f"Bearer {pair['access_token']}"
    me = expect(http.get("/api/auth/me"), 200)
    return Person(username, me["user_id"], f"{username}@clinic.test", http)


# --- the live roster stream --------------------------------------------------------------


@dataclass
class RosterStream:
    """GET /api/roster/stream read on a thread: the snapshot, then every event of every
    ``change`` message, in arrival order."""

    response: httpx.Response
    snapshots: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, person: Person, stack: contextlib.ExitStack) -> RosterStream:
        request = person.http.build_request("GET", "/api/roster/stream")
        response = person.http.send(request, stream=True)
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = cls(response)
        threading.Thread(target=stream._read, daemon=True, name="roster-stream").start()
        stack.callback(response.close)
        return stream

    def _read(self) -> None:
        event, data = "message", []
        with contextlib.suppress(httpx.HTTPError, RuntimeError):  # the test closed it
            for line in self.response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "" and data:
                    payload = json.loads("\n".join(data))
                    if event == "snapshot":
                        self.snapshots.put(payload)
                    elif event == "change":
                        with self.lock:
                            self.events.extend(payload["events"])
                    event, data = "message", []

    def snapshot(self) -> dict[str, Any]:
        return self.snapshots.get(timeout=WAIT)

    def wait_for(self, kind: str, shift_ids: list[int]) -> dict[str, Any]:
        """The first event of ``kind`` about exactly these shifts."""

        def probe() -> dict[str, Any] | None:
            with self.lock:
                return next(
                    (
                        e
                        for e in self.events
                        if e["kind"] == kind and sorted(e["shift_ids"]) == sorted(shift_ids)
                    ),
                    None,
                )

        return eventually(probe, f"a {kind!r} event about shifts {shift_ids} on the stream")

    def kinds(self) -> list[str]:
        with self.lock:
            return [e["kind"] for e in self.events]
