"""``POST /fhir/Appointment/$book`` (Argonaut / IHE scheduling) over the booking service.

Accepts a Parameters resource whose ``appt-resource`` (or first resource) parameter is the
proposed Appointment, or the Appointment itself. The Appointment names the Slot in
``slot`` and the patient as a ``Patient/<id>`` participant.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from api.access import own_booking
from api.deps import BookingPrincipal, RuntimeDep
from api.fhir import PREFIX, FhirError, json_body
from api.fhir_documents import FhirResponse
from hub.booking import BookingError, BookingOrder

router = APIRouter(prefix=PREFIX, tags=["fhir"])
_ISSUE_CODE = {404: "not-found", 409: "conflict", 422: "invalid", 502: "transient"}


def proposed_appointment(body: Any) -> dict[str, Any]:
    """The Appointment inside a $book request body."""
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        params = body.get("parameter") or []
        named = [p for p in params if p.get("name") == "appt-resource"] or params
        for param in named:
            resource = param.get("resource")
            if isinstance(resource, dict) and resource.get("resourceType") == "Appointment":
                return resource
        raise FhirError(400, "invalid", "Parameters carry no Appointment (appt-resource)")
    if isinstance(body, dict) and body.get("resourceType") == "Appointment":
        return body
    raise FhirError(400, "invalid", "$book takes a Parameters or an Appointment resource")


def booking_order(appointment: dict[str, Any], requested_by: str) -> BookingOrder:
    slots = [s.get("reference", "") for s in appointment.get("slot") or []]
    slot_ids = [ref.split("/", 1)[1] for ref in slots if ref.startswith("Slot/")]
    if len(slot_ids) != 1:
        raise FhirError(400, "invalid", "the Appointment must reference exactly one Slot/<id>")
    patients = [
        p["actor"]["reference"].split("/", 1)[1]
        for p in appointment.get("participant") or []
        if str((p.get("actor") or {}).get("reference", "")).startswith("Patient/")
    ]
    reason = appointment.get("description") or next(
        (c.get("text") for c in appointment.get("reasonCode") or [] if c.get("text")), None
    )
    kind = appointment.get("appointmentType") or {}
    kind_text = kind.get("text") or next(
        (c.get("code") for c in kind.get("coding") or [] if c.get("code")), None
    )
    return BookingOrder(
        slot_id=slot_ids[0],
        patient_id=patients[0] if patients else None,
        appointment_type=kind_text,
        reason=reason,
        comment=appointment.get("comment"),
        requested_by=requested_by,
    )


@router.post("/Appointment/$book")
async def book(request: Request, runtime: RuntimeDep, who: BookingPrincipal) -> Response:
    body = await json_body(request)
    order = own_booking(who, booking_order(proposed_appointment(body), who.subject))
    try:
        appointment = await asyncio.to_thread(runtime.booking.book, order)
    except BookingError as exc:
        raise FhirError(exc.status, _ISSUE_CODE.get(exc.status, "processing"), str(exc)) from None
    return FhirResponse(appointment)
