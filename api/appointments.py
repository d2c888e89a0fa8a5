"""``POST /api/appointments``: book a canonical free slot in the system that owns it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from api.access import own_booking
from api.deps import BookingPrincipal, RuntimeDep
from hub.booking import BookingError, BookingOrder

router = APIRouter(prefix="/api/appointments", tags=["appointments"])


class BookingIn(BaseModel):
    slot_id: str
    patient_id: str | None = None
    appointment_type: str | None = None
    reason: str | None = None
    comment: str | None = None


@router.post("", status_code=201)
async def book(body: BookingIn, runtime: RuntimeDep, who: BookingPrincipal) -> dict[str, Any]:
    """The booked FHIR Appointment; 409 when the slot is taken, 502 when the source fails."""
    order = own_booking(who, BookingOrder(**body.model_dump(), requested_by=who.subject))
    try:
        appointment: dict[str, Any] = await asyncio.to_thread(runtime.booking.book, order)
    except BookingError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return appointment
