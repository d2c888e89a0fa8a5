"""Outbound to GMED: canonical appointment changes made elsewhere go out as SIU over MLLP.

The SIU is stored in the message store in the same transaction as the change that caused it
(an outbox), then sent and retried like inbound traffic: nothing is lost if GMED is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from canonical.repository import CanonicalRepository
from hub import message_store
from hub.events import DomainEvent
from hub.message_store import OUTBOUND, NewMessage
from hub.settings import Settings
from mappings.store import MappingStore

log = logging.getLogger(__name__)

GMED_OUT = "gmed-out"
GMED_SYSTEMS = "urn:harmony:gmed:"
INTERRUPTED_BOOKING = (
    "the hub stopped before the source's answer to this request was recorded: "
    "check the source, then sync the integration"
)


def route_changes(session: Session, settings: Settings, events: Sequence[DomainEvent]) -> list[int]:
    """Queue an SIU for every appointment change GMED did not make itself; returns message ids."""
    if not settings.gmed_outbound_host:
        return []
    from adapters.gmed.outbound import build_siu

    ids: list[int] = []
    repo = CanonicalRepository(session)
    mapping = MappingStore(session).active("gmed")
    for event in events:
        if event.resource_type != "Appointment" or event.source_system == "gmed":
            continue
        appointment = repo.get("Appointment", event.resource_id)
        if appointment is None or not _concerns_gmed(repo, appointment):
            continue
        raw = build_siu(
            appointment,
            previous_status=event.previous_status,
            mapping=mapping,
            default_timezone=settings.default_timezone,
            receiving_application=settings.gmed_receiving_application,
            receiving_facility=settings.gmed_receiving_facility,
        )
        stored = message_store.store_in(
            session.connection(),
            NewMessage(channel=GMED_OUT, direction=OUTBOUND, raw=raw, message_type="SIU"),
        )
        ids.append(stored.id)
    return ids


def _gmed_identified(resource: dict[str, Any]) -> bool:
    return any(
        str(i.get("system", "")).startswith(GMED_SYSTEMS) for i in resource.get("identifier", [])
    )


def _concerns_gmed(repo: CanonicalRepository, appointment: dict[str, Any]) -> bool:
    """GMED hears of appointments it knows (its ids) or booked on its slots, not of Epic's."""
    if _gmed_identified(appointment):
        return True
    for ref in appointment.get("slot", []):
        kind, _, slot_id = str(ref.get("reference", "")).partition("/")
        slot = repo.get("Slot", slot_id) if kind == "Slot" else None
        if slot is not None and _gmed_identified(slot):
            return True
    return False


def ack_code(ack: bytes) -> tuple[str, str]:
    """MSA-1 and MSA-3 of an ACK; ('', reason) when it is not one."""
    text = ack.decode("utf-8", errors="replace").replace("\r\n", "\r").replace("\n", "\r")
    field_sep = text[3:4] if text.startswith("MSH") else "|"
    for segment in text.split("\r"):
        if segment.startswith("MSA"):
            parts = segment.split(field_sep)
            code = parts[1] if len(parts) > 1 else ""
            return code, parts[3] if len(parts) > 3 else ""
    return "", "reply has no MSA segment"


@dataclass
class OutboundSender:
    engine: Engine
    settings: Settings
    timeout: float = 10.0

    def send(self, message_id: int) -> str:
        with self.engine.begin() as conn:
            row = message_store.claim(conn, message_id)
            if row is None:
                return "skipped"
            if row.channel != GMED_OUT:
                # A booking request to an API source is sent while its caller waits; finding
                # one here means the hub stopped before the answer was recorded.
                message_store.finish(conn, message_id, "parked", error=INTERRUPTED_BOOKING)
                return "parked"
            raw = row.raw
        host, port = self.settings.gmed_outbound_host, self.settings.gmed_outbound_port
        if not host or not port:
            return self._fail(message_id, "no GMED destination configured", permanent=False)
        try:
            ack = asyncio.run(self._exchange(host, port, raw))
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            return self._fail(
                message_id, f"GMED {host}:{port} unreachable: {exc!r}", permanent=False
            )
        code, text = ack_code(ack)
        if code in ("AA", "CA"):
            with self.engine.begin() as conn:
                message_store.finish(conn, message_id, "sent", ack=ack)
            return "sent"
        reason = f"GMED answered {code or 'no ACK'}: {text}"
        return self._fail(message_id, reason, permanent=code in ("AR", "CR"))

    async def _exchange(self, host: str, port: int, raw: bytes) -> bytes:
        from mllp_listener.client import open_connection

        reader, writer = await asyncio.wait_for(open_connection(host, port), self.timeout)
        try:
            writer.write_message(raw)
            await writer.drain()
            return await asyncio.wait_for(reader.read_message(), self.timeout)
        finally:
            writer.close()
            await writer.wait_closed()

    def _fail(self, message_id: int, error: str, *, permanent: bool) -> str:
        log.warning("outbound message %s: %s", message_id, error)
        return message_store.fail(
            self.engine,
            message_id,
            error,
            permanent=permanent,
            policy=self.settings.retry_policy(),
        )
