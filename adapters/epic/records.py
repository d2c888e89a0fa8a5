"""Epic FHIR resources to canonical SourceRecords: plain dict work, no model parsing.

The canonical store validates every record with fhir.resources, so nothing is validated
twice here; this module only re-keys and re-points. Each record's primary identifier is the
Epic id under ``urn:harmony:<integration>:<Type>``; Epic's own identifiers (CSN, NPI) follow
it when they carry a system (a bare value could collide between unrelated records). References
to Practitioner, Location and Patient become conditional references to records emitted in the
same bundle (the full resource when the page included it, else a stub named by the
reference's display); references to anything else keep only their display.

Times: FHIR instants carry offsets; a vendor instant without one is read in the integration's
timezone and its text kept as ``original_time_text``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from adapters.contract import source_system
from adapters.epic.fhir import reference_id
from canonical.errors import RejectedInput
from canonical.records import Identifier, SourceBundle, SourceRecord, conditional_reference
from mappings.model import MappingSet

ACTOR_TYPES = ("Practitioner", "Location", "Patient")

_SLOT_COPY = (
    "serviceCategory",
    "serviceType",
    "specialty",
    "appointmentType",
    "overbooked",
    "comment",
)
_SCHEDULE_COPY = (
    "active",
    "serviceCategory",
    "serviceType",
    "specialty",
    "planningHorizon",
    "comment",
)
_APPOINTMENT_COPY = (
    "cancelationReason",
    "serviceCategory",
    "serviceType",
    "specialty",
    "reasonCode",
    "priority",
    "description",
    "minutesDuration",
    "created",
    "comment",
    "patientInstruction",
    "requestedPeriod",
)
_ACTOR_COPY = {
    "Practitioner": (
        "active",
        "name",
        "telecom",
        "address",
        "gender",
        "birthDate",
        "qualification",
    ),
    "Location": (
        "status",
        "name",
        "alias",
        "description",
        "mode",
        "type",
        "telecom",
        "address",
        "physicalType",
        "position",
    ),
    "Patient": ("active", "name", "telecom", "gender", "birthDate", "address"),
}
_STU3_APPOINTMENT = ("reason", "indication", "incomingReferral")
"""STU3 Appointment elements R4 renamed or removed (reason -> reasonCode is carried over)."""
_DROPPED_APPOINTMENT = ("reasonReference", "basedOn", "supportingInformation")

_new = tuple.__new__


def has_offset(text: str) -> bool:
    """A FHIR dateTime with a time part ends in ``Z`` or ``+hh:mm``/``-hh:mm``."""
    return text[-1] == "Z" or (len(text) > 19 and text[-6] in "+-")


class RecordBuilder:
    """Collects one page's records in dependency order: actors, schedules, slots, appointments."""

    def __init__(
        self,
        integration: str,
        mapping: MappingSet,
        zone: Callable[[], ZoneInfo],
        bundle: SourceBundle,
        included: dict[tuple[str, str], dict[str, Any]],
    ) -> None:
        self._mapping = mapping
        self._zone = zone
        self._bundle = bundle
        self._included = included
        """Full Practitioner/Location/Patient resources the page carried, by (type, id)."""
        self.systems = {
            t: source_system(integration, t)
            for t in ("Schedule", "Slot", "Appointment", *ACTOR_TYPES)
        }
        self._schedule_ref = conditional_reference("Schedule", self.systems["Schedule"], "")
        self._slot_ref = conditional_reference("Slot", self.systems["Slot"], "")
        self.actors: dict[tuple[str, str], SourceRecord] = {}
        self.schedules: dict[str, SourceRecord] = {}
        self.slots: dict[str, SourceRecord] = {}
        self.appointments: list[SourceRecord] = []

    def records(self) -> list[SourceRecord]:
        return [
            *self.actors.values(),
            *self.schedules.values(),
            *self.slots.values(),
            *self.appointments,
        ]

    # ------------------------------------------------------------------ identifiers

    def _identity(
        self, rtype: str, rid: Any, resource: dict[str, Any]
    ) -> tuple[list[Identifier], list[dict[str, Any]]]:
        if not isinstance(rid, str) or not rid:
            raise RejectedInput(f"{rtype} without an id: Epic resources always carry one")
        system = self.systems[rtype]
        ids = [_new(Identifier, (system, rid))]
        fhir_ids: list[dict[str, Any]] = [{"system": system, "value": rid}]
        for ident in resource.get("identifier") or ():
            if ident.get("system") and ident.get("value"):
                ids.append(_new(Identifier, (ident["system"], ident["value"])))
                fhir_ids.append(ident)
        return ids, fhir_ids

    # ------------------------------------------------------------------ actors

    def actor(self, ref: dict[str, Any]) -> dict[str, Any]:
        """A Reference made canonical; emits the Practitioner/Location/Patient it names."""
        display = ref.get("display")
        target = ref.get("reference")
        for rtype in ACTOR_TYPES:
            rid = reference_id(target, rtype)
            if rid is not None:
                self._actor_record(rtype, rid, display)
                out = {"reference": conditional_reference(rtype, self.systems[rtype], rid)}
                if display:
                    out["display"] = display
                return out
        if target:  # a Device, a HealthcareService ...: not stored, so only its name stays
            self._bundle.notes.append(f"reference {target} kept as display only")
            return {"display": display or target}
        return dict(ref)  # display only, or a logical reference by identifier

    def _actor_record(self, rtype: str, rid: str, display: str | None) -> None:
        key = (rtype, rid)
        if key in self.actors:
            return
        full = self._included.get(key)
        ids, fhir_ids = self._identity(rtype, rid, full or {})
        crosswalk = (
            self._mapping.provider(rid)
            if rtype == "Practitioner"
            else self._mapping.location(rid)
            if rtype == "Location"
            else None
        )
        if crosswalk is not None:
            ids.append(_new(Identifier, (crosswalk.system, crosswalk.value)))
            fhir_ids.append({"system": crosswalk.system, "value": crosswalk.value})
        resource: dict[str, Any] = {"resourceType": rtype, "identifier": fhir_ids}
        if full is not None:
            for name in _ACTOR_COPY[rtype]:
                if name in full:
                    resource[name] = full[name]
        elif display:
            resource["name"] = display if rtype == "Location" else [{"text": display}]
        self.actors[key] = SourceRecord(rtype, ids, resource, if_missing=full is None)

    def add_actor(self, resource: dict[str, Any]) -> None:
        """A full Practitioner/Location/Patient the page carried on its own."""
        self._actor_record(resource["resourceType"], resource.get("id") or "", None)

    # ------------------------------------------------------------------ schedules and slots

    def add_schedule(self, res: dict[str, Any]) -> None:
        rid = res.get("id")
        ids, fhir_ids = self._identity("Schedule", rid, res)
        actors = [self.actor(a) for a in res.get("actor") or ()]
        if not actors:
            raise RejectedInput(f"Schedule {rid} has no actor (R4 requires one)")
        out: dict[str, Any] = {"resourceType": "Schedule", "identifier": fhir_ids, "actor": actors}
        for name in _SCHEDULE_COPY:
            if name in res:
                out[name] = res[name]
        self.schedules[rid] = SourceRecord("Schedule", ids, out)  # type: ignore[index]

    def add_slot(self, res: dict[str, Any]) -> None:
        rid = res.get("id")
        system = self.systems["Slot"]
        if not isinstance(rid, str) or not rid:
            raise RejectedInput("Slot without an id: Epic resources always carry one")
        if res.get("identifier"):
            ids, fhir_ids = self._identity("Slot", rid, res)
        else:  # the common case, kept short: Epic slots carry no business identifier
            ids, fhir_ids = [_new(Identifier, (system, rid))], [{"system": system, "value": rid}]
        schedule = res.get("schedule") or {}
        schedule_id = reference_id(schedule.get("reference"), "Schedule")
        if schedule_id is None:
            raise RejectedInput(f"Slot {rid} has no Schedule reference (R4 requires one)")
        status, start, end = res.get("status"), res.get("start"), res.get("end")
        if not status or not start or not end:
            raise RejectedInput(f"Slot {rid} lacks status, start or end (R4 requires all three)")
        original = None
        if not (has_offset(start) and has_offset(end)):
            original = f"{start}/{end}"
            start, end = self._localize(start), self._localize(end)
        out: dict[str, Any] = {
            "resourceType": "Slot",
            "identifier": fhir_ids,
            "schedule": {"reference": self._schedule_ref + schedule_id},
            "status": status,
            "start": start,
            "end": end,
        }
        for name in _SLOT_COPY:
            if name in res:
                out[name] = res[name]
        self.slots[rid] = SourceRecord("Slot", ids, out, original)

    def _localize(self, text: str) -> str:
        if has_offset(text):
            return text
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise RejectedInput(f"{text!r} is not a FHIR dateTime") from None
        if len(text) <= 10:
            return text  # a date: no instant to place in a zone
        return moment.replace(tzinfo=self._zone()).isoformat()

    # ------------------------------------------------------------------ appointments

    def add_appointment(self, res: dict[str, Any]) -> None:
        rid = res.get("id")
        ids, fhir_ids = self._identity("Appointment", rid, res)
        raw_status = res.get("status")
        if not raw_status:
            raise RejectedInput(f"Appointment {rid} has no status (R4 requires one)")
        out: dict[str, Any] = {
            "resourceType": "Appointment",
            "identifier": fhir_ids,
            "status": self._mapping.status(raw_status),
        }
        for name in _APPOINTMENT_COPY:
            if name in res:
                out[name] = res[name]
        if "reason" in res and "reasonCode" not in res:
            out["reasonCode"] = res["reason"]
        for name in (*_STU3_APPOINTMENT[1:], *_DROPPED_APPOINTMENT):
            if name in res:
                self._bundle.notes.append(f"Appointment {rid}: {name} not kept (no stored target)")
        if "appointmentType" in res:
            out["appointmentType"] = self._appointment_type(res["appointmentType"])
        original = None
        start, end = res.get("start"), res.get("end")
        if start and end:
            if not (has_offset(start) and has_offset(end)):
                original = f"{start}/{end}"
                start, end = self._localize(start), self._localize(end)
            out["start"], out["end"] = start, end
        participants = []
        for participant in res.get("participant") or ():
            entry = dict(participant)
            if isinstance(participant.get("actor"), dict):
                entry["actor"] = self.actor(participant["actor"])
            participants.append(entry)
        out["participant"] = participants
        slots = []
        for ref in res.get("slot") or ():
            slot_id = reference_id(ref.get("reference"), "Slot")
            if slot_id is not None and slot_id in self.slots:
                slots.append({"reference": self._slot_ref + slot_id})
            else:
                self._bundle.notes.append(
                    f"Appointment {rid}: slot {ref.get('reference')} is not on this page"
                )
        if slots:
            out["slot"] = slots
        self.appointments.append(SourceRecord("Appointment", ids, out, original))

    def _appointment_type(self, concept: dict[str, Any]) -> dict[str, Any]:
        codings = []
        for coding in concept.get("coding") or ():
            code = coding.get("code")
            mapped = self._mapping.appointment_type(code) if code else None
            if mapped is None:
                if code:
                    self._bundle.unmapped.append(("appointment_types", code))
                codings.append(coding)
            else:
                codings.append(mapped.model_dump(exclude_none=True))
        out = dict(concept)
        if codings:
            out["coding"] = codings
        return out
