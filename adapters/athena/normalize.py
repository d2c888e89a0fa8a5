"""Stored athena pages (envelopes) to a SourceBundle of canonical FHIR R4 records.

Envelope kinds, as the client names them:

* ``departments`` / ``providers``: Locations / Practitioners.
* ``appointments-open``: free Slots, with a Schedule per provider and department and the
  Practitioner and Location it belongs to.
* ``appointments-booked``, ``appointments-changed``, ``appointment`` (the answer to a GET, a
  booking or a reschedule) and ``webhook`` (``{"id", "type", "resource"}``): Appointments,
  each with the Slot it fills (athena books an open slot under the slot's own appointment id,
  so the Slot keeps its identifier and turns busy). A changed appointment with status 'o' is a
  slot opened again: a free Slot. A cancelled appointment's Slot is ``entered-in-error``
  (athena reopens the time as a new open slot with a new id, which the next page brings) or
  ``busy-unavailable`` when athena says the time was not reopened.
* ``appointment-cancel``: athena's bare ``{"status": "x"}``, with the appointment id in the
  context: the Appointment, cancelled, without times.
* ``appointmenttypes`` and ``subscription``: nothing to store (types are kept on each Slot and
  Appointment as codings).

athena's status code goes through the mapping set's status table (unknown codes park the
page); the code as sent is kept in the extension ``urn:harmony:athena:appointmentstatus``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.athena.resources import (
    MissingField,
    Records,
    appointment_type,
    location,
    minutes_of,
    patient,
    practitioner,
    required,
    schedule,
)
from adapters.athena.times import local_start, window, zone_for
from adapters.athena.values import flag, text
from adapters.contract import Envelope, read_envelope
from canonical.errors import InvalidResource, NothingToStore, RejectedInput
from canonical.model import APPOINTMENT_STATUS
from canonical.records import Identifier, SourceBundle, SourceRecord
from mappings.model import MappingSet

__all__ = ["STATUS_URL", "AthenaError", "normalize", "normalize_bytes"]

STATUS_URL = "urn:harmony:athena:appointmentstatus"
_APPOINTMENT_KINDS = frozenset(
    {"appointments-booked", "appointments-changed", "appointment", "appointment-reschedule"}
)
_NOTHING = {
    "appointmenttypes": "appointment types are reference data; Slots and Appointments carry "
    "them as codings",
    "subscription": "a changed-feed subscription answer carries no records",
}
_PARTICIPANT = {"cancelled": "declined", "noshow": "declined", "entered-in-error": "declined"}


class AthenaError(RejectedInput):
    """The stored body is athena's error answer, not data."""


def normalize_bytes(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    """One stored envelope to its records (a pure function of the bytes and the mapping)."""
    return normalize(read_envelope(raw), mapping, default_timezone)


def normalize(env: Envelope, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    body = env.body
    if isinstance(body, dict) and "error" in body:
        detail = text(body.get("detailedmessage"))
        missing = body.get("missingfields")
        reason = text(body["error"]) + (f" ({detail})" if detail else "")
        if missing:
            reason += f"; missing fields: {', '.join(map(str, missing))}"
        raise AthenaError(f"athena answered {env.request} with an error: {reason}")
    if env.kind in _NOTHING:
        raise NothingToStore(_NOTHING[env.kind])
    page = _Page(env, mapping, default_timezone)
    if env.kind == "departments":
        for item in _items(body, "departments", env):
            location(page.records, item, mapping)
        page.bundle.event = "departments"
    elif env.kind == "providers":
        for item in _items(body, "providers", env):
            practitioner(page.records, item, mapping)
        page.bundle.event = "providers"
    elif env.kind == "appointments-open":
        for item in _items(body, "appointments", env):
            page.open_slot(item)
        page.bundle.event = "slots"
    elif env.kind in _APPOINTMENT_KINDS:
        for item in _items(body, "appointments", env):
            page.appointment(item)
        page.bundle.event = env.kind.removeprefix("appointments-")
    elif env.kind == "appointment-cancel":
        page.cancel_answer(body)
    elif env.kind == "webhook":
        page.webhook(body)
    else:
        raise RejectedInput(f"unknown athena envelope kind {env.kind!r}")
    page.bundle.records = page.records.ordered()
    page.bundle.unmapped = list(dict.fromkeys(page.bundle.unmapped))
    if not page.bundle.records:
        raise NothingToStore(f"{env.kind} page {env.request} lists nothing")
    return page.bundle


def _items(body: Any, key: str, env: Envelope) -> list[dict[str, Any]]:
    """The list under ``key``; athena answers a single GET with a bare list."""
    found = body if isinstance(body, list) else body.get(key) if isinstance(body, dict) else None
    if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
        raise RejectedInput(f"{env.kind} body from {env.request} has no list of {key}")
    return found


@dataclass
class _Page:
    env: Envelope
    mapping: MappingSet
    default_timezone: str
    bundle: SourceBundle = field(default_factory=SourceBundle)
    records: Records = field(init=False)

    def __post_init__(self) -> None:
        self.records = Records(self.env.integration)

    def _actors(self, item: dict[str, Any], what: str) -> tuple[str, str, list[str]]:
        departmentid = required(item, "departmentid", what)
        providerid = text(item.get("providerid"))
        actors = []
        if providerid:
            actors.append(practitioner(self.records, {"providerid": providerid}, self.mapping))
        actors.append(location(self.records, {"departmentid": departmentid}, self.mapping))
        return departmentid, providerid, actors

    def _times(self, item: dict[str, Any], departmentid: str, what: str) -> tuple[str, str, str]:
        day, clock = text(item.get("date")), text(item.get("starttime"))
        if not day or not clock:
            raise MissingField(f"athena {what} {text(item.get('appointmentid'))} has no date/time")
        zone = zone_for(departmentid, self.env.context, self.mapping, self.default_timezone)
        start, end = window(local_start(day, clock, zone), minutes_of(item, what))
        return start, end, f"{day} {clock}"

    def _slot(
        self,
        item: dict[str, Any],
        status: str,
        comment: str | None = None,
        kind: dict[str, Any] | None = None,
    ) -> tuple[str, str, str, str]:
        """The Slot athena's appointment id names; returns (reference, start, end, text)."""
        appointmentid = required(item, "appointmentid", "appointment")
        departmentid, providerid, actors = self._actors(item, "appointment")
        start, end, original = self._times(item, departmentid, "appointment")
        schedule_ref = schedule(self.records, departmentid, providerid, actors)
        body: dict[str, Any] = {"schedule": {"reference": schedule_ref}, "status": status}
        if kind is None:
            kind = appointment_type(self.records, item, self.mapping, self.bundle.unmapped)
        if kind is not None:
            body["appointmentType"] = kind
        body["start"], body["end"] = start, end
        if comment:
            body["comment"] = comment
        ids = [Identifier(self.records.system("appointmentid"), appointmentid)]
        resource = {
            "resourceType": "Slot",
            "identifier": [{"system": ids[0].system, "value": appointmentid}],
            **body,
        }
        ref = self.records.add(SourceRecord("Slot", ids, resource, original_time_text=original))
        return ref, start, end, original

    def open_slot(self, item: dict[str, Any]) -> None:
        self._slot(item, "free")

    def appointment(self, item: dict[str, Any]) -> None:
        appointmentid = required(item, "appointmentid", "appointment")
        code = text(item.get("appointmentstatus"))
        if not code:
            raise MissingField(f"athena appointment {appointmentid} has no appointmentstatus")
        if code.lower() == "o":  # an open slot in the changed feed: the time is free again
            self._slot(item, "free")
            return
        status = self.mapping.status(code)
        if status not in APPOINTMENT_STATUS:
            raise InvalidResource(
                f"mapping set {self.mapping.label} maps {code!r} to {status!r}, "
                "not a FHIR Appointment status"
            )
        body: dict[str, Any] = {
            "extension": [{"url": STATUS_URL, "valueString": code}],
            "status": status,
        }
        participants: list[dict[str, Any]] = []
        part_status = _PARTICIPANT.get(status, "accepted")
        if patientid := text(item.get("patientid")):
            participants.append(
                {"actor": {"reference": patient(self.records, patientid)}, "status": part_status}
            )
        kind = appointment_type(self.records, item, self.mapping, self.bundle.unmapped)
        original = None
        timed = bool(text(item.get("date")) and text(item.get("starttime")))
        if timed or status not in ("cancelled", "proposed", "waitlist"):
            slot_status, comment = _slot_status(status, item)
            slot_ref, start, end, original = self._slot(item, slot_status, comment, kind)
            body["start"], body["end"] = start, end
            body["minutesDuration"] = minutes_of(item, "appointment")
            body["slot"] = [{"reference": slot_ref}]
            for ref in self._actors(item, "appointment")[2]:
                participants.append({"actor": {"reference": ref}, "status": part_status})
        if kind is not None:
            body["appointmentType"] = kind
        if status == "cancelled" and (reason := text(item.get("cancelreasonname"))):
            body["cancelationReason"] = {"text": reason}
        notes = [
            text(n.get("text")) for n in item.get("appointmentnotes") or [] if isinstance(n, dict)
        ]
        if notes := [n for n in notes if n]:
            body["comment"] = "\n".join(notes)
        if not participants:
            raise MissingField(
                f"athena appointment {appointmentid} names no patient, provider or department"
            )
        body["participant"] = participants
        ids = [Identifier(self.records.system("appointmentid"), appointmentid)]
        if (template := text(item.get("templateappointmentid"))) and template != appointmentid:
            ids.append(Identifier(self.records.system("templateappointmentid"), template))
        resource = {
            "resourceType": "Appointment",
            "identifier": [{"system": i.system, "value": i.value} for i in ids],
            **body,
        }
        self.records.add(SourceRecord("Appointment", ids, resource, original_time_text=original))

    def cancel_answer(self, body: Any) -> None:
        """athena's ``{"status": "x"}``; which appointment it was is in the context."""
        if not isinstance(body, dict) or not text(body.get("status")):
            raise RejectedInput(f"cancel answer from {self.env.request} has no status")
        context = self.env.context
        appointmentid = text(context.get("appointmentid"))
        if not appointmentid:
            raise MissingField("cancel answer stored without the appointment id in its context")
        item = {
            "appointmentid": appointmentid,
            "appointmentstatus": body["status"],
            "patientid": context.get("patientid"),
            "cancelreasonname": context.get("cancellationreason"),
        }
        self.appointment(item)
        self.bundle.event = "cancelled"

    def webhook(self, body: Any) -> None:
        if not isinstance(body, dict) or not text(body.get("type")):
            raise RejectedInput(f"webhook {self.env.request} has no event type")
        event = text(body["type"])
        resource = body.get("resource")
        if not resource:
            raise NothingToStore(
                f"webhook {event} {text(body.get('id'))} carries no appointment; "
                "the next sync brings it"
            )
        if not isinstance(resource, dict):
            raise RejectedInput(f"webhook {event} resource is not an athena appointment object")
        self.appointment(resource)
        self.bundle.event = event


def _slot_status(status: str, item: dict[str, Any]) -> tuple[str, str | None]:
    if status != "cancelled":
        return "busy", None
    if "cancelreasonslotavailable" in item and not flag(item["cancelreasonslotavailable"]):
        return "busy-unavailable", "cancelled; athena did not reopen this time"
    return "entered-in-error", "cancelled; athena lists the reopened time as a new open slot"
