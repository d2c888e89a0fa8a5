"""Ownership on top of the role checks: what a patient may see and book.

Staff-side readers (admin, staff, physician, call_center, integration) see every FHIR
resource. A patient sees what they need to book (Slots, Schedules, Practitioners,
Locations), their own Patient, and Appointments they take part in; their searches are
narrowed to their own records rather than refused, and a read of someone else's is 403.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, HTTPException

from api.deps import STAFF_READERS, Principal, ReaderPrincipal, SessionDep
from canonical.model import is_valid_id
from canonical.repository import CanonicalRepository
from hub.booking import BookingOrder

PATIENT_BROWSABLE = frozenset({"Slot", "Schedule", "Practitioner", "Location"})
BOOKS_FOR_ANYONE = frozenset({"admin", "staff", "integration"})


def _own_patient(principal: Principal) -> str:
    if not principal.patient_id:
        raise HTTPException(403, "no patient record is linked to this sign-in")
    return principal.patient_id


def takes_part(appointment: dict[str, Any], patient_id: str) -> bool:
    wanted = f"Patient/{patient_id}"
    return any(
        (p.get("actor") or {}).get("reference") == wanted
        for p in appointment.get("participant") or []
    )


def fhir_search_scope(resource_type: str, principal: ReaderPrincipal) -> list[tuple[str, str]]:
    """Search parameters added to the caller's own (FHIR ANDs repeated parameters)."""
    if principal.has(*STAFF_READERS) or resource_type in PATIENT_BROWSABLE:
        return []
    if resource_type == "Patient":
        return [("_id", _own_patient(principal))]
    if resource_type == "Appointment":
        return [("patient", f"Patient/{_own_patient(principal)}")]
    raise HTTPException(403, f"patients cannot search {resource_type}")


def fhir_read_access(
    resource_type: str, resource_id: str, principal: ReaderPrincipal, session: SessionDep
) -> Principal:
    """Lets a patient read their own Patient and Appointments (any version) and the
    resources they book from. An Appointment that is not theirs, or not there, is 403
    alike, so a patient cannot probe which ids exist."""
    if principal.has(*STAFF_READERS) or resource_type in PATIENT_BROWSABLE:
        return principal
    own = _own_patient(principal)
    if resource_type == "Patient" and resource_id == own:
        return principal
    if resource_type == "Appointment" and is_valid_id(resource_id):
        current = CanonicalRepository(session).get("Appointment", resource_id)
        if current is not None and takes_part(current, own):
            return principal
    raise HTTPException(403, f"{resource_type}/{resource_id} is not one of yours")


def own_booking(principal: Principal, order: BookingOrder) -> BookingOrder:
    """A patient books for themselves: no patient means them, another patient is 403."""
    if principal.has(*BOOKS_FOR_ANYONE):
        return order
    own = _own_patient(principal)
    if order.patient_id is None:
        return replace(order, patient_id=own)
    if order.patient_id != own:
        raise HTTPException(403, "a patient can only book for themselves")
    return order


FhirSearchScope = Annotated[list[tuple[str, str]], Depends(fhir_search_scope)]
FhirReadAccess = Annotated[Principal, Depends(fhir_read_access)]
