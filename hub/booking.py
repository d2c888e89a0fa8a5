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

from adapters.contract import BookingRequest, SlotUnavailable, SourceError, integration_of
from canonical.repository import CanonicalRepository
from hub import message_store
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

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class BookingOrder:
    slot_id: str
    patient_id: str | None = None
    appointment_type: str | None = None
    reason: str | None = None
    comment: str | None = None
    requested_by: str | None = None


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
        slot = self._read("Slot", order.slot_id)
        if slot is None:
            raise BookingError(404, f"Slot/{order.slot_id} does not exist")
        if slot.get("status") != "free":
            raise BookingError(409, f"Slot/{order.slot_id} is {slot.get('status')}, not free")
        patient = None
        if order.patient_id:
            patient = self._read("Patient", order.patient_id)
            if patient is None:
                raise BookingError(404, f"Patient/{order.patient_id} does not exist")
        self._claim(order)
        try:
            owner = _owner(slot)
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

    def _claim(self, order: BookingOrder) -> None:
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(slot_bookings).values(
                            slot_id=order.slot_id,
                            state="pending",
                            requested_by=order.requested_by,
                            created_at=utcnow(),
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
        self._mark_slot(order.slot_id, "busy")
        if outbound:
            self.publish(OUTBOUND, outbound)
        booked = self._read("Appointment", result.id)
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
        outbound_id = self._store_request(config.source_type, integration, request)
        client = self.clients(config)  # pooled: keeps its token and connections
        try:
            result = client.book(request)
        except SlotUnavailable as exc:
            self._fail_request(outbound_id, str(exc))
            self._mark_slot(order.slot_id, "busy")
            raise BookingError(
                409, f"{integration} says Slot/{order.slot_id} is no longer free: {exc}"
            ) from None
        except SourceError as exc:
            self._fail_request(outbound_id, str(exc))
            raise BookingError(502, f"{integration} could not book: {exc}") from None
        with self.engine.begin() as conn:  # the request is done once its answer is stored
            message_store.finish(conn, outbound_id, "sent")
            inbound_id = message_store.store_in(conn, page_message(integration, result.page)).id
        status = self.process_inbound(inbound_id)
        if status != "processed":
            raise BookingError(
                502,
                f"{integration} booked appointment {result.appointment_source_id}, but its "
                f"answer (message {inbound_id}) could not be stored: {status}",
            )
        appointment_id = self._appointment_of(inbound_id)
        if appointment_id is None:
            raise BookingError(
                502, f"{integration}'s booking answer (message {inbound_id}) held no appointment"
            )
        if (self._read("Slot", order.slot_id) or {}).get("status") == "free":
            self._mark_slot(order.slot_id, "busy")
        booked = self._read("Appointment", appointment_id)
        assert booked is not None
        return booked

    # -- helpers -----------------------------------------------------------------------------

    def _store_request(self, source_type: str, integration: str, request: BookingRequest) -> int:
        body = {"operation": "book", "slot": request.slot_source_id, "reason": request.reason}
        with self.engine.begin() as conn:
            stored = message_store.store_in(
                conn,
                NewMessage(
                    channel=f"{source_type}-out",
                    direction=OUTBOUND,
                    raw=orjson.dumps(body),
                    message_type="book",
                    sender=integration,
                ),
            )
            message_store.claim(conn, stored.id)
        return stored.id

    def _fail_request(self, message_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            message_store.finish(conn, message_id, "parked", error=error)

    def _appointment_of(self, message_id: int) -> str | None:
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

    def _read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            return CanonicalRepository(session).get(resource_type, resource_id)

    def _mark_slot(self, slot_id: str, status: str) -> None:
        slot = self._read("Slot", slot_id)
        if slot is None or slot.get("status") == status:
            return
        changed = {k: v for k, v in slot.items() if k != "meta"}
        changed["status"] = status
        save_change(self.engine, self.settings, "Slot", changed, source_system=HARMONY_SOURCE)

    def _participants(self, slot: dict[str, Any], patient_id: str | None) -> list[dict[str, Any]]:
        participants: list[dict[str, Any]] = []
        schedule_ref = (slot.get("schedule") or {}).get("reference", "")
        if schedule_ref.startswith("Schedule/"):
            schedule = self._read("Schedule", schedule_ref.split("/", 1)[1]) or {}
            for actor in schedule.get("actor", []):
                participants.append({"actor": actor, "status": "accepted"})
        if patient_id:
            participants.append(
                {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}
            )
        if not participants:
            raise BookingError(422, "the slot's schedule names no actor and no patient was given")
        return participants


def _owner(slot: dict[str, Any]) -> tuple[str, str] | None:
    """(integration, source id) from the slot's first integration identifier."""
    for identifier in slot.get("identifier", []):
        integration = integration_of(identifier.get("system", ""))
        if integration in LOCAL_SOURCES:
            return None
        if integration is not None and identifier.get("value"):
            return integration, str(identifier["value"])
    return None
