"""The hub's moving parts in one place: store, bus, workers, retry scheduler, replay."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from canonical.repository import UpsertResult
from hub import message_store
from hub.appointments import AppointmentService
from hub.booking import BookingService
from hub.bus import Bus, BusConsumer, Publisher
from hub.changes import save_change
from hub.db import engine_for
from hub.message_store import INBOUND, OUTBOUND, utcnow
from hub.notifications.service import NotificationService, channels_for
from hub.outbound import OutboundSender
from hub.reminders import queue_reminders
from hub.settings import Settings
from hub.sources import ClientPool
from hub.sync import SyncRunner, SyncScheduler
from hub.waitlist import expire_offers, recover_accepted
from hub.waitlist_watch import watch_freed_slots
from hub.worker import Worker

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=5)


class HubRuntime:
    """Owns the bus connections and worker threads of one process."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or engine_for(settings)
        self.bus = Bus(settings.broker_url, prefix=settings.broker_prefix)
        self.publisher: Publisher = self.bus.publisher()
        self.worker = Worker(
            self.engine, settings, self.publish, sender=OutboundSender(self.engine, settings)
        )
        self.syncs = SyncScheduler(SyncRunner(self.engine, settings, self.publish))
        self.clients = ClientPool()
        self.booking = BookingService(
            self.engine, settings, self.worker.process_inbound, self.publish, self.clients
        )
        self.appointments = AppointmentService(self.booking)
        self._consumers: list[BusConsumer] = []
        self.notifications: NotificationService | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    def publish(self, direction: str, ids: list[int]) -> None:
        self.publisher.publish(direction, ids)

    def requeue_unfinished(self) -> int:
        """On start: every stored message that is not finished goes back on the bus."""
        count, after = 0, 0
        while True:
            page = message_store.waiting_ids(self.engine, after_id=after)
            if not page:
                return count
            self._publish_pairs(page)
            count += len(page)
            after = page[-1][0]

    def save_change(
        self, resource_type: str, resource: dict[str, Any], *, source_system: str
    ) -> UpsertResult:
        """Store a change made in Harmony and send it on to the systems that need it."""
        result, outbound = save_change(
            self.engine, self.settings, resource_type, resource, source_system=source_system
        )
        if outbound:
            self.publish(OUTBOUND, outbound)
        return result

    def replay(self, ids: Iterable[int]) -> list[int]:
        pairs = message_store.replay(self.engine, ids)
        self._publish_pairs(pairs)
        return [i for i, _ in pairs]

    def _publish_pairs(self, pairs: list[tuple[int, str]]) -> None:
        for direction in (INBOUND, OUTBOUND):
            ids = [i for i, d in pairs if d == direction]
            if ids:
                self.publish(direction, ids)

    def start_workers(self, count: int = 1) -> None:
        for n in range(count):
            consumer = self.bus.consumer(self.worker.handle, (INBOUND, OUTBOUND))
            self._consumers.append(consumer)
            self._spawn(f"harmony-worker-{n}", consumer.run)

    def start_scheduler(self, interval: float = 1.0) -> None:
        """Retries and the appointment pass on one thread; the waitlist pass on its own, so
        a slow reminder or retry pass never holds back an offer."""
        self._spawn("harmony-scheduler", lambda: self._schedule(interval))
        self._spawn("harmony-waitlist", self._schedule_waitlist)

    def appointment_pass(self, now: datetime | None = None) -> None:
        """Reminders entering their window and cancellations a reschedule left to retry."""
        self._run_each(
            "appointment",
            (
                (
                    "reminders",
                    lambda: queue_reminders(
                        self.engine, self.settings, channels_for(self.settings), now
                    ),
                ),
                ("cancel retries", lambda: self.appointments.retry_cancellations(now)),
            ),
        )

    def waitlist_pass(self, now: datetime | None = None) -> None:
        """Freed slots offered to the waitlist, offers that ran out passed on, and accepted
        offers a crash left without their booking settled."""
        self._run_each(
            "waitlist",
            (
                ("offers", lambda: watch_freed_slots(self.engine, self.settings, now)),
                ("expiry", lambda: expire_offers(self.engine, self.settings, now)),
                ("recovery", lambda: recover_accepted(self.engine, self.settings, now)),
            ),
        )

    @staticmethod
    def _run_each(kind: str, steps: Iterable[tuple[str, Callable[[], object]]]) -> None:
        """Each step on its own: one failing is logged and tried again next pass."""
        for name, work in steps:
            try:
                work()
            except Exception as exc:
                log.warning("%s %s pass failed, trying again: %s", kind, name, exc)

    def _schedule_waitlist(self) -> None:
        while not self._stop.wait(self.settings.waitlist_poll_seconds):
            self.waitlist_pass()

    def _schedule(self, interval: float) -> None:
        last_sweep = utcnow()
        every = timedelta(seconds=self.settings.appointment_reminder_poll_seconds)
        last_appointments = utcnow() - every
        while not self._stop.wait(interval):
            if utcnow() - last_appointments >= every:
                self.appointment_pass()
                last_appointments = utcnow()
            try:
                self._publish_pairs(message_store.due_retries(self.engine))
                if utcnow() - last_sweep > STALE_AFTER:
                    # Ids whose bus message was lost (a broker wiped, a publish that failed).
                    stale = message_store.waiting_ids(
                        self.engine, older_than=utcnow() - STALE_AFTER, limit=1000
                    )
                    self._publish_pairs(stale)
                    last_sweep = utcnow()
            except Exception as exc:
                log.warning("scheduler pass failed, trying again: %s", exc)

    def _spawn(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def start(self, workers: int = 1) -> None:
        """Workers, retries and source syncs: the processes that do the hub's work."""
        self.requeue_unfinished()
        self.start_workers(workers)
        self.start_scheduler()
        self.syncs.start()
        self.notifications = NotificationService(self.engine, self.settings).start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.syncs.stop()
        if self.notifications is not None:
            self.notifications.stop(timeout)
        self.clients.close()
        for consumer in self._consumers:
            consumer.stop()
        for thread in self._threads:
            thread.join(timeout)
        self.publisher.close()
