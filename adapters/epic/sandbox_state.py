"""What the Epic sandbox knows: registered clients, tokens, resources and injected faults.

Tests seed it and drive its faults from their own thread while the server answers from
uvicorn's, so every change goes through one lock.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right, insort
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from joserfc.jwk import KeySet

CSN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8"
"""Epic's appointment contact serial number (CSN) identifier system."""
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
VISIT_TYPE_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.2.808267"


def instant(moment: datetime) -> str:
    """Epic's instants: UTC with a ``Z``, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Issued:
    client_id: str
    issued_at: float
    expires_at: float


@dataclass
class Failure:
    status: int
    retry_after: int | None
    path: str


@dataclass
class Faults:
    """Misbehaviour the next requests meet; tests switch it on and off."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pending: deque[Failure] = field(default_factory=deque)
    slow_seconds: float = 0.0
    slow_remaining: int | None = None
    """How many more requests are slowed; None slows every request while slow_seconds > 0."""
    broken_page: int | None = None
    """Slot search pages with this number answer 500 until ``clear``."""
    revoked_before: float = 0.0
    """Tokens issued before this ``time.time()`` are refused as expired."""

    def fail_next(
        self,
        status: int = 500,
        retry_after: int | None = None,
        *,
        times: int = 1,
        path: str = "/api/FHIR/",
    ) -> None:
        """The next ``times`` requests whose path contains ``path`` answer ``status``."""
        with self._lock:
            for _ in range(times):
                self._pending.append(Failure(status, retry_after, path))

    def slow(self, seconds: float, times: int | None = None) -> None:
        with self._lock:
            self.slow_seconds, self.slow_remaining = seconds, times

    def break_page(self, page: int) -> None:
        self.broken_page = page

    def expire_tokens(self) -> None:
        """Every token issued so far is treated as expired (as after an Epic restart)."""
        self.revoked_before = time.time() + 1e-6

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
            self.slow_seconds, self.slow_remaining, self.broken_page = 0.0, None, None

    def take_failure(self, path: str) -> Failure | None:
        with self._lock:
            for failure in self._pending:
                if failure.path in path:
                    self._pending.remove(failure)
                    return failure
        return None

    def take_delay(self) -> float:
        with self._lock:
            if self.slow_seconds <= 0:
                return 0.0
            if self.slow_remaining is not None:
                if self.slow_remaining <= 0:
                    return 0.0
                self.slow_remaining -= 1
            return self.slow_seconds


@dataclass(frozen=True, slots=True)
class SlotQuery:
    schedule: str
    status: frozenset[str] | None
    """The statuses asked for (a FHIR token list is an OR); None (no filter) is every status."""
    ge: datetime | None
    lt: datetime | None


class EpicSandboxState:
    """The sandbox's data; ``seed_demo`` and ``seed_slots`` fill it for tests and benchmarks."""

    def __init__(self, token_lifetime: int = 3600) -> None:
        self.lock = threading.RLock()
        self.faults = Faults()
        self.token_lifetime = token_lifetime
        self.clients: dict[str, KeySet] = {}
        self.tokens: dict[str, Issued] = {}
        self.seen_jti: dict[str, float] = {}
        self.token_requests = 0
        self.requests: list[str] = []
        """``METHOD path?query`` of every FHIR request, for tests that count fetches."""
        self.practitioners: dict[str, dict[str, Any]] = {}
        self.locations: dict[str, dict[str, Any]] = {}
        self.patients: dict[str, dict[str, Any]] = {}
        self.schedules: dict[str, dict[str, Any]] = {}
        self.slots: dict[str, dict[str, Any]] = {}
        self.appointments: dict[str, dict[str, Any]] = {}
        self._by_schedule: dict[str, list[tuple[datetime, str]]] = {}
        self._serial = 1000

    # ------------------------------------------------------------------ clients

    def register_client(self, client_id: str, jwks: dict[str, Any]) -> None:
        """Register a backend client by the public JWKS it will sign assertions with."""
        with self.lock:
            self.clients[client_id] = KeySet.import_key_set(jwks)  # type: ignore[arg-type]

    def _next_id(self, prefix: str) -> str:
        with self.lock:
            self._serial += 1
            return f"{prefix}{self._serial}"

    # ------------------------------------------------------------------ seeding

    def add_practitioner(self, name: str, npi: str | None = None) -> str:
        pid = self._next_id("ePr")
        family, _, given = name.partition(", ")
        resource: dict[str, Any] = {
            "resourceType": "Practitioner",
            "id": pid,
            "active": True,
            "name": [{"text": name, "family": family, "given": [given] if given else []}],
        }
        if npi:
            resource["identifier"] = [{"use": "usual", "system": NPI_SYSTEM, "value": npi}]
        with self.lock:
            self.practitioners[pid] = resource
        return pid

    def add_location(self, name: str) -> str:
        lid = self._next_id("eLo")
        with self.lock:
            self.locations[lid] = {
                "resourceType": "Location",
                "id": lid,
                "status": "active",
                "name": name,
                "mode": "instance",
            }
        return lid

    def add_patient(self, name: str) -> str:
        pid = self._next_id("ePa")
        family, _, given = name.partition(", ")
        with self.lock:
            self.patients[pid] = {
                "resourceType": "Patient",
                "id": pid,
                "name": [{"text": name, "family": family, "given": [given] if given else []}],
            }
        return pid

    def add_schedule(self, practitioner_id: str, location_id: str | None = None) -> str:
        sid = self._next_id("eSc")
        with self.lock:
            actors = [_actor("Practitioner", self.practitioners[practitioner_id])]
            if location_id:
                actors.append(_actor("Location", self.locations[location_id]))
            self.schedules[sid] = {
                "resourceType": "Schedule",
                "id": sid,
                "active": True,
                "serviceType": [{"text": "Office Visit"}],
                "actor": actors,
            }
            self._by_schedule[sid] = []
        return sid

    def add_slot(
        self,
        schedule_id: str,
        start: datetime,
        minutes: int = 20,
        status: str = "free",
        visit_type: tuple[str, str] = ("1004", "Office Visit"),
    ) -> str:
        slot_id = self._next_id("eSl")
        start = start.astimezone(UTC).replace(microsecond=0)
        resource = {
            "resourceType": "Slot",
            "id": slot_id,
            "serviceType": [
                {
                    "coding": [
                        {
                            "system": VISIT_TYPE_SYSTEM,
                            "code": visit_type[0],
                            "display": visit_type[1],
                        }
                    ],
                    "text": visit_type[1],
                }
            ],
            "schedule": {"reference": f"Schedule/{schedule_id}"},
            "status": status,
            "start": instant(start),
            "end": instant(start + timedelta(minutes=minutes)),
        }
        with self.lock:
            self.slots[slot_id] = resource
            insort(self._by_schedule[schedule_id], (start, slot_id))
        return slot_id

    def seed_demo(
        self,
        days: int = 14,
        *,
        start: date | None = None,
        timezone: str = "America/Chicago",
        slot_minutes: int = 20,
    ) -> list[str]:
        """Three clinicians at two clinics with free weekday slots 9:00-12:00 local time;
        returns the Schedule ids."""
        zone = ZoneInfo(timezone)
        first = start or datetime.now(zone).date()
        north, south = self.add_location("North Clinic"), self.add_location("South Clinic")
        people = [
            ("Lee, Avery", "1234567893", north),
            ("Okafor, Chidi", "1245319599", north),
            ("Nakamura, Emi", "1679576722", south),
        ]
        schedules = []
        for name, npi, clinic in people:
            sid = self.add_schedule(self.add_practitioner(name, npi), clinic)
            schedules.append(sid)
            for offset in range(days):
                day = first + timedelta(days=offset)
                if day.weekday() >= 5:
                    continue
                moment = datetime(day.year, day.month, day.day, 9, tzinfo=zone)
                while moment.hour < 12:
                    self.add_slot(sid, moment, slot_minutes)
                    moment += timedelta(minutes=slot_minutes)
        self.add_patient("Rivera, Sam")
        return schedules

    def seed_slots(self, n: int, *, days: int = 14, start: datetime | None = None) -> str:
        """``n`` free slots back to back on one new schedule, spread over ``days`` from
        midnight UTC today (what a default sync window covers); returns its Schedule id."""
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first = (start or today).astimezone(UTC).replace(microsecond=0)
        step = timedelta(seconds=max(1, days * 86400 // max(n, 1)))
        sid = self.add_schedule(self.add_practitioner("Bench, Casey"), self.add_location("Bench"))
        with self.lock:
            rows = self._by_schedule[sid]
            serial = self._serial
            for i in range(n):
                serial += 1
                slot_id, moment = f"eSl{serial}", first + i * step
                self.slots[slot_id] = {
                    "resourceType": "Slot",
                    "id": slot_id,
                    "schedule": {"reference": f"Schedule/{sid}"},
                    "status": "free",
                    "start": instant(moment),
                    "end": instant(moment + step),
                }
                rows.append((moment, slot_id))
            self._serial = serial
            rows.sort()
        return sid

    # ------------------------------------------------------------------ queries

    def slot_page(
        self, query: SlotQuery, count: int, after: tuple[datetime, str] | None
    ) -> tuple[list[dict[str, Any]], tuple[datetime, str] | None]:
        """Up to ``count`` matching slots after ``after``; the last one's key if more follow."""
        with self.lock:
            rows = self._by_schedule.get(query.schedule, [])
            if after is not None:
                i = bisect_right(rows, after)
            elif query.ge is not None:
                i = bisect_left(rows, (query.ge, ""))
            else:
                i = 0
            found: list[dict[str, Any]] = []
            while i < len(rows):
                moment, slot_id = rows[i]
                if query.lt is not None and moment >= query.lt:
                    break
                slot = self.slots[slot_id]
                if query.status is None or slot["status"] in query.status:
                    if len(found) == count:
                        last = found[-1]
                        return found, (_utc(last["start"]), last["id"])
                    found.append(slot)
                i += 1
            return found, None

    def free_slots_between(
        self, start: datetime, end: datetime, practitioner: str | None
    ) -> list[dict[str, Any]]:
        with self.lock:
            found = []
            for sid, schedule in self.schedules.items():
                refs = {a.get("reference") for a in schedule["actor"]}
                if practitioner and f"Practitioner/{practitioner}" not in refs:
                    continue
                rows = self._by_schedule[sid]
                for i in range(bisect_left(rows, (start, "")), len(rows)):
                    moment, slot_id = rows[i]
                    if moment >= end:
                        break
                    if self.slots[slot_id]["status"] == "free":
                        found.append(self.slots[slot_id])
            return sorted(found, key=lambda s: s["start"])

    # ------------------------------------------------------------------ bookings

    def take_slot(self, slot_id: str, patient_id: str | None = None) -> dict[str, Any]:
        """Book a free slot as another Epic user would (front desk, MyChart): no Harmony
        request involved; returns the Appointment. KeyError/ValueError as ``book``."""
        with self.lock:
            pid = patient_id or next(iter(self.patients), None) or self.add_patient("Doe, Jo")
            patient = self.patients[pid]
            actor = {"reference": f"Patient/{pid}", "display": patient["name"][0]["text"]}
            return self.book(slot_id, actor, {"comment": "booked in Epic"})

    def book(self, slot_id: str, patient: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
        """Mark the slot busy and create its Appointment; KeyError/ValueError when it cannot."""
        with self.lock:
            slot = self.slots[slot_id]
            if slot["status"] != "free":
                raise ValueError(slot["status"])
            schedule = self.schedules[slot["schedule"]["reference"].split("/")[-1]]
            appt_id = self._next_id("eAp")
            participants = [
                {"actor": patient, "required": "required", "status": "accepted"},
                *(
                    {"actor": dict(actor), "required": "required", "status": "accepted"}
                    for actor in schedule["actor"]
                ),
            ]
            appointment = {
                "resourceType": "Appointment",
                "id": appt_id,
                "identifier": [{"use": "usual", "system": CSN_SYSTEM, "value": appt_id[3:]}],
                "status": "booked",
                **extra,
                "start": slot["start"],
                "end": slot["end"],
                "slot": [{"reference": f"Slot/{slot_id}"}],
                "participant": participants,
            }
            slot["status"] = "busy"
            self.appointments[appt_id] = appointment
            return appointment

    def cancel(self, appointment_id: str, reason: dict[str, Any] | None) -> dict[str, Any]:
        """Cancel and free its slots; KeyError for an unknown appointment."""
        with self.lock:
            appointment = self.appointments[appointment_id]
            if appointment["status"] != "cancelled":
                appointment["status"] = "cancelled"
                if reason:
                    appointment["cancelationReason"] = reason
                for ref in appointment.get("slot") or []:
                    slot = self.slots.get(ref["reference"].split("/")[-1])
                    if slot is not None:
                        slot["status"] = "free"
            return appointment


def _actor(resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
    name = resource.get("name")
    display = name if isinstance(name, str) else (name or [{}])[0].get("text", "")
    return {"reference": f"{resource_type}/{resource['id']}", "display": display}


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
