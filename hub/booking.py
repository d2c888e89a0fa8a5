"""Booking a canonical free slot in the system that owns it.

1. The slot is claimed in ``slot_booking`` (unique per slot): of two clients racing for one
   slot, exactly one gets past this line, on SQLite and PostgreSQL alike.
2. The owner is read off the slot's identifiers (``urn:harmony:<integration>:...``). An API
   source is asked to book (Epic ``$book``, athena, a Google event); its answer is stored
   and normalized like any synced page, so the canonical Appointment is the source's own.
   A slot no integration owns (GMED, uploads) is booked here, and the outbox sends GMED an
   SIU^S12.
3. If the source says the slot is gone, the claim is dropped, the canonical slot is marked
   busy and the caller gets a clear 409; other source failures answer 502 and change nothing.

The claim also enforces buffer times (hub.buffers): it is checked and written in one
transaction that holds the patient's and the practitioner's lock, so two bookings that are
too close together cannot both get past it either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.contract import (
    BookingRequest,
    FetchedPage,
    SlotUnavailable,
    SourceError,
    integration_of,
)
from canonical.repository import CanonicalRepository
from hub import message_store
from hub.buffers import ClaimScope, find_conflict, lock_subjects, parse_instant
from hub.changes import save_change
from hub.integrations import IntegrationRegistry, UnknownIntegration
from hub.message_store import OUTBOUND, NewMessage, utcnow
from hub.settings import Settings
from hub.sources import ClientFactory, make_source_client
from hub.sync import page_message
from hub.tables import domain_events, slot_bookings

log = logging.getLogger(__name__)

HARMONY_SOURCE = "harmony"
LOCAL_SOURCES = frozenset({"gmed"})
"""Sources whose slots are booked in Harmony and sent on by the outbox (an SIU for GMED)."""
STALE_PENDING = timedelta(minutes=5)
ENDED = frozenset({"cancelled", "noshow", "entered-in-error"})


class BookingError(Exception):
    """Why a booking failed, with the HTTP status the API answers."""

    def __init__(self, status: int, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        """Machine-readable particulars (a buffer conflict's rule and the other visit)."""


@dataclass(frozen=True, slots=True)
class BookingOrder:
    slot_id: str
    patient_id: str | None = None
    appointment_type: str | None = None
    reason: str | None = None
    comment: str | None = None
    requested_by: str | None = None
    replaces: str | None = None
    """A reschedule: the appointment this one replaces (exempt from the buffer check)."""
    replaces_source_id: str | None = None
    """A reschedule within one athena integration: the old appointment's athena id, so the
    source moves it natively instead of booking a second appointment."""


ProcessInbound = Callable[[int], str]
"""Normalizes and stores one inbound message now (the worker's ``process_inbound``)."""


class BookingService:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        process_inbound: ProcessInbound,
        publish: Callable[[str, list[int]], None],
        clients: ClientFactory = make_source_client,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.process_inbound = process_inbound
        self.publish = publish
        self.clients = clients
        self.registry = IntegrationRegistry(engine, settings)

    def book(self, order: BookingOrder) -> dict[str, Any]:
        """The booked canonical Appointment; raises BookingError."""
        slot = self.read("Slot", order.slot_id)
        if slot is None:
            raise BookingError(404, f"Slot/{order.slot_id} does not exist")
        if slot.get("status") != "free":
            raise BookingError(409, f"Slot/{order.slot_id} is {slot.get('status')}, not free")
        patient = None
        if order.patient_id:
            patient = self.read("Patient", order.patient_id)
            if patient is None:
                raise BookingError(404, f"Patient/{order.patient_id} does not exist")
        self._claim(order, self._scope(order, slot))
        try:
            owner = slot_owner(slot)
            if owner is None:
                appointment = self._book_here(order, slot)
            else:
                appointment = self._book_in_source(order, slot, patient, *owner)
        except BaseException:
            self._release(order.slot_id)
            raise
        with self.engine.begin() as conn:
            conn.execute(
                update(slot_bookings)
                .where(slot_bookings.c.slot_id == order.slot_id)
                .values(state="booked", appointment_id=appointment["id"])
            )
        return appointment

    # -- the claim ---------------------------------------------------------------------------

    def _scope(self, order: BookingOrder, slot: dict[str, Any]) -> ClaimScope:
        """Who the claim holds time for: the patient, and the practitioner of a local slot."""
        practitioner = None
        if slot_owner(slot) is None:
            for actor in self._schedule_actors(slot):
                kind, _, actor_id = str(actor.get("reference", "")).partition("/")
                if kind == "Practitioner" and actor_id:
                    practitioner = actor_id
                    break
        return ClaimScope(
            slot_id=order.slot_id,
            start=parse_instant(slot.get("start")),
            end=parse_instant(slot.get("end")),
            patient_id=order.patient_id,
            practitioner_id=practitioner,
            replaces=order.replaces,
        )

    def _claim(self, order: BookingOrder, scope: ClaimScope) -> None:
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    lock_subjects(conn, scope)
                    conflict = find_conflict(conn, self.settings, scope)
                    if conflict is not None:
                        raise BookingError(409, conflict.message(), conflict.detail())
                    conn.execute(
                        insert(slot_bookings).values(
                            slot_id=order.slot_id,
                            state="pending",
                            requested_by=order.requested_by,
                            created_at=utcnow(),
                            patient_id=scope.patient_id,
                            practitioner_id=scope.practitioner_id,
                            start=scope.start,
                            end=scope.end,
                        )
                    )
                return
            except IntegrityError:
                if not self._drop_stale_claim(order.slot_id):
                    break
        raise BookingError(409, f"Slot/{order.slot_id} is already booked or being booked")

    def _drop_stale_claim(self, slot_id: str) -> bool:
        """A claim whose appointment ended, or a pending one left by a crash, frees the slot."""
        with self.engine.begin() as conn:
            claim = conn.execute(
                select(slot_bookings).where(slot_bookings.c.slot_id == slot_id)
            ).first()
            if claim is None:
                return True
            stale = False
            if claim.state == "pending":
                stale = utcnow() - message_store.as_utc(claim.created_at) > STALE_PENDING
            elif claim.appointment_id:
                appointment = CanonicalRepository(Session(bind=conn)).get(
                    "Appointment", claim.appointment_id
                )
                stale = appointment is None or appointment.get("status") in ENDED
            if stale:
                conn.execute(delete(slot_bookings).where(slot_bookings.c.id == claim.id))
            return stale

    def _release(self, slot_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(slot_bookings).where(
                    slot_bookings.c.slot_id == slot_id, slot_bookings.c.state == "pending"
                )
            )

    # -- owners --------------------------------------------------------------------------------

    def _book_here(self, order: BookingOrder, slot: dict[str, Any]) -> dict[str, Any]:
        """A slot no API source owns: the appointment is ours; the outbox tells GMED."""
        appointment = {
            "resourceType": "Appointment",
            "status": "booked",
            "start": slot["start"],
            "end": slot["end"],
            "slot": [{"reference": f"Slot/{order.slot_id}"}],
            "participant": self._participants(slot, order.patient_id),
        }
        if order.reason:
            appointment["description"] = order.reason
        if order.comment:
            appointment["comment"] = order.comment
        if order.appointment_type:
            appointment["appointmentType"] = {"text": order.appointment_type}
        result, outbound = save_change(
            self.engine, self.settings, "Appointment", appointment, source_system=HARMONY_SOURCE
        )
        self.mark_slot(order.slot_id, "busy")
        if outbound:
            self.publish(OUTBOUND, outbound)
        booked = self.read("Appointment", result.id)
        assert booked is not None
        return booked

    def _book_in_source(
        self,
        order: BookingOrder,
        slot: dict[str, Any],
        patient: dict[str, Any] | None,
        integration: str,
        source_id: str,
    ) -> dict[str, Any]:
        try:
            config = self.registry.config(integration)
        except UnknownIntegration:
            raise BookingError(
                409, f"Slot/{order.slot_id} belongs to integration {integration!r}, which is gone"
            ) from None
        request = BookingRequest(
            slot_source_id=source_id,
            slot=slot,
            patient=patient,
            appointment_type=order.appointment_type,
            reason=order.reason,
            comment=order.comment,
        )
        operation = "reschedule" if order.replaces_source_id else "book"
        outbound_id = self.store_request(config.source_type, integration, operation, request)
        client = self.clients(config)  # pooled: keeps its token and connections
        reschedule = getattr(client, "reschedule", None)
        try:
            if order.replaces_source_id and reschedule is not None:
                result = reschedule(order.replaces_source_id, source_id, patient)
            else:
                result = client.book(request)
        except SlotUnavailable as exc:
            self.fail_request(outbound_id, str(exc))
            self.mark_slot(order.slot_id, "busy")
            raise BookingError(
                409, f"{integration} says Slot/{order.slot_id} is no longer free: {exc}"
            ) from None
        except SourceError as exc:
            self.fail_request(outbound_id, str(exc))
            raise BookingError(502, f"{integration} could not book: {exc}") from None
        inbound_id = self.store_answer(
            outbound_id,
            integration,
            result.page,
            f"booked appointment {result.appointment_source_id}",
        )
        appointment_id = self.appointment_of(inbound_id)
        if appointment_id is None:
            raise BookingError(
                502, f"{integration}'s booking answer (message {inbound_id}) held no appointment"
            )
        if (self.read("Slot", order.slot_id) or {}).get("status") == "free":
            self.mark_slot(order.slot_id, "busy")
        booked = self.read("Appointment", appointment_id)
        assert booked is not None
        return booked

    # -- helpers -----------------------------------------------------------------------------

    def store_request(
        self, source_type: str, integration: str, operation: str, request: BookingRequest
    ) -> int:
        """The request, stored and claimed before it is sent (never resent by the outbox)."""
        body = {"operation": operation, "slot": request.slot_source_id, "reason": request.reason}
        return self.store_outbound(source_type, integration, operation, body)

    def store_outbound(
        self, source_type: str, integration: str, operation: str, body: dict[str, Any]
    ) -> int:
        with self.engine.begin() as conn:
            stored = message_store.store_in(
                conn,
                NewMessage(
                    channel=f"{source_type}-out",
                    direction=OUTBOUND,
                    raw=orjson.dumps(body),
                    message_type=operation,
                    sender=integration,
                ),
            )
            message_store.claim(conn, stored.id)
        return stored.id

    def store_answer(self, outbound_id: int, integration: str, page: FetchedPage, done: str) -> int:
        """Finish the request with its answer stored as an inbound page, normalized now.

        ``done`` says what the source did ("booked appointment 42"), for the 502 when its
        answer cannot be stored: the source acted, so the operator must know.
        """
        with self.engine.begin() as conn:  # the request is done once its answer is stored
            message_store.finish(conn, outbound_id, "sent")
            inbound_id = message_store.store_in(conn, page_message(integration, page)).id
        status = self.process_inbound(inbound_id)
        if status != "processed":
            raise BookingError(
                502,
                f"{integration} {done}, but its answer (message {inbound_id}) could not be "
                f"stored: {status}",
            )
        return inbound_id

    def fail_request(self, message_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            message_store.finish(conn, message_id, "parked", error=error)

    def appointment_of(self, message_id: int) -> str | None:
        with self.engine.connect() as conn:
            found: str | None = conn.execute(
                select(domain_events.c.resource_id)
                .where(
                    domain_events.c.message_id == message_id,
                    domain_events.c.resource_type == "Appointment",
                )
                .order_by(domain_events.c.id)
            ).scalar()
        return found

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            return CanonicalRepository(session).get(resource_type, resource_id)

    def mark_slot(self, slot_id: str, status: str) -> None:
        slot = self.read("Slot", slot_id)
        if slot is None or slot.get("status") == status:
            return
        changed = {k: v for k, v in slot.items() if k != "meta"}
        changed["status"] = status
        save_change(self.engine, self.settings, "Slot", changed, source_system=HARMONY_SOURCE)

    def _schedule_actors(self, slot: dict[str, Any]) -> list[dict[str, Any]]:
        schedule_ref = (slot.get("schedule") or {}).get("reference", "")
        if not schedule_ref.startswith("Schedule/"):
            return []
        schedule = self.read("Schedule", schedule_ref.split("/", 1)[1]) or {}
        return list(schedule.get("actor", []))

    def _participants(self, slot: dict[str, Any], patient_id: str | None) -> list[dict[str, Any]]:
        participants: list[dict[str, Any]] = [
            {"actor": actor, "status": "accepted"} for actor in self._schedule_actors(slot)
        ]
        if patient_id:
            participants.append(
                {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}
            )
        if not participants:
            raise BookingError(422, "the slot's schedule names no actor and no patient was given")
        return participants


def slot_owner(slot: dict[str, Any]) -> tuple[str, str] | None:
    """(integration, source id) from the slot's first integration identifier."""
    for identifier in slot.get("identifier", []):
        integration = integration_of(identifier.get("system", ""))
        if integration in LOCAL_SOURCES:
            return None
        if integration is not None and identifier.get("value"):
            return integration, str(identifier["value"])
    return None
