"""Webhooks: signatures, the replay window, duplicates, and Google's channel token."""

from __future__ import annotations

import time

import orjson
import pytest
from sqlalchemy import Engine, func, select

from hub import message_store
from hub.integrations import IntegrationRegistry
from hub.settings import Settings
from hub.tables import messages
from hub.webhooks import WebhookReceiver, WebhookRefused, check_signature, sign

SECRET = "whsec-test"


def _receiver(engine: Engine) -> tuple[WebhookReceiver, list[str], list[list[int]]]:
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url)
    registry = IntegrationRegistry(engine, settings)
    registry.add("athena-a", "athena", "http://a", webhook_secret=SECRET)
    registry.add("google-a", "google", "http://g", webhook_secret="channel-token")
    resyncs: list[str] = []
    published: list[list[int]] = []
    receiver = WebhookReceiver(
        engine, settings, lambda _d, ids: published.append(ids), resyncs.append
    )
    return receiver, resyncs, published


def _signed(body: bytes, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {"x-harmony-timestamp": stamp, "x-harmony-signature": sign(secret, stamp, body)}


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def test_signature_rules() -> None:
    body = b'{"id": "1"}'
    check_signature(SECRET, _signed(body), body, 300)
    with pytest.raises(WebhookRefused, match="does not match"):
        check_signature(SECRET, _signed(body, secret="other"), body, 300)
    with pytest.raises(WebhookRefused, match="does not match"):
        check_signature(SECRET, _signed(body), body + b" ", 300)
    with pytest.raises(WebhookRefused, match="s off"):
        check_signature(SECRET, _signed(body, at=time.time() - 301), body, 300)
    with pytest.raises(WebhookRefused, match="missing"):
        check_signature(SECRET, {}, body, 300)
    with pytest.raises(WebhookRefused, match="no webhook secret"):
        check_signature(None, _signed(body), body, 300)


def test_event_is_stored_once_and_refusals_store_nothing(engine: Engine) -> None:
    receiver, resyncs, published = _receiver(engine)
    body = orjson.dumps({"id": "evt-1", "type": "schedule-updated"})
    with pytest.raises(WebhookRefused) as refused:
        receiver.receive("athena-a", _signed(body, at=time.time() - 3600), body)
    assert refused.value.status == 401
    with pytest.raises(WebhookRefused) as refused:
        receiver.receive("athena-a", _signed(body, secret="guess"), body)
    assert refused.value.status == 401 and _count(engine) == 0 and resyncs == []

    first = receiver.receive("athena-a", _signed(body), body)
    assert first.status == "accepted" and first.resync and resyncs == ["athena-a"]
    assert published == [[first.message_id]]
    again = receiver.receive("athena-a", _signed(body), body)
    assert again.status == "duplicate" and _count(engine) == 1 and resyncs == ["athena-a"]
    with engine.connect() as conn:
        row = message_store.get(conn, first.message_id)
    assert (row.channel, row.sender, row.message_type) == ("athena", "athena-a", "webhook")


def test_bad_bodies_are_refused_with_400(engine: Engine) -> None:
    receiver, _, _ = _receiver(engine)
    for body, reason in [
        (b"{not json", "not valid JSON"),
        (b'{"type": "booked"}', "'id'"),
        (b'{"id": "e", "type": "moved"}', "not one of"),
    ]:
        with pytest.raises(WebhookRefused, match=reason) as refused:
            receiver.receive("athena-a", _signed(body), body)
        assert refused.value.status == 400
    assert _count(engine) == 0


def test_google_push_checks_the_channel_token(engine: Engine) -> None:
    receiver, resyncs, _ = _receiver(engine)
    base = {"x-goog-channel-id": "c1", "x-goog-resource-id": "r1"}
    with pytest.raises(WebhookRefused) as refused:
        receiver.receive("google-a", {**base, "x-goog-channel-token": "wrong"}, b"")
    assert refused.value.status == 401
    handshake = {**base, "x-goog-channel-token": "channel-token", "x-goog-resource-state": "sync"}
    assert receiver.receive("google-a", handshake, b"").status == "ignored"
    assert resyncs == []
    changed = {**handshake, "x-goog-resource-state": "exists"}
    assert receiver.receive("google-a", changed, b"").resync and resyncs == ["google-a"]


def test_an_event_with_its_resource_updates_the_store_at_once(engine: Engine) -> None:
    from sqlalchemy.orm import Session

    from canonical.search import search
    from hub.runtime import HubRuntime

    receiver, resyncs, _ = _receiver(engine)
    booked = {
        "date": "12/01/2030",
        "appointmentid": "9001",
        "starttime": "09:30",
        "duration": "30",
        "departmentid": "1",
        "providerid": "71",
        "appointmentstatus": "f",
        "patientid": "4242",
    }
    body = orjson.dumps({"id": "evt-9", "type": "booked", "resource": booked})
    outcome = receiver.receive("athena-a", _signed(body), body)
    assert outcome.status == "accepted" and not outcome.resync and resyncs == []
    runtime = HubRuntime(receiver.settings.model_copy(update={"default_timezone": "UTC"}), engine)
    assert outcome.message_id is not None
    assert runtime.worker.process_inbound(outcome.message_id) == "processed"
    with Session(engine) as session:
        (appointment,) = search(
            session, "Appointment", [("identifier", "urn:harmony:athena-a:appointmentid|9001")]
        ).resources
    assert appointment["status"] == "booked" and appointment["start"] == "2030-12-01T09:30:00+00:00"
