"""The bus carries message ids, never state: the message store is the source of truth.

kombu gives one interface over ``memory://`` (one process) and ``amqp://`` (RabbitMQ, several
processes). A lost bus message costs nothing but time: unfinished messages are re-queued from
the store on start and by the stale sweep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.mixins import ConsumerMixin

from hub.message_store import INBOUND, OUTBOUND

log = logging.getLogger(__name__)

Handler = Callable[[str, list[int]], None]
"""Called with (direction, message ids); raising asks for the bus message to come back later."""

RETRY_POLICY = {"interval_start": 0.2, "interval_step": 0.5, "interval_max": 5, "max_retries": None}


class Bus:
    """Names the exchange and queues; hands out publishers and consumers."""

    def __init__(self, url: str, prefix: str = "harmony") -> None:
        self.url = url
        self.exchange = Exchange(prefix, type="direct", durable=True)
        self.queues = {
            d: Queue(f"{prefix}.{d}", self.exchange, routing_key=d, durable=True)
            for d in (INBOUND, OUTBOUND)
        }

    def connection(self) -> Connection:
        return Connection(self.url, heartbeat=0, transport_options={"confirm_publish": True})

    def publisher(self) -> Publisher:
        return Publisher(self)

    def consumer(self, handler: Handler, directions: Sequence[str] = (INBOUND,)) -> BusConsumer:
        return BusConsumer(self, handler, directions)


class Publisher:
    """One connection per publisher; thread-safe by a lock, reconnects on its own."""

    BATCH = 200

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._publish: Callable[..., Any] | None = None
        self._bound: dict[str, Queue] = {}

    def publish(self, direction: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._lock:
            publish, queue = self._connected(direction)
            for start in range(0, len(ids), self.BATCH):
                publish(
                    {"ids": list(ids[start : start + self.BATCH])},
                    exchange=self._bus.exchange,
                    routing_key=direction,
                    declare=[queue],
                    serializer="json",
                    delivery_mode=2,
                )

    def _connected(self, direction: str) -> tuple[Callable[..., Any], Queue]:
        """The retrying publish function and the queue bound to the producer's channel.

        Both are made once per connection: building them per call cost more than the publish
        itself. After a reconnect kombu rebinds the queue to the new channel on its own.
        """
        if self._conn is None or self._producer is None or self._publish is None:
            self._conn = self._bus.connection()
            self._producer = Producer(self._conn)
            self._publish = self._conn.ensure(
                self._producer, self._producer.publish, **RETRY_POLICY
            )
            self._bound = {}
        queue = self._bound.get(direction)
        if queue is None:
            queue = self._bound[direction] = self._bus.queues[direction](self._producer.channel)
        return self._publish, queue

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.release()
            self._conn = self._producer = self._publish = None


class BusConsumer(ConsumerMixin):
    """Runs the handler for each delivery; reconnects after a broker restart by itself."""

    def __init__(self, bus: Bus, handler: Handler, directions: Sequence[str]) -> None:
        self.connection = bus.connection()
        self._bus = bus
        self._handler = handler
        self._directions = list(directions)

    def get_consumers(self, consumer_cls: Callable[..., Consumer], channel: Any) -> list[Consumer]:
        return [
            consumer_cls(
                queues=[self._bus.queues[d]],
                callbacks=[self._callback(d)],
                accept=["json"],
                prefetch_count=4,
            )
            for d in self._directions
        ]

    def _callback(self, direction: str) -> Callable[[Any, Any], None]:
        def on_message(body: Any, message: Any) -> None:
            ids = [int(i) for i in body.get("ids", [])] if isinstance(body, dict) else []
            try:
                self._handler(direction, ids)
            except Exception:
                log.exception(
                    "handler failed for %s ids %s; returning them to the bus", direction, ids[:5]
                )
                self.should_stop_event.wait(1.0)
                message.requeue()
                return
            message.ack()

        return on_message

    @property
    def should_stop_event(self) -> threading.Event:
        event = getattr(self, "_stop_event", None)
        if event is None:
            event = self._stop_event = threading.Event()
        return event

    def stop(self) -> None:
        self.should_stop = True
        self.should_stop_event.set()
