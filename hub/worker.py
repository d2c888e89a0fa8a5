"""Workers: a stored message id in, canonical records, domain events and outbound messages out.

Each message is handled in one transaction that claims it, writes the records and marks it
processed, so a crash anywhere leaves it unfinished and it is simply processed again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from canonical.errors import NothingToStore, RejectedInput
from canonical.records import Provenance
from canonical.repository import CanonicalRepository
from hub import message_store
from hub.channels import inbound_channel
from hub.db import write_turn
from hub.events import events_from_results, record_events
from hub.message_store import INBOUND, OUTBOUND
from hub.outbound import OutboundSender, route_changes
from hub.settings import Settings
from mappings.cache import MappingCache
from mappings.model import UnmappedCode
from mappings.store import MappingStore

log = logging.getLogger(__name__)


@dataclass
class Worker:
    engine: Engine
    settings: Settings
    publish: Callable[[str, list[int]], None]
    """Publishes message ids on the bus (used for the outbound messages we create)."""
    sender: OutboundSender | None = None

    def __post_init__(self) -> None:
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        self.mapping_cache = MappingCache()

    def handle(self, direction: str, ids: list[int]) -> None:
        """Bus callback: every id is handled on its own, so one bad message blocks nothing."""
        for message_id in ids:
            if direction == INBOUND:
                self.process_inbound(message_id)
            elif self.sender is not None:
                self.sender.send(message_id)

    def process_inbound(self, message_id: int) -> str:
        """Returns the message's new status ('skipped' when another worker had it)."""
        try:
            outcome = self._normalize_and_store(message_id)
        except RejectedInput as exc:
            return self._reject(message_id, exc)
        except Exception as exc:
            log.warning("message %s failed: %s", message_id, exc)
            return self._fail(message_id, f"{type(exc).__name__}: {exc}", permanent=False)
        if outcome is None:
            return "skipped"
        if outcome:
            self.publish(OUTBOUND, outcome)
        return "processed"

    def _normalize_and_store(self, message_id: int) -> list[int] | None:
        """Returns the ids of outbound messages the change queued (None: not ours to do)."""
        with write_turn(self.engine), self.sessions.begin() as session:
            conn = session.connection()
            row = message_store.claim(conn, message_id)
            if row is None:
                return None
            channel = inbound_channel(row.channel)
            mappings = MappingStore(session)
            mapping = self.mapping_cache.active(mappings, channel.source)
            bundle = channel.normalize(row.raw, mapping, self.settings.default_timezone)
            provenance = Provenance(
                source_system=channel.source,
                message_id=row.id,
                mapping_version=mapping.label,
                received_at=row.received_at,
            )
            results = CanonicalRepository(session).apply(bundle, provenance, message_seq=row.id)
            for table, code in bundle.unmapped:
                mappings.record_unmapped(channel.source, table, code, row.id)
            events = events_from_results(results, bundle.event, channel.source, row.id)
            record_events(conn, events)
            outbound_ids = route_changes(session, self.settings, events)
            message_store.finish(conn, row.id, "processed", mapping_version=mapping.label)
        return outbound_ids

    def _reject(self, message_id: int, exc: RejectedInput) -> str:
        if isinstance(exc, NothingToStore):
            with self.engine.begin() as conn:
                message_store.finish(conn, message_id, "filtered", error=str(exc))
            return "filtered"
        if isinstance(exc, UnmappedCode):
            with self.sessions.begin() as session:
                MappingStore(session).record_unmapped(exc.source, exc.table, exc.code, message_id)
        return self._fail(message_id, f"{type(exc).__name__}: {exc}", permanent=True)

    def _fail(self, message_id: int, error: str, *, permanent: bool) -> str:
        return message_store.fail(
            self.engine,
            message_id,
            error,
            permanent=permanent,
            policy=self.settings.retry_policy(),
        )
