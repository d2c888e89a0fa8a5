"""The scheduling API: roles and ownership, ETags and If-Match, 409 bodies that list the
conflicts, bulk errors, the physician flows, and the published roster under /fhir."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from hub.runtime import HubRuntime
from hub.users import create_user


def _token(client: TestClient, username: str) -> dict[str, str]:
    reply = client.post("/api/auth/token", json={"username": username, "password": "pw"})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def _setup(client: TestClient, engine: Engine) -> dict[str, Any]:
    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        reply = client.post(path, json=body)
        assert reply.status_code == 201, reply.text
        assert reply.headers["ETag"] == f'W/"{reply.json()["version"]}"'
        return reply.json()

    lee = post("/api/physicians", {"name": "Dr Lee", "specialties": ["im"], "locations": ["Main"]})
    patel = post(
        "/api/physicians", {"name": "Dr Patel", "specialties": ["im"], "locations": ["Main"]}
    )
    night = post(
        "/api/shift-types",
        {
            "code": "NIGHT",
            "name": "Night call",
            "kind": "night",
            "start_time": "19:00",
            "duration_minutes": 720,
            "service": "Medicine",
            "location": "Main",
            "timezone": "America/New_York",
            "required_specialties": ["im"],
        },
    )
    roster = post(
        "/api/rosters",
        {"name": "March", "period_start": "2027-03-01", "period_end": "2027-03-31"},
    )
    create_user(engine, "dr.lee", roles={"physician"}, password="pw", physician_id=lee["id"])
    create_user(engine, "dr.patel", roles={"physician"}, password="pw", physician_id=patel["id"])
    create_user(engine, "sam.staff", roles={"staff"}, password="pw")
    create_user(engine, "cc.agent", roles={"call_center"}, password="pw")
    return {"lee": lee, "patel": patel, "night": night, "roster": roster}


def _shift(client: TestClient, ids: dict[str, Any], day: str, who: int | None) -> Any:
    return client.post(
        "/api/shifts",
        json={
            "roster_id": ids["roster"]["id"],
            "shift_type_id": ids["night"]["id"],
            "date": day,
            "physician_id": who,
        },
    )


def test_admin_edits_with_etags_and_conflicts_come_back_as_a_list(
    client: TestClient, runtime: HubRuntime
) -> None:
    ids = _setup(client, runtime.engine)
    first = _shift(client, ids, "2027-03-03", ids["lee"]["id"])
    assert first.status_code == 201 and first.headers["ETag"] == 'W/"1"'
    clash = _shift(client, ids, "2027-03-04", ids["lee"]["id"])  # 12 h after the first ends
    assert clash.status_code == 201
    third = _shift(client, ids, "2027-03-04", ids["lee"]["id"])
    assert third.status_code == 409
    body = third.json()
    assert body["rule"] == "conflict"
    assert body["conflicts"][0]["rule"] == "overlap"
    assert body["conflicts"][0]["physician"] == "Dr Lee"
    assert body["detail"].startswith("Conflict (overlap): Dr Lee already works 2027-03-04 19:00")

    shift_id = first.json()["id"]
    assert client.patch(f"/api/shifts/{shift_id}", json={}).status_code == 428
    stale = client.patch(
        f"/api/shifts/{shift_id}",
        json={"physician_id": ids["patel"]["id"]},
        headers={"If-Match": 'W/"9"'},
    )
    assert stale.status_code == 412
    moved = client.patch(
        f"/api/shifts/{shift_id}",
        json={"physician_id": ids["patel"]["id"]},
        headers={"If-Match": first.headers["ETag"]},
    )
    assert moved.status_code == 200 and moved.headers["ETag"] == 'W/"2"'
    assert moved.json()["physician_id"] == ids["patel"]["id"]

    bulk = client.post(
        "/api/shifts/bulk",
        json={
            "items": [
                {"op": "delete", "id": shift_id, "version": 1},
                {
                    "op": "create",
                    "roster_id": ids["roster"]["id"],
                    "shift_type_id": ids["night"]["id"],
                    "date": "2027-03-20",
                },
            ]
        },
    )
    assert bulk.status_code == 409
    assert [e["index"] for e in bulk.json()["errors"]] == [0]
    assert client.get(f"/api/shifts/{shift_id}").json()["version"] == 2  # nothing changed

    rules = client.get("/api/roster-rules")
    assert rules.headers["ETag"] == 'W/"0"'
    assert client.patch("/api/roster-rules", json={"min_rest_hours": 11}).status_code == 428
    changed = client.patch(
        "/api/roster-rules", json={"min_rest_hours": 11}, headers={"If-Match": 'W/"0"'}
    )
    assert changed.status_code == 200 and changed.json()["min_rest_hours"] == 11


def test_roles_ownership_and_the_physician_flow(client: TestClient, runtime: HubRuntime) -> None:
    ids = _setup(client, runtime.engine)
    lee_shift = _shift(client, ids, "2027-03-10", ids["lee"]["id"]).json()
    patel_shift = _shift(client, ids, "2027-03-14", ids["patel"]["id"]).json()
    roster_id = ids["roster"]["id"]
    lee, patel = _token(client, "dr.lee"), _token(client, "dr.patel")
    staff, agent = _token(client, "sam.staff"), _token(client, "cc.agent")

    # Drafts are the admin's: nobody else sees them.
    assert client.get("/api/shifts", headers=staff).json() == []
    assert client.get(f"/api/rosters/{roster_id}", headers=lee).status_code == 404
    assert client.post(f"/api/rosters/{roster_id}/publish", headers=lee).status_code == 403
    published = client.post(f"/api/rosters/{roster_id}/publish", headers={"If-Match": 'W/"1"'})
    assert published.status_code == 200 and published.json()["status"] == "published"

    assert len(client.get("/api/shifts", headers=staff).json()) == 2
    assert len(client.get("/api/shifts", headers=agent).json()) == 2
    assert _shift(client, ids, "2027-03-20", None).status_code == 201
    staff_write = client.patch(
        f"/api/shifts/{lee_shift['id']}", json={}, headers={**staff, "If-Match": 'W/"1"'}
    )
    assert staff_write.status_code == 403
    assert client.post(f"/api/shifts/{lee_shift['id']}/drop", headers=agent).status_code == 403
    mine = client.get("/api/me/shifts", headers=lee).json()
    assert [s["id"] for s in mine] == [lee_shift["id"]]
    assert client.post(f"/api/shifts/{patel_shift['id']}/drop", headers=lee).status_code == 403
    assert client.get(f"/api/physicians/{ids['patel']['id']}", headers=lee).status_code == 403

    swap = client.post(
        f"/api/shifts/{lee_shift['id']}/swap",
        json={"counterparty_shift_id": patel_shift["id"]},
        headers=lee,
    )
    assert swap.status_code == 201, swap.text
    request_id = swap.json()["id"]
    assert client.post(f"/api/shift-requests/{request_id}/accept", headers=lee).status_code == 428
    wrong = client.post(
        f"/api/shift-requests/{request_id}/accept", headers={**lee, "If-Match": 'W/"1"'}
    )
    assert wrong.status_code == 403
    accepted = client.post(
        f"/api/shift-requests/{request_id}/accept", headers={**patel, "If-Match": 'W/"1"'}
    )
    assert accepted.status_code == 200 and accepted.headers["ETag"] == 'W/"2"'
    pending = client.get("/api/shift-requests", params={"status": "accepted"}).json()
    assert [r["id"] for r in pending] == [request_id]
    approve = client.post(
        f"/api/shift-requests/{request_id}/approve", headers={"If-Match": 'W/"2"'}
    )
    assert approve.status_code == 200 and approve.json()["status"] == "approved"
    again = client.post(f"/api/shift-requests/{request_id}/approve", headers={"If-Match": 'W/"2"'})
    assert again.status_code in (409, 412)
    assert [s["id"] for s in client.get("/api/me/shifts", headers=lee).json()] == [
        patel_shift["id"]
    ]

    open_shifts = client.get("/api/shifts/open", headers=patel).json()
    assert len(open_shifts) == 1
    pickup = client.post(f"/api/shifts/{open_shifts[0]['id']}/pickup", headers=patel)
    assert pickup.status_code == 201

    # The published roster reads as FHIR: Slot -> Schedule -> PractitionerRole.
    slots = client.get(
        "/fhir/Slot", params={"identifier": f"urn:harmony:roster:shift|{lee_shift['id']}"}
    )
    assert slots.status_code == 200
    (entry,) = slots.json()["entry"]
    schedule_ref = entry["resource"]["schedule"]["reference"]
    schedule = client.get(f"/fhir/{schedule_ref}").json()
    role = client.get(f"/fhir/{schedule['actor'][0]['reference']}").json()
    assert role["resourceType"] == "PractitionerRole"
    assert role["practitioner"]["display"] == "Dr Patel"  # the swap moved the Slot

    events = client.get("/api/roster-events").json()
    kinds = [e["kind"] for e in events]
    for kind in (
        "roster_create",
        "create",
        "publish",
        "swap",
        "accept",
        "approve",
        "pickup",
    ):
        assert kind in kinds
