"""``/api/waitlist`` over HTTP: joining, ownership, offers of freed slots, answers, races."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.app import create_app
from canonical.search import search
from hub.booking import BookingError, BookingOrder
from hub.message_store import utcnow
from hub.runtime import HubRuntime
from hub.tables import slot_bookings
from hub.tokens import TokenService
from hub.users import create_user
from tests.hub.test_appointments_seed import free_slots, patient, read, upload

MORNINGS = {"preferred_days": ["mon"], "preferred_times": [{"start": "08:00", "end": "10:00"}]}
Clients = dict[str, TestClient]


@pytest.fixture
def slot(runtime: HubRuntime) -> str:
    upload(runtime, [("Dr Ada", "2030-05-06T09:00", "2030-05-06T09:30")])
    (slot_id,) = free_slots(runtime)
    return slot_id


@pytest.fixture
def patients(runtime: HubRuntime) -> dict[str, str]:
    return {n: patient(runtime, n.title()) for n in ("booked", "first", "second")}


@pytest.fixture
def clients(runtime: HubRuntime, patients: dict[str, str]) -> Iterator[Clients]:
    """A client per patient user, and one for a staff user."""
    tokens = TokenService(runtime.settings.secret_key)
    users = {name: ({"patient"}, patient_id) for name, patient_id in patients.items()}
    users["staff"] = ({"staff"}, None)
    with ExitStack() as stack:
        found: Clients = {}
        for name, (roles, patient_id) in users.items():
            user = create_user(runtime.engine, f"u-{name}", roles=roles, patient_id=patient_id)
            app = create_app(runtime.settings, engine=runtime.engine, runtime=runtime)
            client = stack.enter_context(TestClient(app))
            client.headers["Authorization"] = f"Bearer {tokens.issue(user).access_token}"
            found[name] = client
        yield found


def _join(client: TestClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = client.post("/api/waitlist", json=body or {"preferences": MORNINGS})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _free_by_cancel(clients: Clients, slot: str, patients: dict[str, str]) -> None:
    """Book the slot for another patient at the desk, then cancel it: a freed slot."""
    booked = clients["staff"].post(
        "/api/appointments", json={"slot_id": slot, "patient_id": patients["booked"]}
    )
    assert booked.status_code == 201, booked.text
    url = f"/api/appointments/{booked.json()['id']}/cancel"
    cancelled = clients["booked"].post(url, json={"reason": {"code": "pat"}})
    assert cancelled.status_code == 200, cancelled.text


def _offers(client: TestClient, state: str | None = None) -> list[dict[str, Any]]:
    answer = client.get("/api/waitlist/offers", params={"state": state} if state else {})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _live_appointments(runtime: HubRuntime, slot: str) -> list[dict[str, Any]]:
    with Session(runtime.engine) as session:
        found = search(session, "Appointment", [("slot", f"Slot/{slot}"), ("_count", "100")])
    return [a for a in found.resources if a.get("status") != "cancelled"]


def test_join_list_get_and_leave_with_ownership(clients: Clients, patients: dict[str, str]) -> None:
    mine = _join(clients["first"], {"visit_type": "Check-up", "preferences": MORNINGS})
    assert mine["patient_id"] == patients["first"] and mine["active"] is True
    assert mine["visit_type"] == "Check-up" and mine["appointment_id"] is None
    assert mine["preferences"]["preferred_days"] == ["mon"]
    assert mine["created_at"].endswith("Z")
    theirs = _join(clients["staff"], {"patient_id": patients["second"], "practitioner_id": "p1"})
    assert theirs["practitioner_id"] == "Practitioner/p1"

    other = {"patient_id": patients["second"]}
    assert clients["first"].post("/api/waitlist", json=other).status_code == 403
    assert clients["staff"].post("/api/waitlist", json={}).status_code == 422
    assert [e["id"] for e in clients["first"].get("/api/waitlist").json()] == [mine["id"]]
    narrowed = clients["first"].get("/api/waitlist", params={"patient_id": patients["second"]})
    assert [e["id"] for e in narrowed.json()] == [mine["id"]]
    assert len(clients["staff"].get("/api/waitlist").json()) == 2
    by_patient = clients["staff"].get("/api/waitlist", params={"patient_id": patients["second"]})
    assert [e["id"] for e in by_patient.json()] == [theirs["id"]]

    got = clients["first"].get(f"/api/waitlist/{mine['id']}")
    assert got.status_code == 200 and got.json()["offers"] == []
    for path in (f"/api/waitlist/{theirs['id']}", "/api/waitlist/999999"):
        assert clients["first"].get(path).status_code == 403, path
        assert clients["first"].delete(path).status_code == 403, path
    assert clients["staff"].get("/api/waitlist/999999").status_code == 404
    assert clients["staff"].delete("/api/waitlist/999999").status_code == 404

    left = clients["first"].delete(f"/api/waitlist/{mine['id']}")
    assert left.status_code == 200 and left.json()["active"] is False
    assert clients["first"].get("/api/waitlist", params={"active": True}).json() == []
    assert len(clients["first"].get("/api/waitlist", params={"active": False}).json()) == 1
    assert clients["staff"].delete(f"/api/waitlist/{theirs['id']}").json()["active"] is False


@pytest.mark.parametrize(
    ("preferences", "says"),
    [
        ({"timezone": "Mars/Olympus"}, "waitlist preferences cannot be used"),
        ({"preferred_days": ["someday"]}, "preferred_days"),
        ({"preferred_times": [{"start": "25:00", "end": "10:00"}]}, "preferred_times"),
        ({"max_travel_km": -3}, "max_travel_km"),
    ],
)
def test_invalid_preferences_are_422_with_the_reason(
    clients: Clients, preferences: dict[str, Any], says: str
) -> None:
    answer = clients["first"].post("/api/waitlist", json={"preferences": preferences})
    assert answer.status_code == 422 and says in answer.text
    assert clients["first"].get("/api/waitlist").json() == []


def test_a_cancelled_slot_is_offered_notified_and_accepted(
    runtime: HubRuntime, clients: Clients, slot: str, patients: dict[str, str]
) -> None:
    entry = _join(clients["first"], {"visit_type": "Check-up", "preferences": MORNINGS})
    _free_by_cancel(clients, slot, patients)
    runtime.waitlist_pass()

    (offer,) = _offers(clients["first"], "offered")
    assert (offer["slot_id"], offer["entry_id"]) == (slot, entry["id"])
    assert offer["expires_at"].endswith("Z")
    assert _offers(clients["second"]) == []
    assert [o["id"] for o in _offers(clients["staff"])] == [offer["id"]]
    inbox = clients["first"].get("/api/notifications").json()["items"]
    assert [(n["kind"], n["data"]["offer_id"]) for n in inbox] == [("waitlist_offer", offer["id"])]
    url = f"/api/waitlist/offers/{offer['id']}"
    assert clients["second"].post(f"{url}/accept").status_code == 403
    assert clients["second"].post(f"{url}/decline").status_code == 403
    assert clients["first"].post("/api/waitlist/offers/999999/accept").status_code == 403
    assert clients["staff"].post("/api/waitlist/offers/999999/accept").status_code == 404

    accepted = clients["first"].post(f"{url}/accept")
    assert accepted.status_code == 201, accepted.text
    appointment = accepted.json()
    assert appointment["resourceType"] == "Appointment" and appointment["status"] == "booked"
    assert appointment["appointmentType"] == {"text": "Check-up"}
    assert read(runtime, "Slot", slot)["status"] == "busy"
    closed = clients["first"].get(f"/api/waitlist/{entry['id']}").json()
    assert (closed["active"], closed["appointment_id"]) == (False, appointment["id"])
    assert [(o["state"], o["appointment_id"]) for o in closed["offers"]] == [
        ("accepted", appointment["id"])
    ]
    assert clients["first"].post(f"{url}/accept").status_code == 409


def test_staff_accept_on_the_patients_behalf(
    runtime: HubRuntime, clients: Clients, slot: str, patients: dict[str, str]
) -> None:
    _join(clients["first"])
    _free_by_cancel(clients, slot, patients)
    runtime.waitlist_pass()
    (offer,) = _offers(clients["staff"], "offered")
    accepted = clients["staff"].post(f"/api/waitlist/offers/{offer['id']}/accept")
    assert accepted.status_code == 201, accepted.text
    assert {"actor": {"reference": f"Patient/{patients['first']}"}, "status": "accepted"} in (
        accepted.json()["participant"]
    )


def test_expiry_passes_the_slot_on_and_a_late_accept_is_409(
    runtime: HubRuntime, clients: Clients, slot: str, patients: dict[str, str]
) -> None:
    _join(clients["first"])
    _join(clients["second"])
    _free_by_cancel(clients, slot, patients)
    runtime.waitlist_pass()
    (first,) = _offers(clients["first"], "offered")

    runtime.waitlist_pass(utcnow() + timedelta(minutes=31))
    assert _offers(clients["first"])[0]["state"] == "expired"
    (second,) = _offers(clients["second"], "offered")
    assert second["slot_id"] == slot
    late = clients["first"].post(f"/api/waitlist/offers/{first['id']}/accept")
    assert late.status_code == 409 and "expired" in late.text
    assert clients["second"].post(f"/api/waitlist/offers/{second['id']}/accept").status_code == 201


def test_declining_or_leaving_passes_the_slot_on(
    runtime: HubRuntime, clients: Clients, slot: str, patients: dict[str, str]
) -> None:
    _join(clients["first"])
    second_entry = _join(clients["second"])
    _free_by_cancel(clients, slot, patients)
    runtime.waitlist_pass()
    (first,) = _offers(clients["first"], "offered")

    declined = clients["first"].post(f"/api/waitlist/offers/{first['id']}/decline")
    assert declined.status_code == 200, declined.text
    (second,) = _offers(clients["second"], "offered")
    assert declined.json() == {
        "offer_id": first["id"],
        "state": "declined",
        "next_offers": [second["id"]],
    }
    assert clients["first"].post(f"/api/waitlist/offers/{first['id']}/decline").status_code == 409
    assert clients["first"].post(f"/api/waitlist/offers/{first['id']}/accept").status_code == 409

    left = clients["second"].delete(f"/api/waitlist/{second_entry['id']}")
    assert left.status_code == 200 and left.json()["next_offers"] == []  # nobody is left
    assert _offers(clients["second"])[0]["state"] == "declined"
    assert read(runtime, "Slot", slot)["status"] == "free"


def test_the_scheduler_offers_a_freed_slot_within_seconds(
    runtime: HubRuntime, clients: Clients, slot: str, patients: dict[str, str]
) -> None:
    assert runtime.settings.waitlist_poll_seconds == 2.0
    _join(clients["first"])
    runtime.start_scheduler()
    _free_by_cancel(clients, slot, patients)
    deadline = time.monotonic() + 30
    while not _offers(clients["first"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    (offer,) = _offers(clients["first"])
    assert (offer["slot_id"], offer["state"]) == (slot, "offered")


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once from their own threads; their answers in order."""
    start = threading.Barrier(len(calls))
    answers: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        start.wait()
        answers[n] = calls[n]()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_accepts_and_a_desk_booking_race_for_an_offered_slot(
    runtime: HubRuntime, clients: Clients, slot: str, patients: dict[str, str]
) -> None:
    _join(clients["first"])
    _free_by_cancel(clients, slot, patients)
    runtime.waitlist_pass()
    (offer,) = _offers(clients["first"], "offered")
    accept = f"/api/waitlist/offers/{offer['id']}/accept"
    desk = {"slot_id": slot, "patient_id": patients["second"]}

    answers = _race(
        [lambda: clients["staff"].post("/api/appointments", json=desk)]
        + [lambda: clients["first"].post(accept) for _ in range(6)]
    )

    statuses = [a.status_code for a in answers]
    assert sorted(statuses) == [201] + [409] * 6, [a.text for a in answers]
    (winner,) = (a.json() for a in answers if a.status_code == 201)
    (booked,) = _live_appointments(runtime, slot)
    assert booked["id"] == winner["id"]
    with runtime.engine.connect() as conn:
        claims = conn.execute(select(slot_bookings.c.state, slot_bookings.c.appointment_id)).all()
    assert [tuple(c) for c in claims] == [("booked", winner["id"])]
    assert read(runtime, "Slot", slot)["status"] == "busy"
    final = next(o for o in _offers(clients["first"]) if o["id"] == offer["id"])
    if statuses[0] == 201:  # the desk won: the patient's offer lost
        assert (final["state"], final["appointment_id"]) == ("lost", None)
    else:
        assert (final["state"], final["appointment_id"]) == ("accepted", winner["id"])


def test_a_failing_source_answers_502_and_the_offer_stands(
    runtime: HubRuntime,
    clients: Clients,
    slot: str,
    patients: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _join(clients["first"])
    _free_by_cancel(clients, slot, patients)
    runtime.waitlist_pass()
    (offer,) = _offers(clients["first"], "offered")

    def source_down(order: BookingOrder) -> dict[str, Any]:
        raise BookingError(502, "epic could not book: 503 Service Unavailable")

    monkeypatch.setattr(runtime.booking, "book", source_down)
    failed = clients["first"].post(f"/api/waitlist/offers/{offer['id']}/accept")
    assert failed.status_code == 502 and "epic could not book" in failed.text
    assert _offers(clients["first"])[0]["state"] == "offered"
    monkeypatch.undo()
    assert clients["first"].post(f"/api/waitlist/offers/{offer['id']}/accept").status_code == 201
