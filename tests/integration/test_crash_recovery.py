"""SIGKILL in the middle of a stream: every ACKed message survives and is processed once,
and the sender's resends of what was not ACKed create no duplicates."""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from bench.loadgen import make_messages
from canonical.tables import resources
from hub.db import make_engine
from hub.tables import messages
from tests.integration.harness import Harmony, MLLPClient, msa_code

TOTAL = 400
CONNECTIONS = 4


def _send_until_killed(
    port: int, batch: list[bytes], acked: set[bytes], stop: threading.Event
) -> None:
    try:
        client = MLLPClient(port)
        for message in batch:
            if stop.is_set():
                return
            ack = client.send(message)
            if msa_code(ack) == "AA":
                acked.add(message)
    except OSError:
        return  # the server died under us: exactly what the test wants


def _wait_processed(database_url: str, expected: int, timeout: float = 180.0) -> dict[str, int]:
    engine = make_engine(database_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                counts = dict(
                    conn.execute(
                        select(messages.c.status, func.count()).group_by(messages.c.status)
                    ).all()
                )
            if counts.get("processed", 0) >= expected or time.monotonic() > deadline:
                return counts
            time.sleep(0.5)
    finally:
        engine.dispose()


def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(database_url: str) -> None:
    all_messages = make_messages(TOTAL, "kill")
    shares = [all_messages[i::CONNECTIONS] for i in range(CONNECTIONS)]
    hub = Harmony(database_url).start()
    acked: set[bytes] = set()
    stop = threading.Event()
    senders = [
        threading.Thread(target=_send_until_killed, args=(hub.mllp_port, s, acked, stop))
        for s in shares
    ]
    for t in senders:
        t.start()
    while len(acked) < TOTAL // 3:
        time.sleep(0.01)
    hub.kill()
    stop.set()
    for t in senders:
        t.join(30)
    acked_before_kill = set(acked)
    assert 0 < len(acked_before_kill) < TOTAL

    hub.start()
    try:
        client = MLLPClient(hub.mllp_port)
        # The sender resends everything it has no ACK for, plus a few it has (it may not
        # have seen them): none may create a second record.
        resend = [m for m in all_messages if m not in acked_before_kill]
        resend += sorted(acked_before_kill)[:20]
        for message in resend:
            assert msa_code(client.send(message)) == "AA"
        client.close()
        counts = _wait_processed(database_url, TOTAL)
    finally:
        hub.stop()

    assert counts == {"processed": TOTAL}, counts
    engine = make_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(messages.c.control_id)).scalars().all()
        appointments = conn.execute(
            select(func.count())
            .select_from(resources)
            .where(resources.c.resource_type == "Appointment")
        ).scalar_one()
    engine.dispose()
    assert sorted(stored) == sorted(f"kill-{i}" for i in range(TOTAL))
    assert appointments == TOTAL
