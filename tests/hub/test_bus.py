"""The bus on memory:// always and on RabbitMQ when configured: ids in, the same ids out."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from hub.bus import Bus
from hub.message_store import INBOUND, OUTBOUND


@pytest.fixture(params=["memory", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    url = "memory://" if request.param == "memory" else request.getfixturevalue("broker_url")
    bus = Bus(url, prefix=prefix)
    yield bus
    with bus.connection() as conn:
        channel = conn.channel()
        for queue in bus.queues.values():
            queue(channel).delete()


def _drain(bus: Bus, expected: int, directions: tuple[str, ...]) -> list[tuple[str, int]]:
    got: list[tuple[str, int]] = []
    done = threading.Event()

    def handle(direction: str, ids: list[int]) -> None:
        got.extend((direction, i) for i in ids)
        if len(got) >= expected:
            done.set()

    consumer = bus.consumer(handle, directions)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    done.wait(20)
    consumer.stop()
    thread.join(10)
    return got


def test_ids_arrive_in_order_per_direction(bus: Bus) -> None:
    publisher = bus.publisher()
    publisher.publish(INBOUND, list(range(1, 451)))  # more than one batch
    publisher.publish(OUTBOUND, [1000, 1001])
    publisher.close()
    got = _drain(bus, 452, (INBOUND, OUTBOUND))
    assert [i for d, i in got if d == INBOUND] == list(range(1, 451))
    assert [i for d, i in got if d == OUTBOUND] == [1000, 1001]


def test_a_failing_handler_gets_the_ids_again(bus: Bus) -> None:
    publisher = bus.publisher()
    publisher.publish(INBOUND, [7])
    publisher.close()
    calls: list[list[int]] = []
    done = threading.Event()

    def flaky(direction: str, ids: list[int]) -> None:
        calls.append(ids)
        if len(calls) == 1:
            raise RuntimeError("database restarting")
        done.set()

    consumer = bus.consumer(flaky, (INBOUND,))
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    assert done.wait(20)
    consumer.stop()
    thread.join(10)
    assert calls[:2] == [[7], [7]]
