"""Engine endpoints: list and filter the message store, read raw bodies, replay."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hub import message_store
from hub.message_store import INBOUND, NewMessage, RetryPolicy

RAW = b"MSH|^~\\&|GMED|CLINIC|||||SIU^S12|C1|P|2.5\rSCH|1|2\r"


def _store(engine: Engine, control_id: str, raw: bytes = RAW) -> int:
    message = NewMessage(
        channel="gmed",
        direction=INBOUND,
        raw=raw.replace(b"C1", control_id.encode()),
        message_type="SIU^S12",
        control_id=control_id,
        sender="GMED|CLINIC",
        ack=b"MSH|^~\\&|HARMONY\rMSA|AA|" + control_id.encode(),
    )
    return message_store.store_batch(engine, [message])[0].id


def _park(engine: Engine, message_id: int, reason: str) -> None:
    message_store.fail(engine, message_id, reason, permanent=True, policy=RetryPolicy(1))


def test_a_token_is_required(client: TestClient) -> None:
    response = client.get("/api/messages", headers={"Authorization": ""})
    assert response.status_code == 401
    assert client.get("/health", headers={"Authorization": ""}).json() == {"status": "ok"}


def test_list_filter_and_read_raw_and_ack(client: TestClient, engine: Engine) -> None:
    first = _store(engine, "A1")
    second = _store(engine, "A2")
    _park(engine, second, "unmapped status code 'Confirmed'")
    page = client.get("/api/messages", params={"status": "parked"}).json()
    assert page["total"] == 1
    assert page["items"][0]["id"] == second
    assert "Confirmed" in page["items"][0]["last_error"]
    assert client.get("/api/messages", params={"error": "Confirmed"}).json()["total"] == 1
    raw = client.get(f"/api/messages/{first}/raw")
    assert raw.content == RAW.replace(b"C1", b"A1")
    assert client.get(f"/api/messages/{first}/ack").content.endswith(b"MSA|AA|A1")
    assert client.get("/api/messages/stats").json() == {"received": 1, "parked": 1}
    assert client.get("/api/messages/999999").status_code == 404


def test_replay_one_and_by_filter(client: TestClient, engine: Engine) -> None:
    ids = [_store(engine, f"R{i}") for i in range(3)]
    for message_id in ids:
        _park(engine, message_id, "boom")
    assert client.post(f"/api/messages/{ids[0]}/replay").json() == {"replayed": [ids[0]]}
    replayed = client.post("/api/messages/replay", json={"status": "parked"}).json()
    assert replayed == {"replayed": ids[1:]}
    assert client.get("/api/messages", params={"status": "parked"}).json()["total"] == 0
    refused = client.post("/api/messages/replay", json={})
    assert refused.status_code == 422
