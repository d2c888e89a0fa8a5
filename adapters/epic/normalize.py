"""Stored Epic pages (envelopes) to canonical records.

Envelope kinds, as the client writes them:

* ``schedule-bundle``: Schedule search page -> Practitioner/Location stubs and Schedules.
* ``slot-bundle``: Slot search page (every status: free, busy ...) with its Schedule included
  -> actors, Schedule, Slots, each with Epic's status.
* ``find-bundle``: ``$find`` answer -> the proposed Appointments (status ``proposed``).
* ``appointment`` / ``appointment-bundle``: Appointment read / search page.
* ``book-response`` / ``cancel-response``: the ``$book`` answer (booked / cancelled Appointment).
* ``resource``: any single resource read (Practitioner, Location, Schedule, Slot ...).
* ``webhook``: ``{"id", "type": "booked"|"cancelled"|"schedule-updated", "resource"?}``.

Every kind accepts a single resource or a Bundle. An OperationOutcome with an error is
refused with its diagnostics; informational outcomes (Epic's "No resources were found", the
IHE "operation was successful") ride along as notes, and a page with nothing else is
``NothingToStore``.

Argonaut Scheduling (STU3) bodies are read as R4: the Slot, Schedule and Appointment elements
it uses (status codes, instants with offsets, actor references, participant.required and
.status, serviceType, specialty, appointmentType, requestedPeriod) have the same names, types
and code lists in R4. R4 renamed Appointment.reason to reasonCode (carried over) and removed
indication and incomingReferral (noted and dropped). Parameters (an operation's input) are refused.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters.contract import read_envelope
from adapters.epic.fhir import is_error_outcome, outcome_text
from adapters.epic.records import ACTOR_TYPES, RecordBuilder
from canonical.errors import NothingToStore, RejectedInput
from canonical.records import SourceBundle
from mappings.model import MappingSet

__all__ = ["EVENTS", "WEBHOOK_TYPES", "normalize_bytes"]

EVENTS = {
    "schedule-bundle": "schedules-synced",
    "slot-bundle": "availability-synced",
    "find-bundle": "proposed",
    "appointment": "appointment-read",
    "appointment-bundle": "appointments-synced",
    "book-response": "booked",
    "cancel-response": "cancelled",
    "resource": "resource-read",
}
WEBHOOK_TYPES = frozenset({"booked", "cancelled", "schedule-updated"})
_STORED = frozenset({"Schedule", "Slot", "Appointment", *ACTOR_TYPES})


def normalize_bytes(raw: bytes, mapping: MappingSet, default_timezone: str) -> SourceBundle:
    """The records one stored Epic page describes, referenced records first."""
    env = read_envelope(raw)
    kind, body = env.kind, env.body
    if kind == "webhook":
        event, body = _webhook(body)
    elif kind in EVENTS:
        event = EVENTS[kind]
    else:
        raise RejectedInput(f"unknown Epic envelope kind {kind!r}")
    tz_name = env.context.get("timezone")

    def zone() -> ZoneInfo:
        return _zone(tz_name) if tz_name else mapping.zone(default_timezone)

    bundle = SourceBundle(event=event)
    resources = _resources(body, bundle)
    included = {
        (r["resourceType"], r["id"]): r
        for r in resources
        if r.get("resourceType") in ACTOR_TYPES and isinstance(r.get("id"), str)
    }
    builder = RecordBuilder(env.integration, mapping, zone, bundle, included)
    appointments = []
    for res in resources:
        rtype = res.get("resourceType")
        if rtype == "Slot":
            builder.add_slot(res)
        elif rtype == "Schedule":
            builder.add_schedule(res)
        elif rtype == "Appointment":
            appointments.append(res)  # after the slots they may point at
        elif rtype in ACTOR_TYPES:
            builder.add_actor(res)
        else:
            bundle.notes.append(f"{rtype} is not a resource Harmony stores; skipped")
    for res in appointments:
        builder.add_appointment(res)
    bundle.records = builder.records()
    if not bundle.records:
        why = "; ".join(bundle.notes) or "no resources"
        raise NothingToStore(f"Epic {kind} page holds nothing to store ({why})")
    return bundle


def _webhook(body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise RejectedInput("Epic webhook body lacks its event type")
    event = body["type"]
    if event not in WEBHOOK_TYPES:
        raise NothingToStore(f"Epic webhook event {event!r} is not a scheduling event we read")
    if not body.get("resource"):
        raise NothingToStore(f"Epic webhook {body.get('id')} ({event}) carries no resource")
    return event, body["resource"]


def _resources(body: Any, bundle: SourceBundle) -> list[dict[str, Any]]:
    """The resources a body carries; outcomes checked, notes kept."""
    if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
        raise RejectedInput("Epic body is not a FHIR resource (no resourceType)")
    rtype = body["resourceType"]
    if rtype == "OperationOutcome":
        if is_error_outcome(body):
            raise RejectedInput(f"Epic answered an error: {outcome_text(body)}")
        raise NothingToStore(f"Epic answered only an OperationOutcome: {outcome_text(body)}")
    if rtype == "Parameters":
        found = [p["resource"] for p in body.get("parameter") or () if p.get("resource")]
        if not found:
            names = ", ".join(str(p.get("name")) for p in body.get("parameter") or ())
            raise RejectedInput(
                f"Parameters ({names}) carry no resource: an operation's input such as a "
                "$book request, not an answer to store"
            )
        return [r for res in found for r in _resources(res, bundle)]
    if rtype != "Bundle":
        if rtype not in _STORED:
            raise NothingToStore(f"{rtype} is not a resource Harmony stores")
        return [body]
    resources = []
    for entry in body.get("entry") or ():
        res = entry.get("resource")
        if not isinstance(res, dict):
            continue
        if res.get("resourceType") == "OperationOutcome":
            if is_error_outcome(res):
                raise RejectedInput(f"Epic answered an error: {outcome_text(res)}")
            bundle.notes.append(outcome_text(res))
            continue
        resources.append(res)
    return resources


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RejectedInput(f"integration timezone {name!r} is not an IANA zone") from None
