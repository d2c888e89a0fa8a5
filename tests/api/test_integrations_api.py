"""Integrations, webhooks, availability uploads and booking over HTTP."""

from __future__ import annotations

import time

import orjson
from fastapi.testclient import TestClient

from hub.runtime import HubRuntime
from hub.webhooks import sign

CSV = "practitioner,start,end\nDr Ada,2030-05-06T09:00,2030-05-06T10:00\n"


def test_integrations_crud_never_returns_secrets(client: TestClient) -> None:
    body = {
        "name": "athena-east",
        "source_type": "athena",
        "base_url": "http://athena.test",
        "credentials": {"client_id": "id", "client_secret": "s3cret"},
        "webhook_secret": "whsec-9f2",
        "options": {"practiceid": "195900"},
    }
    created = client.post("/api/integrations", json=body)
    assert created.status_code == 201, created.text
    assert "s3cret" not in created.text and "whsec-9f2" not in created.text
    assert created.json()["has_credentials"] and created.json()["health"] == "never-synced"
    assert client.post("/api/integrations", json=body).status_code == 422
    listed = client.get("/api/integrations").json()
    assert [i["name"] for i in listed] == ["athena-east"] and "s3cret" not in str(listed)
    changed = client.patch("/api/integrations/athena-east", json={"sync_interval_seconds": 60})
    assert changed.json()["sync_interval_seconds"] == 60
    assert client.get("/api/integrations/nope").status_code == 404
    assert client.delete("/api/integrations/athena-east").status_code == 204
    assert client.get("/api/integrations").json() == []
    anonymous = client.get("/api/integrations", headers={"Authorization": ""})
    assert anonymous.status_code == 401


def test_webhook_signature_over_http(client: TestClient) -> None:
    client.post(
        "/api/integrations",
        json={"name": "a1", "source_type": "athena", "base_url": "http://a", "webhook_secret": "w"},
    )
    body = orjson.dumps({"id": "e1", "type": "cancelled"})
    stamp = str(int(time.time()))
    good = {"X-Harmony-Timestamp": stamp, "X-Harmony-Signature": sign("w", stamp, body)}
    bad = {**good, "X-Harmony-Signature": sign("guess", stamp, body)}
    refused = client.post("/webhooks/a1", content=body, headers=bad)
    assert refused.status_code == 401 and "does not match" in refused.text
    assert client.get("/api/messages").json()["total"] == 0
    assert client.post("/webhooks/a1", content=body, headers=good).json()["status"] == "accepted"
    assert client.post("/webhooks/a1", content=body, headers=good).json()["status"] == "duplicate"
    assert client.post("/webhooks/ghost", content=body, headers=good).status_code == 404


def test_upload_then_book_through_api_and_fhir(client: TestClient, runtime: HubRuntime) -> None:
    refused = client.post(
        "/api/availability/clinic-a", content=CSV, headers={"Content-Type": "x/y"}
    )
    assert refused.status_code == 415
    uploaded = client.post(
        "/api/availability/clinic-a?slot_minutes=30&timezone=UTC",
        content=CSV,
        headers={"Content-Type": "text/csv"},
    )
    assert uploaded.status_code == 202
    assert runtime.worker.process_inbound(uploaded.json()["message_id"]) == "processed"
    slots = client.get("/fhir/Slot?status=free").json()["entry"]
    first, second = (entry["resource"]["id"] for entry in slots)

    booked = client.post("/api/appointments", json={"slot_id": first, "reason": "Flu shot"})
    assert booked.status_code == 201, booked.text
    assert booked.json()["description"] == "Flu shot"
    taken = client.post("/api/appointments", json={"slot_id": first})
    assert taken.status_code == 409 and "not free" in taken.json()["detail"]

    proposed = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "appt-resource",
                "resource": {
                    "resourceType": "Appointment",
                    "status": "proposed",
                    "slot": [{"reference": f"Slot/{second}"}],
                    "participant": [],
                },
            }
        ],
    }
    answer = client.post("/fhir/Appointment/$book", json=proposed)
    assert answer.status_code == 200, answer.text
    assert answer.json()["resourceType"] == "Appointment" and answer.json()["status"] == "booked"
    again = client.post("/fhir/Appointment/$book", json=proposed)
    assert again.status_code == 409
    assert again.json()["resourceType"] == "OperationOutcome"
    assert again.json()["issue"][0]["code"] == "conflict"
    not_json = client.post(
        "/fhir/Appointment/$book", content=b"{", headers={"Content-Type": "application/fhir+json"}
    )
    assert not_json.status_code == 400


def test_an_epic_integration_publishes_its_public_keys_only(client: TestClient) -> None:
    from adapters.epic.auth import generate_key

    pem, kid = generate_key()
    body = {
        "name": "epic-main",
        "source_type": "epic",
        "base_url": "https://fhir.epic.test/api/FHIR/R4",
        "credentials": {"client_id": "app", "private_key_pem": pem, "kid": kid},
    }
    assert client.post("/api/integrations", json=body).status_code == 201
    jwks = client.get("/.well-known/jwks/epic-main.json", headers={"Authorization": ""})
    assert jwks.status_code == 200
    (key,) = jwks.json()["keys"]
    assert key["kid"] == kid and key["kty"] == "RSA" and key["alg"] == "RS384"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    assert client.get("/.well-known/jwks/nope.json").status_code == 404
