"""Cancelling and rescheduling booked appointments, in the system that owns them.

Cancel: the owning API source is asked (its adapter's ``cancel``) and its answer is stored
and normalized like a booking answer; an appointment Harmony owns (GMED, uploads) is
cancelled here and the outbox sends GMED an SIU^S15. Either way the canonical Appointment
ends ``cancelled`` with our ``cancelationReason``, a ``cancelled`` domain event is recorded,
the slot's claim is released and the slot is free again unless the source's answer said
what became of it (athena reopens the time as a new slot). A repeated cancel answers the
cancelled appointment again.

Reschedule: the old appointment is held (no second cancel or reschedule meanwhile), the new
slot is claimed and booked (buffer rules exempt the old visit), then the old one is
cancelled with the reason "rescheduled". A failed booking leaves the old appointment as it
was. A failed cancel after the new booking is reported and queued in
``appointment_cancellation``; the scheduler retries it with backoff until it succeeds or is
parked, so a double booking is never left without someone knowing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.contract import IntegrationConfig, SourceError, integration_of, source_system
from canonical.records import Provenance
from canonical.repository import CanonicalRepository
from canonical.search import search
from hub import message_store, reminders
from hub.booking import (
    HARMONY_SOURCE,
    LOCAL_SOURCES,
    BookingError,
    BookingOrder,
    BookingService,
    slot_owner,
)
from hub.events import events_from_results, record_events
from hub.integrations import UnknownIntegration
from hub.message_store import OUTBOUND, backoff_seconds, utcnow
from hub.outbound import route_changes
from hub.tables import appointment_cancellations, domain_events, slot_bookings

log = logging.getLogger(__name__)

CANCEL_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"
CANCEL_REASONS = {
    "pat": "Patient",
    "pat-crs": "Patient: Canceled via automated reminder system",
    "pat-cpp": "Patient: Canceled via Patient Portal",
    "pat-dec": "Patient: Deceased",
    "pat-fb": "Patient: Feeling Better",
    "pat-lt": "Patient: Lack of Transportation",
    "pat-mt": "Patient: Member Terminated",
    "pat-mv": "Patient: Moved",
    "pat-preg": "Patient: Pregnant",
    "pat-swl": "Patient: Scheduled from Wait List",
    "pat-ucp": "Patient: Unhappy/Changed Provider",
    "prov": "Provider",
    "prov-pers": "Provider: Personal",
    "prov-dch": "Provider: Discharged",
    "prov-edu": "Provider: Edu/Meeting",
    "prov-hosp": "Provider: Hospitalized",
    "prov-labs": "Provider: Labs Out of Acceptable Range",
    "prov-mri": "Provider: MRI Screening Form Marked Do Not Proceed",
    "prov-onc": "Provider: Oncology Treatment Plan Changes",
    "maint": "Equipment Maintenance/Repair",
    "meds-inc": "Prep/Med Incomplete",
    "other": "Other",
    "oth-cms": "Other: CMS Therapy Cap Service Not Authorized",
    "oth-err": "Other: Error",
    "oth-fin": "Other: Financial",
    "oth-iv": "Other: Improper IV Access/Infiltrate IV",
    "oth-int": "Other: No Interpreter Available",
    "oth-mu": "Other: Prep/Med/Results Unavailable",
    "oth-room": "Other: Room/Resource Maintenance",
    "oth-oerr": "Other: Schedule Order Error",
    "oth-swie": "Other: Silent Walk In Error",
    "oth-weath": "Other: Weather",
}
"""HL7's example code system for Appointment.cancelationReason (R4)."""
APPOINTMENT_KINDS = {"athena": "appointmentid", "epic": "Appointment", "google": "event"}
"""Which identifier of a canonical Appointment is its id in each source type."""
CANCELLABLE = frozenset({"booked", "pending", "proposed", "waitlist"})
RESCHEDULABLE = frozenset({"booked", "pending"})
HELD_TOO_LONG = timedelta(minutes=5)
"""A hold (``running``) older than this was left by a crash and may be taken over."""


class InvalidReason(ValueError):
    """A cancellation reason that is empty or names an unknown code."""


@dataclass(frozen=True, slots=True)
class CancelReason:
    """Why an appointment is cancelled: a code, free text, or both."""

    code: str | None = None
    text: str | None = None
    system: str = CANCEL_REASON_SYSTEM

    def __post_init__(self) -> None:
        if not (self.code or (self.text and self.text.strip())):
            raise InvalidReason("a cancellation needs a reason: a code or a text")
        if self.code and self.system == CANCEL_REASON_SYSTEM and self.code not in CANCEL_REASONS:
            raise InvalidReason(
                f"{self.code!r} is not an appointment-cancellation-reason code; known: "
                + ", ".join(CANCEL_REASONS)
            )

    def concept(self) -> dict[str, Any]:
        """The FHIR CodeableConcept stored as ``Appointment.cancelationReason``."""
        concept: dict[str, Any] = {}
        if self.code:
            coding = {"system": self.system, "code": self.code}
            display = CANCEL_REASONS.get(self.code) if self.system == CANCEL_REASON_SYSTEM else None
            if display:
                coding["display"] = display
            concept["coding"] = [coding]
        words = self.words()
        if words:
            concept["text"] = words
        return concept

    def words(self) -> str:
        """What a source that takes only text is told."""
        if self.text and self.text.strip():
            return self.text.strip()
        return CANCEL_REASONS.get(self.code or "", self.code or "")

    @classmethod
    def from_concept(cls, concept: dict[str, Any]) -> CancelReason:
        coding = (concept.get("coding") or [{}])[0]
        return cls(
            code=coding.get("code"),
            text=concept.get("text"),
            system=coding.get("system") or CANCEL_REASON_SYSTEM,
        )


RESCHEDULED = CancelReason(text="rescheduled")


@dataclass(frozen=True, slots=True)
class Rescheduled:
    """The new appointment, the old one as it now stands, and why it may still be booked."""

    appointment: dict[str, Any]
    replaced: dict[str, Any]
    cancel_error: str | None = None
    """Set when the old appointment could not be cancelled yet: its cancel is queued."""


class AppointmentService:
    """Cancel and reschedule on top of the booking service (same sources, same claims)."""

    def __init__(self, booking: BookingService) -> None:
        self.booking = booking
        self.engine = booking.engine
        self.settings = booking.settings

    # -- cancel ------------------------------------------------------------------------------

    def cancel(
        self, appointment_id: str, reason: CancelReason, requested_by: str | None = None
    ) -> dict[str, Any]:
        """The cancelled canonical Appointment; raises BookingError (404, 409, 502)."""
        appointment = self._appointment(appointment_id)
        if appointment.get("status") == "cancelled":
            self._release(appointment, slot_decided=False)
            self._mark(appointment_id, "done")
            return appointment
        if appointment.get("status") not in CANCELLABLE:
            raise BookingError(
                409,
                f"Appointment/{appointment_id} is {appointment.get('status')}; only "
                f"{', '.join(sorted(CANCELLABLE))} appointments can be cancelled",
            )
        previous = self._hold(appointment_id, reason, requested_by)
        try:
            cancelled = self._cancel_now(appointment, reason)
        except BaseException as exc:
            self._let_go(appointment_id, previous, str(exc))
            raise
        self._mark(appointment_id, "done")
        return cancelled

    def _cancel_now(self, appointment: dict[str, Any], reason: CancelReason) -> dict[str, Any]:
        owner = self._owner(appointment)
        if owner is None:
            return self._cancel_here(appointment, reason)
        return self._cancel_in_source(appointment, reason, *owner)

    def _cancel_here(self, appointment: dict[str, Any], reason: CancelReason) -> dict[str, Any]:
        """Ours (GMED, uploads): cancelled here; the outbox sends GMED an SIU^S15."""
        changed = {k: v for k, v in appointment.items() if k != "meta"}
        changed["status"] = "cancelled"
        changed["cancelationReason"] = reason.concept()
        self._save(changed, "cancelled")
        self._release(appointment, slot_decided=False)
        return self._appointment(appointment["id"])

    def _cancel_in_source(
        self,
        appointment: dict[str, Any],
        reason: CancelReason,
        config: IntegrationConfig,
        source_id: str,
    ) -> dict[str, Any]:
        appointment_id = appointment["id"]
        body = {"operation": "cancel", "appointment": source_id, "reason": reason.concept()}
        outbound_id = self.booking.store_outbound(config.source_type, config.name, "cancel", body)
        client = self.booking.clients(config)
        try:
            page = client.cancel(source_id, reason.words())
        except SourceError as exc:
            self.booking.fail_request(outbound_id, str(exc))
            raise BookingError(
                502, f"{config.name} could not cancel Appointment/{appointment_id}: {exc}"
            ) from None
        inbound_id = self.booking.store_answer(
            outbound_id, config.name, page, f"cancelled appointment {source_id}"
        )
        current = self._appointment(appointment_id)
        if current.get("status") != "cancelled":
            raise BookingError(
                502,
                f"{config.name} answered the cancel of appointment {source_id}, but it is "
                f"still {current.get('status')} there (message {inbound_id})",
            )
        changed = {k: v for k, v in current.items() if k != "meta"}
        changed["cancelationReason"] = reason.concept()
        self._save(changed, "cancelled")
        self._release(current, slot_decided=self._answer_touched_slots(inbound_id, current))
        return self._appointment(appointment_id)

    # -- reschedule --------------------------------------------------------------------------

    def reschedule(
        self,
        appointment_id: str,
        slot_id: str,
        requested_by: str | None = None,
        *,
        check: Callable[[BookingOrder], BookingOrder] | None = None,
    ) -> Rescheduled:
        """Book ``slot_id`` in place of the appointment, then cancel the old one.

        ``check(order)`` may refuse or adjust the new booking (the API's ownership rule)."""
        old = self._appointment(appointment_id)
        if old.get("status") not in RESCHEDULABLE:
            raise BookingError(
                409, f"Appointment/{appointment_id} is {old.get('status')}; it cannot be moved"
            )
        if any(r.get("reference") == f"Slot/{slot_id}" for r in old.get("slot") or []):
            raise BookingError(409, f"Appointment/{appointment_id} is already in Slot/{slot_id}")
        order = self._order_for(old, slot_id, requested_by)
        if check is not None:
            order = check(order)
        previous = self._hold(appointment_id, RESCHEDULED, requested_by)
        try:
            new = self.booking.book(order)
        except BaseException:
            self._let_go(appointment_id, previous, None)
            raise
        try:
            replaced = self._cancel_now(self._appointment(appointment_id), RESCHEDULED)
        except Exception as exc:
            error = str(exc)
            log.warning(
                "reschedule of %s: old one not cancelled, queued: %s", appointment_id, error
            )
            self._retry_later(appointment_id, error)
            return Rescheduled(new, self._appointment(appointment_id), error)
        self._mark(appointment_id, "done")
        return Rescheduled(new, replaced)

    def _order_for(
        self, old: dict[str, Any], slot_id: str, requested_by: str | None
    ) -> BookingOrder:
        patient = next(
            (
                ref.split("/", 1)[1]
                for p in old.get("participant") or []
                if (ref := str((p.get("actor") or {}).get("reference", ""))).startswith("Patient/")
            ),
            None,
        )
        replaces_source_id = None
        owner = self._owner(old)
        slot = self.booking.read("Slot", slot_id)
        new_owner = slot_owner(slot) if slot else None
        same_athena = owner and new_owner and owner[0].source_type == "athena"
        if owner and new_owner and same_athena and new_owner[0] == owner[0].name:
            replaces_source_id = owner[1]  # athena moves it natively
        return BookingOrder(
            slot_id=slot_id,
            patient_id=patient,
            appointment_type=(old.get("appointmentType") or {}).get("text"),
            reason=old.get("description"),
            comment=old.get("comment"),
            requested_by=requested_by,
            replaces=old["id"],
            replaces_source_id=replaces_source_id,
        )

    # -- retries -----------------------------------------------------------------------------

    def retry_cancellations(self, now: datetime | None = None) -> int:
        """Cancel again what a reschedule left booked; how many were finished this pass."""
        now = now or utcnow()
        with self.engine.connect() as conn:
            due = conn.execute(
                select(appointment_cancellations)
                .where(
                    appointment_cancellations.c.state == "retrying",
                    appointment_cancellations.c.next_attempt_at <= now,
                )
                .order_by(appointment_cancellations.c.next_attempt_at)
                .limit(50)
            ).all()
        finished = 0
        for row in due:
            with self.engine.begin() as conn:
                taken = conn.execute(
                    update(appointment_cancellations)
                    .where(
                        appointment_cancellations.c.id == row.id,
                        appointment_cancellations.c.state == "retrying",
                    )
                    .values(state="running", updated_at=utcnow())
                ).rowcount
            if not taken:
                continue  # another process has it
            try:
                appointment = self._appointment(row.appointment_id)
                if appointment.get("status") != "cancelled":
                    self._cancel_now(appointment, CancelReason.from_concept(row.reason))
                else:
                    self._release(appointment, slot_decided=False)
            except Exception as exc:
                self._retry_later(row.appointment_id, str(exc))
                continue
            self._mark(row.appointment_id, "done")
            finished += 1
        return finished

    def pending_cancellations(self, state: str | None = None) -> list[dict[str, Any]]:
        """Queued, running and parked cancellations, for operators."""
        query = select(appointment_cancellations).order_by(appointment_cancellations.c.id)
        if state:
            query = query.where(appointment_cancellations.c.state == state)
        else:
            query = query.where(appointment_cancellations.c.state != "done")
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "appointment_id": r.appointment_id,
                "state": r.state,
                "attempts": r.attempts,
                "last_error": r.last_error,
                "reason": r.reason,
                "next_attempt_at": r.next_attempt_at and message_store.utc_text(r.next_attempt_at),
            }
            for r in rows
        ]

    # -- the hold ----------------------------------------------------------------------------

    def _hold(self, appointment_id: str, reason: CancelReason, requested_by: str | None) -> str:
        """Mark the appointment as being cancelled; its previous state ('' when none)."""
        table = appointment_cancellations
        now = utcnow()
        busy = BookingError(
            409, f"Appointment/{appointment_id} is being cancelled or rescheduled right now"
        )
        try:
            with self.engine.begin() as conn:
                query = select(table).where(table.c.appointment_id == appointment_id)
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                row = conn.execute(query).first()
                values = {
                    "reason": reason.concept(),
                    "requested_by": requested_by,
                    "state": "running",
                    "updated_at": now,
                }
                if row is None:
                    conn.execute(
                        insert(table).values(
                            appointment_id=appointment_id, attempts=0, created_at=now, **values
                        )
                    )
                    return ""
                stale = now - message_store.as_utc(row.updated_at) > HELD_TOO_LONG
                if row.state == "running" and not stale:
                    raise busy
                conn.execute(update(table).where(table.c.id == row.id).values(**values))
                return str(row.state)
        except IntegrityError:
            raise busy from None

    def _let_go(self, appointment_id: str, previous: str, error: str | None) -> None:
        """Undo a hold after a failure: forget it, or put a queued retry back in the queue."""
        if previous in ("retrying", "parked"):
            self._retry_later(appointment_id, error or "interrupted")
            return
        with self.engine.begin() as conn:
            conn.execute(
                delete(appointment_cancellations).where(
                    appointment_cancellations.c.appointment_id == appointment_id
                )
            )

    def _retry_later(self, appointment_id: str, error: str) -> None:
        table = appointment_cancellations
        now = utcnow()
        with self.engine.begin() as conn:
            attempts = conn.execute(
                select(table.c.attempts).where(table.c.appointment_id == appointment_id)
            ).scalar()
            if attempts is None:
                conn.execute(
                    insert(table).values(
                        appointment_id=appointment_id,
                        reason=RESCHEDULED.concept(),
                        state="running",
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
                attempts = 0
            attempts += 1
            parked = attempts >= self.settings.appointment_cancel_max_attempts
            delay = backoff_seconds(
                attempts, self.settings.retry_base_seconds, self.settings.retry_max_seconds
            )
            conn.execute(
                update(table)
                .where(table.c.appointment_id == appointment_id)
                .values(
                    state="parked" if parked else "retrying",
                    attempts=attempts,
                    last_error=error[:2000],
                    next_attempt_at=None if parked else now + timedelta(seconds=delay),
                    updated_at=now,
                )
            )

    def _mark(self, appointment_id: str, state: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(appointment_cancellations)
                .where(appointment_cancellations.c.appointment_id == appointment_id)
                .values(state=state, next_attempt_at=None, updated_at=utcnow())
            )

    # -- helpers -----------------------------------------------------------------------------

    def _appointment(self, appointment_id: str) -> dict[str, Any]:
        appointment = self.booking.read("Appointment", appointment_id)
        if appointment is None:
            raise BookingError(404, f"Appointment/{appointment_id} does not exist")
        return appointment

    def _owner(self, appointment: dict[str, Any]) -> tuple[IntegrationConfig, str] | None:
        """The API source that owns the appointment and its id there; None: Harmony owns it."""
        for identifier in appointment.get("identifier") or []:
            system = str(identifier.get("system", ""))
            integration = integration_of(system)
            if integration is None or integration in LOCAL_SOURCES:
                continue
            kind = system.rsplit(":", 1)[-1]
            try:
                config = self.booking.registry.config(integration)
            except UnknownIntegration:
                if kind in APPOINTMENT_KINDS.values():
                    raise BookingError(
                        409,
                        f"Appointment/{appointment['id']} belongs to integration "
                        f"{integration!r}, which is gone",
                    ) from None
                continue
            wanted = APPOINTMENT_KINDS.get(config.source_type)
            if wanted and system == source_system(integration, wanted) and identifier.get("value"):
                return config, str(identifier["value"])
        return None

    def _save(self, resource: dict[str, Any], event: str) -> None:
        """Store a change made here with its named domain event and its outbound SIU."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            provenance = Provenance(
                source_system=HARMONY_SOURCE,
                message_id=None,
                mapping_version=None,
                received_at=utcnow(),
            )
            result = CanonicalRepository(session).save("Appointment", resource, provenance)
            events = events_from_results([result], event, HARMONY_SOURCE, None)
            record_events(session.connection(), events)
            outbound = route_changes(session, self.settings, events)
        if outbound:
            self.booking.publish(OUTBOUND, outbound)

    def _release(self, appointment: dict[str, Any], *, slot_decided: bool) -> None:
        """Drop the appointment's claims; its slots are free again unless the source said
        otherwise or another live appointment holds them."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(slot_bookings).where(slot_bookings.c.appointment_id == appointment["id"])
            )
        reminders.withdraw(self.engine, appointment["id"])
        if slot_decided:
            return
        for ref in appointment.get("slot") or []:
            kind, _, slot_id = str(ref.get("reference", "")).partition("/")
            if kind != "Slot" or not slot_id:
                continue
            slot = self.booking.read("Slot", slot_id)
            if slot is None or slot.get("status") != "busy" or self._still_held(slot_id):
                continue
            self.booking.mark_slot(slot_id, "free")

    def _still_held(self, slot_id: str) -> bool:
        with Session(self.engine) as session:
            found = search(session, "Appointment", [("slot", f"Slot/{slot_id}")])
        return any(a.get("status") in RESCHEDULABLE for a in found.resources)

    def _answer_touched_slots(self, message_id: int, appointment: dict[str, Any]) -> bool:
        """Whether the source's answer itself said what became of the appointment's slot."""
        slot_ids = [
            str(r.get("reference", "")).partition("/")[2] for r in appointment.get("slot") or []
        ]
        if not slot_ids:
            return True
        with self.engine.connect() as conn:
            touched = conn.execute(
                select(domain_events.c.id).where(
                    domain_events.c.message_id == message_id,
                    domain_events.c.resource_type == "Slot",
                    domain_events.c.resource_id.in_(slot_ids),
                )
            ).first()
        return touched is not None
