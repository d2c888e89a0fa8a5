"""``/api/waitlist``: join the waitlist, see and answer the offers of freed slots.

Thin over hub.waitlist. A patient acts only for themselves: their entries and offers are
theirs to read and answer, and someone else's (or an absent one) is 403 alike, so ids
cannot be probed. Admin, staff and integrations act for any patient (staff accept an offer
on the patient's behalf, on the phone) and get 404 for absent ids. Accepting books through
the booking service, whose slot claim decides against every other path to the slot.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from api.access import BOOKS_FOR_ANYONE
from api.deps import BookingPrincipal, Principal, RuntimeDep
from api.slots import PreferencesIn
from hub import waitlist
from hub.booking import BookingError
from hub.message_store import utc_text
from hub.runtime import HubRuntime

router = APIRouter(prefix="/api/waitlist", tags=["waitlist"])
OfferState = Literal["offered", "accepted", "expired", "declined", "lost"]


class JoinIn(BaseModel):
    patient_id: str | None = None
    visit_type: str | None = Field(default=None, max_length=128)
    practitioner_id: str | None = Field(default=None, max_length=128)
    preferences: PreferencesIn = Field(default_factory=PreferencesIn)


def _iso(value: datetime | None) -> str | None:
    return utc_text(value) if value is not None else None


def entry_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "patient_id": row["patient_id"],
        "visit_type": row["visit_type"],
        "practitioner_id": row["practitioner_id"],
        "preferences": row["preferences"],
        "active": bool(row["active"]),
        "created_at": _iso(row["created_at"]),
        "appointment_id": row["appointment_id"],
    }


def offer_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "entry_id": int(row["entry_id"]),
        "patient_id": row["patient_id"],
        "slot_id": row["slot_id"],
        "state": row["state"],
        "score": row["score"],
        "offered_at": _iso(row["offered_at"]),
        "expires_at": _iso(row["expires_at"]),
        "decided_at": _iso(row["decided_at"]),
        "appointment_id": row["appointment_id"],
    }


def _patient_for(who: Principal, patient_id: str | None) -> str:
    """A patient joins for themselves; anyone else must name the patient."""
    if who.has(*BOOKS_FOR_ANYONE):
        if not patient_id:
            raise HTTPException(422, "patient_id is required when joining for a patient")
        return patient_id
    own = _own(who)
    if patient_id not in (None, own):
        raise HTTPException(403, "a patient can only join the waitlist for themselves")
    return own


def _own(who: Principal) -> str:
    if not who.patient_id:
        raise HTTPException(403, "no patient record is linked to this sign-in")
    return who.patient_id


def _narrowed(who: Principal, patient_id: str | None) -> str | None:
    """The patient a listing is about: a patient always sees only their own."""
    return patient_id if who.has(*BOOKS_FOR_ANYONE) else _own(who)


def _entry_for(runtime: HubRuntime, who: Principal, entry_id: int) -> dict[str, Any]:
    """The entry if the caller may act on it: a patient's own; 403/404 otherwise."""
    return _visible(who, waitlist.get_entry(runtime.engine, entry_id), f"entry {entry_id}")


def _offer_for(runtime: HubRuntime, who: Principal, offer_id: int) -> dict[str, Any]:
    """The offer if the caller may answer it: a patient's own; 403/404 otherwise."""
    return _visible(who, waitlist.get_offer(runtime.engine, offer_id), f"offer {offer_id}")


def _visible(who: Principal, row: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """Staff see any row (404 when absent); a patient only their own, and someone else's
    or an absent one alike is 403, so ids cannot be probed."""
    if who.has(*BOOKS_FOR_ANYONE):
        if row is None:
            raise HTTPException(404, f"waitlist {what} does not exist")
        return row
    if row is None or row["patient_id"] != _own(who):
        raise HTTPException(403, f"waitlist {what} is not one of yours")
    return row


def _refuse(exc: BookingError | waitlist.WaitlistError) -> HTTPException:
    detail = getattr(exc, "detail", None)
    return HTTPException(exc.status, detail or str(exc))


@router.post("", status_code=201)
def join(body: JoinIn, runtime: RuntimeDep, who: BookingPrincipal) -> dict[str, Any]:
    """The new entry; 422 when its preferences cannot be used for ranking."""
    patient_id = _patient_for(who, body.patient_id)
    if runtime.booking.read("Patient", patient_id) is None:
        raise HTTPException(404, f"Patient/{patient_id} does not exist")
    try:
        entry_id = waitlist.join(
            runtime.engine,
            patient_id,
            body.preferences.model_dump(mode="json", exclude_defaults=True),
            visit_type=body.visit_type,
            practitioner_id=body.practitioner_id,
        )
    except waitlist.WaitlistError as exc:
        raise _refuse(exc) from None
    row = waitlist.get_entry(runtime.engine, entry_id)
    assert row is not None
    return entry_json(row)


@router.get("")
def list_entries(
    runtime: RuntimeDep,
    who: BookingPrincipal,
    patient_id: str | None = None,
    active: bool | None = None,
) -> list[dict[str, Any]]:
    """Entries oldest first; a patient's own only."""
    rows = waitlist.list_entries(
        runtime.engine, patient_id=_narrowed(who, patient_id), active=active
    )
    return [entry_json(r) for r in rows]


@router.get("/offers")
def list_offers(
    runtime: RuntimeDep, who: BookingPrincipal, state: OfferState | None = None
) -> list[dict[str, Any]]:
    """Offers newest first; a patient's own only."""
    rows = waitlist.list_offers(runtime.engine, patient_id=_narrowed(who, None), state=state)
    return [offer_json(r) for r in rows]


@router.post("/offers/{offer_id}/accept", status_code=201)
async def accept(offer_id: int, runtime: RuntimeDep, who: BookingPrincipal) -> dict[str, Any]:
    """The booked FHIR Appointment; 409 when the offer expired or was answered, or the slot
    went to someone else first; 502 when the source fails (the offer stands)."""
    offer = await asyncio.to_thread(_offer_for, runtime, who, offer_id)
    try:
        appointment: dict[str, Any] = await asyncio.to_thread(
            waitlist.accept, runtime.engine, runtime.booking, offer_id, offer["patient_id"]
        )
    except BookingError as exc:
        raise _refuse(exc) from None
    return appointment


@router.post("/offers/{offer_id}/decline")
async def decline(offer_id: int, runtime: RuntimeDep, who: BookingPrincipal) -> dict[str, Any]:
    """The declined offer and the offers the slot went on to; 409 when already answered."""
    offer = await asyncio.to_thread(_offer_for, runtime, who, offer_id)
    try:
        next_offers = await asyncio.to_thread(
            waitlist.decline, runtime.engine, runtime.settings, offer_id, offer["patient_id"]
        )
    except BookingError as exc:
        raise _refuse(exc) from None
    return {"offer_id": offer_id, "state": "declined", "next_offers": next_offers}


@router.get("/{entry_id}")
def get_entry(entry_id: int, runtime: RuntimeDep, who: BookingPrincipal) -> dict[str, Any]:
    """The entry with every offer made to it, newest first."""
    row = _entry_for(runtime, who, entry_id)
    offers = waitlist.list_offers(runtime.engine, entry_id=entry_id)
    return {**entry_json(row), "offers": [offer_json(o) for o in offers]}


@router.delete("/{entry_id}")
async def leave(entry_id: int, runtime: RuntimeDep, who: BookingPrincipal) -> dict[str, Any]:
    """The closed entry; an offer it held goes to the next patient (``next_offers``)."""
    await asyncio.to_thread(_entry_for, runtime, who, entry_id)
    next_offers = await asyncio.to_thread(
        waitlist.leave, runtime.engine, runtime.settings, entry_id
    )
    row = await asyncio.to_thread(waitlist.get_entry, runtime.engine, entry_id)
    assert row is not None
    return {**entry_json(row), "next_offers": next_offers}
