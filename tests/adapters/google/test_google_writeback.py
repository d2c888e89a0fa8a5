"""Booking and cancelling through events.insert / events.patch, and push channels."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.contract import BookingRequest, SlotUnavailable, SourceError
from adapters.google.normalize import normalize_bytes
from adapters.google.push import PushNotice, PushTokenMismatch, read_push
from adapters.sandbox_server import serving
from mappings.model import MappingSet
from tests.adapters.google.conftest import Sandbox
from tests.adapters.google.google_inputs import checked, fixture_json

ADA = "dr.ada.lovelace@clinic.example"
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:1.2.3", "value": "MRN42"}],
    "telecom": [{"system": "email", "value": "pat@example.org"}],
}


def free_slot(sandbox: Sandbox, mapping: MappingSet, calendar_id: str = ADA) -> dict[str, Any]:
    page = next(sandbox.client().sync(None))
    bundle = normalize_bytes(page.envelope.to_bytes(), mapping, "UTC")
    return next(
        r.resource
        for r in bundle.records
        if r.resource_type == "Slot"
        and r.resource["status"] == "free"
        and r.identifiers[0].value.startswith(calendar_id)
    )


def booking(slot: dict[str, Any]) -> BookingRequest:
    return BookingRequest(
        slot_source_id=slot["identifier"][0]["value"],
        slot=slot,
        patient=PATIENT,
        appointment_type="FOLLOWUP",
        reason="knee pain",
    )


def test_book_a_free_slot(sandbox: Sandbox, mapping: MappingSet) -> None:
    slot = free_slot(sandbox, mapping)
    result = sandbox.client().book(booking(slot))
    calendar_id, _, event_id = result.appointment_source_id.rpartition("/")
    assert calendar_id == ADA
    stored = sandbox.state.events[ADA][event_id]
    assert stored["attendees"] == [{"email": "pat@example.org"}]
    assert stored["extendedProperties"]["private"]["harmonySlot"] == slot["identifier"][0]["value"]
    assert stored["summary"] == "FOLLOWUP"
    bundle = checked(normalize_bytes(result.page.envelope.to_bytes(), mapping, "UTC"))
    assert bundle.event == "booked"
    [appointment] = [r.resource for r in bundle.records if r.resource_type == "Appointment"]
    assert (appointment["start"], appointment["end"]) == (slot["start"], slot["end"])
    assert appointment["participant"][1]["actor"]["reference"] == (
        "Patient?identifier=urn:oid:1.2.3|MRN42"
    )
    # The slot is taken now: the next freebusy page says so under the same id.
    page = next(sandbox.client().sync(None))
    again = normalize_bytes(page.envelope.to_bytes(), mapping, "UTC")
    same = next(r for r in again.records if r.resource.get("identifier") == slot["identifier"])
    assert same.resource["status"] == "busy"


def test_booking_a_taken_slot_is_refused(sandbox: Sandbox, mapping: MappingSet) -> None:
    slot = free_slot(sandbox, mapping)
    client = sandbox.client()
    client.book(booking(slot))
    events_before = len(sandbox.state.events[ADA])
    with pytest.raises(SlotUnavailable, match="no longer free"):
        client.book(booking(slot))
    assert len(sandbox.state.events[ADA]) == events_before


def test_booking_inside_a_buffer_is_refused(sandbox: Sandbox, mapping: MappingSet) -> None:
    grace = "dr.grace.hopper@clinic.example"  # 20-minute slots, 10-minute buffers
    slot = free_slot(sandbox, mapping, grace)
    sandbox.client().book(booking(slot))
    start = slot["end"]
    end = (datetime.fromisoformat(start) + timedelta(minutes=20)).isoformat()
    neighbour = {**slot, "identifier": [{"value": f"{grace}/{start}"}], "start": start, "end": end}
    with pytest.raises(SlotUnavailable):
        sandbox.client().book(booking(neighbour))


def test_booking_an_unknown_calendar_is_not_retryable(
    sandbox: Sandbox, mapping: MappingSet
) -> None:
    slot = free_slot(sandbox, mapping)
    other = {**slot, "identifier": [{"value": "nobody@example.org/" + slot["start"]}]}
    with pytest.raises(SourceError) as failure:
        sandbox.client().book(booking(other))
    assert not failure.value.retryable


def test_cancel_patches_status_and_frees_the_slot(sandbox: Sandbox, mapping: MappingSet) -> None:
    client = sandbox.client()
    result = client.book(booking(free_slot(sandbox, mapping)))
    page = client.cancel(result.appointment_source_id, "patient called")
    event_id = result.appointment_source_id.rpartition("/")[2]
    stored = sandbox.state.events[ADA][event_id]
    assert stored["status"] == "cancelled"
    assert stored["extendedProperties"]["private"]["harmonyCancelReason"] == "patient called"
    assert any(m == "PATCH" for m, _ in sandbox.state.requests)
    bundle = checked(normalize_bytes(page.envelope.to_bytes(), mapping, "UTC"))
    assert bundle.event == "cancelled"
    by_type = {r.resource_type: r.resource for r in bundle.records}
    assert by_type["Appointment"]["status"] == "cancelled"
    assert by_type["Slot"]["status"] == "free"
    # Cancelling again answers the cancelled event without another PATCH.
    patches = sum(m == "PATCH" for m, _ in sandbox.state.requests)
    again = client.cancel(result.appointment_source_id, None)
    assert again.envelope.body["status"] == "cancelled"
    assert sum(m == "PATCH" for m, _ in sandbox.state.requests) == patches


def test_cancel_unknown_event_fails_with_googles_not_found(sandbox: Sandbox) -> None:
    with pytest.raises(SourceError) as failure:
        sandbox.client().cancel(f"{ADA}/doesnotexist", None)
    assert failure.value.status == 404 and not failure.value.retryable
    assert "notFound: Not Found" in str(failure.value)


class Receiver:
    """The hub's webhook endpoint, as far as Google can tell: records each POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []

    async def receive(self, request: Request) -> Response:
        self.posts.append((dict(request.headers), await request.body()))
        return Response(status_code=200)

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.posts) >= count, f"{len(self.posts)} notifications, wanted {count}"


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    found = Receiver()
    app = Starlette(routes=[Route("/hooks/google", found.receive, methods=["POST"])])
    with serving(app) as url:
        yield found, f"{url}/hooks/google"


def test_watch_push_and_stop(sandbox: Sandbox, receiver: tuple[Receiver, str]) -> None:
    hooks, address = receiver
    client = sandbox.client()
    channel = client.watch(ADA, address, "secret-token", ttl_seconds=3600)
    sent = next(
        body for path, body in sandbox.state.bodies if path.endswith("/events/watch?alt=json")
    )
    assert set(sent) == set(fixture_json("docs_events_watch_request.json"))
    assert channel.token == "secret-token" and channel.expiration is not None

    hooks.wait_for(1)
    headers, body = hooks.posts[0]
    assert body == b""
    handshake = read_push(headers, "secret-token")
    assert (handshake.resource_state, handshake.message_number) == ("sync", 1)
    assert not handshake.needs_sync
    assert (handshake.channel_id, handshake.resource_id) == (channel.id, channel.resource_id)
    with pytest.raises(PushTokenMismatch):
        read_push(headers, "not-the-token")

    start = datetime.now(UTC) + timedelta(days=2)
    sandbox.state.add_event(ADA, start, start + timedelta(minutes=30))
    hooks.wait_for(2)
    change: PushNotice = read_push(hooks.posts[1][0], "secret-token")
    assert change.resource_state == "exists" and change.needs_sync
    assert change.message_number == 2
    assert change.resource_uri == channel.resource_uri

    client.stop_channel(channel.id, channel.resource_id)
    sandbox.state.add_event(ADA, start + timedelta(hours=1), start + timedelta(hours=2))
    sandbox.state.pusher.drain()
    assert len(hooks.posts) == 2
    with pytest.raises(SourceError) as failure:
        client.stop_channel(channel.id, channel.resource_id)
    assert failure.value.status == 404


def test_watch_unconfigured_calendar_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(SourceError, match="not configured"):
        sandbox.client().watch("someone@else.example", "https://example.org/h", "t", 60)
