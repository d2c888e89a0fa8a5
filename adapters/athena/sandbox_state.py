"""The practice a sandbox serves, and the faults tests inject into it.

Kept apart from the HTTP layer so tests seed and inspect it directly. Every mutation takes
the lock: the server runs in another thread than the test that seeds and inspects it.
athena's own behaviour is mirrored where the client depends on it: booking turns an open
slot's appointment id into the booked appointment; cancelling keeps the id (status 'x') and
reopens the time as a new open slot with a new id; changes reach the changed feed only while
the practice is subscribed; the feed remembers when it handed each change out (Eastern time,
as athena's showprocessedstartdatetime/enddatetime read it), so those can be asked again.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

DATE_FORMAT = "%m/%d/%Y"
STAMP_FORMAT = "%m/%d/%Y %H:%M:%S"
EASTERN = ZoneInfo("America/New_York")
SUBSCRIPTION_EVENTS = (
    "ScheduleAppointment",
    "CheckIn",
    "CheckOut",
    "UpdateAppointment",
    "CancelAppointment",
    "FreezeAppointment",
    "UnfreezeAppointment",
    "DeleteAppointment",
    "AddAppointmentSlot",
)


@dataclass
class Department:
    departmentid: str
    name: str
    patientdepartmentname: str
    timezonename: str = "US/Eastern"
    timezone: int = -5
    address: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    phone: str = ""


@dataclass
class Provider:
    providerid: int
    firstname: str
    lastname: str
    providertype: str = "MD"
    specialty: str = "Family Medicine"
    sex: str = "F"
    npi: int | None = None


@dataclass
class AppointmentType:
    appointmenttypeid: str
    name: str
    shortname: str
    duration: int


@dataclass
class Appointment:
    appointmentid: int
    departmentid: str
    providerid: int
    appointmenttypeid: str
    day: date
    starttime: str
    duration: int
    status: str = "o"
    patientid: str | None = None
    cancelreasonname: str | None = None
    cancelleddatetime: str | None = None
    scheduleddatetime: str | None = None
    lastmodified: str = ""
    notes: list[str] = field(default_factory=list)


@dataclass
class Failure:
    status: int
    retry_after: float | None = None
    error: str | None = None
    path: str | None = None


class Faults:
    """Faults the next requests meet. Token requests are spared unless a path says so."""

    def __init__(self) -> None:
        self._queue: deque[Failure] = deque()
        self._lock = threading.Lock()
        self.slow_seconds = 0.0
        self.break_page: int | None = None
        self.break_path: str | None = None
        self.break_status = 500
        self.break_times: int | None = None

    def fail_next(
        self,
        status: int = 500,
        *,
        retry_after: float | None = None,
        error: str | None = None,
        times: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` and an athena body."""
        with self._lock:
            for _ in range(times):
                self._queue.append(Failure(status, retry_after, error, path))

    def break_paging_at(
        self, page: int, *, path: str | None = None, status: int = 500, times: int | None = None
    ) -> None:
        """Fail every request for page ``page`` (1-based, from offset/limit) until healed."""
        self.break_page, self.break_path = page, path
        self.break_status, self.break_times = status, times

    def heal(self) -> None:
        with self._lock:
            self._queue.clear()
        self.break_page = None
        self.slow_seconds = 0.0

    def take(self, path: str) -> Failure | None:
        with self._lock:
            for failure in self._queue:
                wanted = failure.path
                if (wanted is None and "/oauth2/" not in path) or (wanted and wanted in path):
                    self._queue.remove(failure)
                    return failure
        return None

    def page_failure(self, path: str, offset: int, limit: int) -> Failure | None:
        if self.break_page is None or (self.break_path and self.break_path not in path):
            return None
        if offset // max(limit, 1) + 1 != self.break_page:
            return None
        if self.break_times is not None:
            if self.break_times <= 0:
                return None
            self.break_times -= 1
        return Failure(self.break_status, error="An internal error occurred.")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]


class AthenaSandboxState:
    """One practice: reference data, appointments, tokens, subscription and faults."""

    def __init__(
        self,
        practiceid: str = "195900",
        *,
        client_id: str = "sandbox-client",
        client_secret: str = "sandbox-secret",
        token_lifetime: int = 3600,
        default_limit: int = 1500,
    ) -> None:
        self.practiceid = practiceid
        self.clients = {client_id: client_secret}
        self.token_lifetime = token_lifetime
        self.default_limit = default_limit
        self.lock = threading.RLock()
        self.departments: dict[str, Department] = {}
        self.providers: dict[int, Provider] = {}
        self.appointment_types: dict[str, AppointmentType] = {}
        self.appointments: dict[int, Appointment] = {}
        self.tokens: dict[str, float] = {}
        self.subscribed = False
        self.changes: deque[int] = deque()
        self.processed: list[tuple[datetime, int]] = []
        """Every change the feed handed out: when (Eastern, naive) and which appointment."""
        self.faults = Faults()
        self.rate_limit: int | None = None
        """Requests a second above which the sandbox answers 429; None: no limit."""
        self.rate_retry_after = 1
        self.requests: list[Request] = []
        self._recent: deque[float] = deque()
        self._next_id = 1_000_000

    # -- reference data and seeding -------------------------------------------------------

    def add_department(self, department: Department) -> Department:
        with self.lock:
            self.departments[department.departmentid] = department
        return department

    def add_provider(self, provider: Provider) -> Provider:
        with self.lock:
            self.providers[provider.providerid] = provider
        return provider

    def add_appointment_type(self, kind: AppointmentType) -> AppointmentType:
        with self.lock:
            self.appointment_types[kind.appointmenttypeid] = kind
        return kind

    def add_slot(
        self,
        departmentid: str,
        providerid: int,
        appointmenttypeid: str,
        day: date,
        starttime: str,
        duration: int,
    ) -> Appointment:
        """An open appointment slot (status 'o'), as 'Add appointment slot' makes one."""
        with self.lock:
            slot = Appointment(
                self._new_id(),
                departmentid,
                providerid,
                appointmenttypeid,
                day,
                starttime,
                duration,
                lastmodified=_stamp(),
            )
            self.appointments[slot.appointmentid] = slot
            self._changed(slot)
            return slot

    def seed_demo(self, days: int = 14, start: date | None = None) -> None:
        """A small family practice: two departments in two time zones, three providers,
        three appointment types, a morning of open slots per provider and weekday."""
        first = start or date.today()
        self.add_department(
            Department(
                "1",
                "HARBOR FAMILY MED",
                "Harbor Family Medicine",
                "US/Eastern",
                -5,
                "12 WHARF ST",
                "PORTLAND",
                "ME",
                "04101",
                "(207) 555-0101",
            )
        )
        self.add_department(
            Department(
                "2",
                "MESA PEDIATRICS",
                "Mesa Pediatrics",
                "America/Denver",
                -7,
                "400 CANYON RD",
                "SANTA FE",
                "NM",
                "87501",
                "(505) 555-0199",
            )
        )
        self.add_provider(
            Provider(71, "Terry", "Ahmad", "MD", "Internal Medicine", "M", 1234567893)
        )
        self.add_provider(Provider(86, "Grace", "Okafor", "NP", "Family Medicine", "F", 1245319599))
        self.add_provider(Provider(87, "Lena", "Morales", "MD", "Pediatrics", "F", 1679576722))
        self.add_appointment_type(AppointmentType("2", "Office Visit", "OV", 15))
        self.add_appointment_type(AppointmentType("42", "Established Visit", "EST", 30))
        self.add_appointment_type(AppointmentType("82", "New Patient", "NP", 30))
        plan = ((71, "1", "2", 15), (86, "1", "42", 30), (87, "2", "82", 30))
        for offset in range(days):
            day = first + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for providerid, departmentid, typeid, minutes in plan:
                moment = datetime.combine(day, datetime.min.time()).replace(hour=9)
                while moment.hour < 12:
                    self.add_slot(
                        departmentid, providerid, typeid, day, moment.strftime("%H:%M"), minutes
                    )
                    moment += timedelta(minutes=minutes)

    def seed_slots(self, count: int, start: date | None = None) -> list[Appointment]:
        """``count`` open 15-minute slots for one provider in one department, fast."""
        if "1" not in self.departments:
            self.add_department(Department("1", "MAIN CLINIC", "Main Clinic", "US/Eastern"))
        if 71 not in self.providers:
            self.add_provider(Provider(71, "Terry", "Ahmad", npi=1234567893))
        if "2" not in self.appointment_types:
            self.add_appointment_type(AppointmentType("2", "Office Visit", "OV", 15))
        day = start or date.today()
        made = []
        for n in range(count):
            minute = 8 * 60 + 15 * (n % 36)
            made.append(
                self.add_slot(
                    "1",
                    71,
                    "2",
                    day + timedelta(days=n // 36),
                    f"{minute // 60:02}:{minute % 60:02}",
                    15,
                )
            )
        return made

    # -- tokens, rate limit, request log ---------------------------------------------------

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.monotonic() + self.token_lifetime
        return token

    def token_valid(self, token: str) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and expires > time.monotonic()

    def expire_tokens(self) -> None:
        """Every issued token stops working, as when athena rotates them early."""
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def over_rate_limit(self) -> bool:
        if self.rate_limit is None:
            return False
        now = time.monotonic()
        with self.lock:
            while self._recent and now - self._recent[0] > 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.rate_limit:
                return True
            self._recent.append(now)
        return False

    def record(self, method: str, path: str, query: dict[str, str]) -> None:
        with self.lock:
            self.requests.append(Request(method, path, query))

    # -- appointment lifecycle -------------------------------------------------------------

    def book(
        self, appointmentid: int, patientid: str, appointmenttypeid: str | None
    ) -> Appointment:
        with self.lock:
            slot = self.appointments.get(appointmentid)
            if slot is None or slot.status != "o":
                raise SandboxRefusal(
                    "The appointment ID is already booked or is not marked as being available "
                    "to be scheduled."
                )
            slot.status, slot.patientid = "f", patientid
            if appointmenttypeid:
                slot.appointmenttypeid = appointmenttypeid
            slot.scheduleddatetime = slot.lastmodified = _stamp()
            self._changed(slot)
            return slot

    def cancel(self, appointmentid: int, patientid: str, reason: str) -> Appointment:
        with self.lock:
            appointment = self.appointments.get(appointmentid)
            if appointment is None:
                raise SandboxRefusal("The appointment ID is invalid.", status=404)
            if appointment.status not in ("f", "2"):
                raise SandboxRefusal("The appointment is not scheduled.")
            if appointment.patientid != patientid:
                raise SandboxRefusal("The patient ID does not match the appointment.")
            appointment.status = "x"
            appointment.cancelreasonname = "CANCELLED FROM API"
            appointment.cancelleddatetime = appointment.lastmodified = _stamp()
            appointment.notes.append(
                f"API appointment cancellation. Reported reason for cancellation: {reason}"
            )
            self._changed(appointment)
            self.add_slot(
                appointment.departmentid,
                appointment.providerid,
                appointment.appointmenttypeid,
                appointment.day,
                appointment.starttime,
                appointment.duration,
            )
            return appointment

    def reschedule(self, appointmentid: int, newappointmentid: int, patientid: str) -> Appointment:
        with self.lock:
            old = self.appointments.get(appointmentid)
            if old is None or old.status not in ("f", "2"):
                raise SandboxRefusal("The appointment is not scheduled.")
            if old.patientid != patientid:
                raise SandboxRefusal("The patient ID does not match the appointment.")
            new = self.book(newappointmentid, patientid, old.appointmenttypeid)
            self.cancel(appointmentid, patientid, "Rescheduled")
            old.cancelreasonname = "RESCHEDULED"
            return new

    def set_status(self, appointmentid: int, status: str) -> Appointment:
        """Check-in ('2'), check-out ('3') and the like, as the front desk does."""
        with self.lock:
            appointment = self.appointments[appointmentid]
            appointment.status, appointment.lastmodified = status, _stamp()
            self._changed(appointment)
            return appointment

    def take_changes(self, limit: int, keep: bool) -> tuple[list[Appointment], int]:
        """Up to ``limit`` pending changes and how many were pending; taken ones are marked
        processed unless ``keep`` (athena's leaveunprocessed)."""
        with self.lock:
            pending = len(self.changes)
            ids = list(self.changes)[:limit]
            if not keep:
                now = eastern_now()
                for appointmentid in ids:
                    self.changes.popleft()
                    self.processed.append((now, appointmentid))
            return [self.appointments[i] for i in ids], pending

    def processed_changes(self, start: datetime, end: datetime) -> list[Appointment]:
        """The changes handed out from ``start`` to ``end`` (Eastern, to the second, both
        included), in the order they were handed out; reading them marks nothing."""
        with self.lock:
            return [
                self.appointments[appointmentid]
                for at, appointmentid in self.processed
                if start <= at.replace(microsecond=0) <= end
            ]

    def age_processed(self, seconds: float) -> None:
        """Move every hand-out back in time, as if the feed had been read that long ago."""
        with self.lock:
            self.processed = [(at - timedelta(seconds=seconds), i) for at, i in self.processed]

    def _changed(self, appointment: Appointment) -> None:
        if self.subscribed:
            if appointment.appointmentid in self.changes:
                self.changes.remove(appointment.appointmentid)
            self.changes.append(appointment.appointmentid)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id


class SandboxRefusal(Exception):
    """athena's refusal of a write, answered with its message (HTTP 400 unless stated)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def eastern_now() -> datetime:
    """athena's clock: Eastern time, without an offset."""
    return datetime.now(EASTERN).replace(tzinfo=None)


def _stamp() -> str:
    return datetime.now().strftime(STAMP_FORMAT)


def appointment_json(appointment: Appointment, types: dict[str, AppointmentType]) -> dict[str, Any]:
    """A booked or changed appointment as athena lists it: ids as strings (as recorded)."""
    kind = appointment.appointmenttypeid
    name = types[kind].name if kind in types else ""
    body: dict[str, Any] = {
        "date": appointment.day.strftime(DATE_FORMAT),
        "appointmentid": str(appointment.appointmentid),
        "starttime": appointment.starttime,
        "departmentid": appointment.departmentid,
        "appointmentstatus": appointment.status,
        "duration": str(appointment.duration),
        "appointmenttypeid": kind,
        "appointmenttype": name,
        "patientappointmenttypename": name,
        "providerid": str(appointment.providerid),
        "lastmodified": appointment.lastmodified,
        "coordinatorenterprise": "false",
        "templateappointmentid": str(appointment.appointmentid),
    }
    if appointment.patientid:
        body["patientid"] = appointment.patientid
    if appointment.scheduleddatetime:
        body["scheduleddatetime"] = appointment.scheduleddatetime
    if appointment.status == "x":
        body["cancelreasonname"] = appointment.cancelreasonname
        body["cancelleddatetime"] = appointment.cancelleddatetime
        body["cancelreasonslotavailable"] = True
    if appointment.notes:
        body["appointmentnotes"] = [
            {"displayonschedule": False, "text": note, "id": 40000 + n}
            for n, note in enumerate(appointment.notes)
        ]
    return body


def open_json(appointment: Appointment, types: dict[str, AppointmentType]) -> dict[str, Any]:
    """An open slot as /appointments/open lists it: ids and duration as numbers."""
    kind = types.get(appointment.appointmenttypeid)
    name = kind.name if kind else ""
    return {
        "date": appointment.day.strftime(DATE_FORMAT),
        "appointmentid": appointment.appointmentid,
        "departmentid": int(appointment.departmentid),
        "localproviderid": appointment.providerid,
        "providerid": appointment.providerid,
        "starttime": appointment.starttime,
        "duration": appointment.duration,
        "appointmenttypeid": int(appointment.appointmenttypeid),
        "reasonid": ["-1"],
        "appointmenttype": name,
        "patientappointmenttypename": name,
    }
