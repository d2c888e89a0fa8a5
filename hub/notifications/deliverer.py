"""Sends due email and push deliveries and records each outcome in the outbox."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from hub.notifications import outbox
from hub.notifications.email import EmailSender
from hub.notifications.errors import DeliveryError, TargetGone
from hub.notifications.fcm import FcmClient
from hub.notifications.outbox import Due, OutboxPolicy

log = logging.getLogger(__name__)


class Deliverer:
    """One delivery loop; a channel with no sender here fails its rows, which then park."""

    def __init__(
        self,
        engine: Engine,
        policy: OutboxPolicy,
        *,
        email: EmailSender | None = None,
        push: FcmClient | None = None,
        batch: int = 50,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.email = email
        self.push = push
        self.batch = batch

    def run_once(self) -> int:
        """Send what is due now; the number of deliveries attempted."""
        due = outbox.claim_due(self.engine, self.policy, limit=self.batch)
        for item in due:
            self._deliver(item)
        return len(due)

    def _deliver(self, item: Due) -> None:
        try:
            self._send(item)
        except TargetGone as exc:
            log.info("delivery %s: %s; token forgotten", item.id, exc)
            outbox.mark_target_gone(self.engine, item, str(exc))
        except DeliveryError as exc:
            status = outbox.mark_failed(
                self.engine,
                item,
                str(exc),
                self.policy,
                permanent=exc.permanent,
                retry_after=exc.retry_after,
            )
            log.warning("delivery %s (%s) failed, %s: %s", item.id, item.channel, status, exc)
        except Exception as exc:  # a bug in a sender must not lose the delivery
            outbox.mark_failed(self.engine, item, repr(exc), self.policy)
            log.exception("delivery %s (%s) crashed", item.id, item.channel)
        else:
            outbox.mark_sent(self.engine, item.id)

    def _send(self, item: Due) -> None:
        if item.channel == "email":
            if self.email is None:
                raise DeliveryError("email is not configured in this process (HARMONY_SMTP_HOST)")
            self.email.send(item.target, item.title, item.body)
        elif item.channel == "push":
            if self.push is None:
                raise DeliveryError("push is not configured in this process (HARMONY_FCM_*)")
            data = {**item.data, "notification_id": item.notification_id}
            self.push.send(item.target, item.title, item.body, data)
        else:
            raise DeliveryError(f"unknown channel {item.channel!r}", permanent=True)

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll until ``stop`` is set; a full batch is followed at once by the next."""
        while not stop.is_set():
            try:
                busy = self.run_once() >= self.batch
            except Exception as exc:  # the database went away: try again next time
                log.warning("notification delivery pass failed, trying again: %s", exc)
                busy = False
            if not busy:
                stop.wait(interval)
