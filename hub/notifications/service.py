"""The notification service of one hub process: a dispatcher thread and a deliverer thread.

Both poll the database, so any number of processes may run them side by side (the cursor
row and the delivery leases keep them from doing the same work twice).
"""

from __future__ import annotations

import logging
import ssl
import threading

from sqlalchemy import Engine

from hub.notifications.deliverer import Deliverer
from hub.notifications.dispatcher import Dispatcher
from hub.notifications.email import EmailSender, SmtpConfig
from hub.notifications.fcm import FcmClient, ServiceAccount
from hub.notifications.outbox import Channels, OutboxPolicy
from hub.notifications.routing import Eligibility
from hub.settings import Settings

log = logging.getLogger(__name__)


def outbox_policy(settings: Settings) -> OutboxPolicy:
    return OutboxPolicy(
        max_attempts=settings.notification_max_attempts,
        base_seconds=settings.notification_retry_base_seconds,
        max_seconds=settings.notification_retry_max_seconds,
    )


def channels_for(settings: Settings) -> Channels:
    """Email when SMTP is configured, push when FCM is; in-app always."""
    return Channels(email=bool(settings.smtp_host), push=bool(settings.fcm_project_id))


def email_sender(settings: Settings, context: ssl.SSLContext | None = None) -> EmailSender | None:
    if not settings.smtp_host:
        return None
    return EmailSender(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            tls=settings.smtp_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout_seconds,
            ssl_context=context,
        )
    )


def fcm_client(settings: Settings) -> FcmClient | None:
    if not settings.fcm_project_id:
        return None
    if settings.fcm_credentials_file is None:
        raise ValueError("HARMONY_FCM_PROJECT_ID needs HARMONY_FCM_CREDENTIALS_FILE")
    account = ServiceAccount.from_file(settings.fcm_credentials_file)
    return FcmClient(settings.fcm_project_id, account, endpoint=settings.fcm_endpoint)


class NotificationService:
    """Starts and stops the dispatcher and deliverer threads of this process."""

    def __init__(
        self, engine: Engine, settings: Settings, *, eligible: Eligibility | None = None
    ) -> None:
        self.settings = settings
        self.dispatcher = Dispatcher(
            engine,
            channels_for(settings),
            eligible=eligible,
            gap_grace=settings.notification_gap_grace_seconds,
            max_failures=settings.notification_max_attempts,
        )
        self.deliverer = Deliverer(
            engine,
            outbox_policy(settings),
            email=email_sender(settings),
            push=fcm_client(settings),
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> NotificationService:
        interval = self.settings.notification_poll_seconds
        for name, loop in (
            ("harmony-notify-dispatch", self.dispatcher.run),
            ("harmony-notify-deliver", self.deliverer.run),
        ):
            thread = threading.Thread(
                target=loop, args=(self._stop, interval), name=name, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        if self.deliverer.push is not None:
            self.deliverer.push.close()
