"""Syncing API sources: every fetched page goes into the message store with its resume cursor.

A page and the cursor after it commit in one transaction, so a sync that breaks on page 7
resumes at page 7 next time and never loses or doubles a page (and the canonical upsert is
idempotent anyway). One run at a time per integration, across processes: a run first claims
the integration's row. Failures back off exponentially; after
``sync_failures_to_open_circuit`` in a row the circuit opens and the source is left alone
for ``sync_circuit_open_seconds``, unless an operator asks for a sync now.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, or_, select, update

from adapters.contract import FetchedPage, SourceError
from hub import message_store
from hub.integrations import IntegrationRegistry
from hub.message_store import INBOUND, NewMessage, utcnow
from hub.settings import Settings
from hub.sources import ClientFactory, make_source_client
from hub.tables import integrations

log = logging.getLogger(__name__)

Publish = Callable[[str, list[int]], None]
STALE_RUN = timedelta(hours=1)
"""A run claimed this long ago is taken to have died with its process."""


class AlreadyRunning(RuntimeError):
    pass


@dataclass
class SyncReport:
    integration: str
    pages: int = 0
    message_ids: list[int] = field(default_factory=list)
    error: str | None = None
    full: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "integration": self.integration,
            "pages": self.pages,
            "message_ids": self.message_ids,
            "error": self.error,
            "full": self.full,
        }


def page_message(integration: str, page: FetchedPage) -> NewMessage:
    env = page.envelope
    return NewMessage(
        channel=env.source_type,
        direction=INBOUND,
        raw=env.to_bytes(),
        message_type=env.kind[:32],
        control_id=env.request[:199],
        sender=integration,
    )


class SyncRunner:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        publish: Publish,
        clients: ClientFactory = make_source_client,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.publish = publish
        self.clients = clients
        self.registry = IntegrationRegistry(engine, settings)

    def run(self, name: str, *, full: bool = False) -> SyncReport:
        """Sync one integration now; raises AlreadyRunning if another run holds it."""
        config = self.registry.config(name)
        cursor = self._claim(name)
        report = SyncReport(name, full=full or cursor is None)
        client = self.clients(config)
        try:
            for page in client.sync(None if full else cursor):
                report.message_ids.append(self._store_page(name, page))
                report.pages += 1
                self.publish(INBOUND, [report.message_ids[-1]])
        except SourceError as exc:
            report.error = str(exc)
        except Exception as exc:  # an adapter bug must not leave the integration claimed
            log.exception("sync of %s failed", name)
            report.error = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()
            self._release(name, report)
        return report

    def _claim(self, name: str) -> dict[str, Any] | None:
        now = utcnow()
        with self.engine.begin() as conn:
            claimed = conn.execute(
                update(integrations)
                .where(
                    integrations.c.name == name,
                    or_(
                        integrations.c.running_since.is_(None),
                        integrations.c.running_since < now - STALE_RUN,
                    ),
                )
                .values(running_since=now)
            )
            if claimed.rowcount == 0:
                raise AlreadyRunning(f"a sync of {name!r} is already running")
            cursor = conn.execute(
                select(integrations.c.cursor).where(integrations.c.name == name)
            ).scalar_one()
        return dict(cursor) if cursor else None

    def _store_page(self, name: str, page: FetchedPage) -> int:
        with self.engine.begin() as conn:
            stored = message_store.store_in(conn, page_message(name, page))
            conn.execute(
                update(integrations)
                .where(integrations.c.name == name)
                .values(cursor=page.cursor, pages_stored=integrations.c.pages_stored + 1)
            )
        return stored.id

    def _release(self, name: str, report: SyncReport) -> None:
        now = utcnow()
        values: dict[str, Any] = {"running_since": None, "last_sync_at": now, "updated_at": now}
        with self.engine.begin() as conn:
            row = conn.execute(
                select(
                    integrations.c.consecutive_failures, integrations.c.sync_interval_seconds
                ).where(integrations.c.name == name)
            ).one()
            if report.error is None:
                values.update(
                    last_success_at=now,
                    consecutive_failures=0,
                    last_error=None,
                    next_sync_at=now + self._jittered(row.sync_interval_seconds),
                )
            else:
                failures = row.consecutive_failures + 1
                values.update(
                    consecutive_failures=failures,
                    last_error=report.error,
                    next_sync_at=now + self._backoff(failures, row.sync_interval_seconds),
                )
                log.warning("sync of %s failed (%d in a row): %s", name, failures, report.error)
            conn.execute(update(integrations).where(integrations.c.name == name).values(**values))

    def _jittered(self, interval: int) -> timedelta:
        spread = interval * self.settings.sync_jitter_fraction
        return timedelta(seconds=interval + random.uniform(-spread, spread))

    def _backoff(self, failures: int, interval: int) -> timedelta:
        if failures >= self.settings.sync_failures_to_open_circuit:
            return timedelta(seconds=self.settings.sync_circuit_open_seconds)
        return timedelta(seconds=min(interval, 5 * 2 ** (failures - 1)))


def due_integrations(engine: Engine, now: datetime) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(integrations.c.name).where(
                integrations.c.enabled == 1,
                integrations.c.running_since.is_(None),
                or_(integrations.c.next_sync_at.is_(None), integrations.c.next_sync_at <= now),
            )
        ).all()
    return [row.name for row in rows]


class SyncScheduler:
    """Starts due syncs on a small thread pool; ``trigger`` runs one at once (webhooks, API)."""

    def __init__(self, runner: SyncRunner, tick_seconds: float = 1.0) -> None:
        self.runner = runner
        self.tick = tick_seconds
        self._pool = ThreadPoolExecutor(
            max_workers=runner.settings.sync_concurrency, thread_name_prefix="harmony-sync"
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inflight: dict[str, Future[SyncReport | None]] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="harmony-sync-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def trigger(self, name: str, *, full: bool = False) -> Future[SyncReport | None]:
        """Queue a sync of ``name`` unless one is queued or running in this process."""
        with self._lock:
            running = self._inflight.get(name)
            if running is not None and not running.done():
                return running
            future = self._pool.submit(self._run, name, full)
            self._inflight[name] = future
            return future

    def _run(self, name: str, full: bool) -> SyncReport | None:
        try:
            return self.runner.run(name, full=full)
        except AlreadyRunning:
            return None
        except Exception:
            log.exception("sync of %s could not start", name)
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                for name in due_integrations(self.runner.engine, utcnow()):
                    self.trigger(name)
            except Exception:
                log.exception("sync scheduler tick failed")
