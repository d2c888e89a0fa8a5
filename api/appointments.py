"""``/api/appointments``: book, cancel and reschedule in the system that owns the slot.

A patient acts only on their own appointments (an appointment that is not theirs, or not
there, is 403 alike, as for FHIR reads); admin, staff and integrations act for anyone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from api.access import BOOKS_FOR_ANYONE, own_booking, takes_part
from api.deps import BookingPrincipal, IntegrationPrincipal, Principal, RuntimeDep
from hub.appointments import CANCEL_REASON_SYSTEM, CancelReason, InvalidReason
from hub.booking import BookingError, BookingOrder
from hub.runtime import HubRuntime

router = APIRouter(prefix="/api/appointments", tags=["appointments"])


class BookingIn(BaseModel):
    slot_id: str
    patient_id: str | None = None
    appointment_type: str | None = None
    reason: str | None = None
    comment: str | None = None


class CodedReason(BaseModel):
    code: str | None = None
    system: str = CANCEL_REASON_SYSTEM
    text: str | None = None


class CancelIn(BaseModel):
    reason: str | CodedReason = Field(
        description="Free text, or a code of HL7's appointment-cancellation-reason system "
        "(pat, pat-fb, prov, oth-weath ...) with optional text"
    )


class RescheduleIn(BaseModel):
    slot_id: str


def _refuse(exc: BookingError) -> HTTPException:
    return HTTPException(exc.status, exc.detail or str(exc))


@router.post("", status_code=201)
async def book(body: BookingIn, runtime: RuntimeDep, who: BookingPrincipal) -> dict[str, Any]:
    """The booked FHIR Appointment; 409 when the slot is taken or a buffer rule refuses it
    (the detail names the rule and the other visit), 502 when the source fails."""
    order = own_booking(who, BookingOrder(**body.model_dump(), requested_by=who.subject))
    try:
        appointment: dict[str, Any] = await asyncio.to_thread(runtime.booking.book, order)
    except BookingError as exc:
        raise _refuse(exc) from None
    return appointment


@router.post("/{appointment_id}/cancel")
async def cancel(
    appointment_id: str, body: CancelIn, runtime: RuntimeDep, who: BookingPrincipal
) -> dict[str, Any]:
    """The cancelled FHIR Appointment (again, for a repeated cancel); 502 when the source
    fails, and then nothing changed."""
    try:
        reason = (
            CancelReason(text=body.reason)
            if isinstance(body.reason, str)
            else CancelReason(
                code=body.reason.code, text=body.reason.text, system=body.reason.system
            )
        )
    except InvalidReason as exc:
        raise HTTPException(422, str(exc)) from None
    await asyncio.to_thread(_own_appointment, runtime, who, appointment_id)
    try:
        cancelled: dict[str, Any] = await asyncio.to_thread(
            runtime.appointments.cancel, appointment_id, reason, who.subject
        )
    except BookingError as exc:
        raise _refuse(exc) from None
    return cancelled


@router.post("/{appointment_id}/reschedule", status_code=201)
async def reschedule(
    appointment_id: str,
    body: RescheduleIn,
    response: Response,
    runtime: RuntimeDep,
    who: BookingPrincipal,
) -> dict[str, Any]:
    """``{"appointment": new, "replaced": old}``. 201: moved. 202: the new one is booked but
    the old one could not be cancelled yet; ``cancel_pending`` says why, and the cancel is
    retried until it succeeds (or is parked for an operator). A failed booking (409, 502)
    leaves the old appointment as it was."""
    await asyncio.to_thread(_own_appointment, runtime, who, appointment_id)
    try:
        moved = await asyncio.to_thread(
            runtime.appointments.reschedule,
            appointment_id,
            body.slot_id,
            who.subject,
            check=lambda order: own_booking(who, order),
        )
    except BookingError as exc:
        raise _refuse(exc) from None
    answer: dict[str, Any] = {"appointment": moved.appointment, "replaced": moved.replaced}
    if moved.cancel_error is not None:
        response.status_code = 202
        answer["cancel_pending"] = {
            "appointment_id": appointment_id,
            "error": moved.cancel_error,
            "retry": "queued",
        }
    return answer


@router.get("/cancellations")
def cancellations(
    runtime: RuntimeDep, who: IntegrationPrincipal, state: str | None = None
) -> list[dict[str, Any]]:
    """Cancellations waiting for a retry (or parked after too many): appointments a
    reschedule replaced but the source has not cancelled yet."""
    return runtime.appointments.pending_cancellations(state)


def _own_appointment(runtime: HubRuntime, who: Principal, appointment_id: str) -> None:
    """A patient may act on appointments they take part in; others' are 403, like absent ones."""
    if who.has(*BOOKS_FOR_ANYONE):
        return
    if not who.patient_id:
        raise HTTPException(403, "no patient record is linked to this sign-in")
    appointment = runtime.booking.read("Appointment", appointment_id)
    if appointment is None or not takes_part(appointment, who.patient_id):
        raise HTTPException(403, f"Appointment/{appointment_id} is not one of yours")
