"""RabbitMQ restarts while workers run: every stored message is still processed, once."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import pytest
from sqlalchemy import Engine, func, select

from bench.loadgen import make_messages
from canonical.tables import resources
from hub import message_store
from hub.message_store import INBOUND, NewMessage
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.tables import messages

pytestmark = pytest.mark.rabbitmq
TOTAL = 300


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, timeout=120, capture_output=True)


def _new(raw: bytes, n: int) -> NewMessage:
    return NewMessage(
        channel="gmed",
        direction=INBOUND,
        raw=raw,
        message_type="SIU^S12",
        control_id=f"rmq-{n}",
        sender="SCHApp|GHHSFacility",
    )


def _processed(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(messages).where(messages.c.status == "processed")
            ).scalar_one()
        )


def test_broker_restart_loses_nothing(engine: Engine, broker_url: str) -> None:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        broker_url=broker_url,
        broker_prefix=f"test-{uuid.uuid4().hex[:8]}",
    )
    runtime = HubRuntime(settings, engine)
    runtime.start(workers=2)
    raws = make_messages(TOTAL, "rmq")

    def produce() -> None:
        for start in range(0, TOTAL, 10):
            stored = message_store.store_batch(
                engine, [_new(r, start + i) for i, r in enumerate(raws[start : start + 10])]
            )
            runtime.publish(INBOUND, [s.id for s in stored])
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        time.sleep(0.5)
        _rabbitmqctl("stop_app")  # every connection drops, as in a broker restart
        time.sleep(2)
        _rabbitmqctl("start_app")
        producer.join(120)
        deadline = time.monotonic() + 120
        while _processed(engine) < TOTAL and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        runtime.stop()
        with runtime.bus.connection() as conn:
            channel = conn.channel()
            for queue in runtime.bus.queues.values():
                queue(channel).delete()

    assert _processed(engine) == TOTAL
    with engine.connect() as conn:
        appointments = conn.execute(
            select(func.count())
            .select_from(resources)
            .where(resources.c.resource_type == "Appointment")
        ).scalar_one()
    assert appointments == TOTAL
