"""`harmony serve --demo` as a user meets it: four sources in one FHIR Slot search, and a
booking through the API that reaches each source's sandbox."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.integration.harness import running

TOKEN = {"Authorization": "Bearer harmony-dev-token"}
SOURCES = {"epic-demo", "athena-demo", "google-demo", "gmed"}


def _owner(slot: dict[str, Any]) -> str:
    return str(slot["identifier"][0]["system"]).split(":")[2]


def _slots(api: httpx.Client) -> list[dict[str, Any]]:
    slots: list[dict[str, Any]] = []
    url: str | None = "/fhir/Slot?_count=500"
    while url:
        bundle = api.get(url).json()
        slots += [entry["resource"] for entry in bundle.get("entry", [])]
        url = next(
            (lnk["url"] for lnk in bundle.get("link", []) if lnk["relation"] == "next"), None
        )
    return slots


def test_demo_sources_sync_into_one_slot_search_and_take_bookings(database_url: str) -> None:
    with running(database_url, "--demo") as hub:
        api = httpx.Client(base_url=f"http://127.0.0.1:{hub.api_port}", headers=TOKEN, timeout=30)
        deadline = time.monotonic() + 90
        while True:
            slots = _slots(api)
            seen = {(_owner(s), s["status"]) for s in slots}
            owners = {owner for owner, _ in seen}
            if owners >= SOURCES or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert owners >= SOURCES, f"slots only from {owners}"
        for source in ("epic-demo", "athena-demo", "google-demo"):
            assert (source, "free") in seen
        assert ("gmed", "busy") in seen
        health = {i["name"]: i["health"] for i in api.get("/api/integrations").json()}
        assert health == {"athena-demo": "ok", "epic-demo": "ok", "google-demo": "ok"}

        for source in sorted(SOURCES):
            free = [s for s in slots if _owner(s) == source and s["status"] == "free"]
            answer = api.post("/api/appointments", json={"slot_id": free[0]["id"]})
            assert answer.status_code == 201, f"{source}: {answer.text}"
            assert answer.json()["status"] == "booked"
            again = api.post("/api/appointments", json={"slot_id": free[0]["id"]})
            assert again.status_code == 409
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            sent = api.get("/api/messages?channel=gmed-out&status=sent").json()["total"]
            if sent:
                break
            time.sleep(0.5)
        assert sent == 1, "the GMED booking went out as an SIU and was ACKed"
