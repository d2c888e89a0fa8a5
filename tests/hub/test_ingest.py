"""The listener's sink on a real database: ACK only after commit, AE when the commit fails,
the original ACK for a resend, and every message stored exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Engine

from hub import message_store
from hub.channels import GMED_ACCEPTED_TYPES
from hub.ingest import BatchingSink
from hub.tables import messages
from mllp_listener import MLLPServer, open_connection
from mllp_listener.framing import frame

FIXTURE = Path(__file__).parents[1] / "fixtures" / "hl7v2" / "fhirconv_siu_s12_01_v28.hl7"


def _msa(ack: bytes) -> str:
    return next(s for s in ack.split(b"\r") if s.startswith(b"MSA")).decode()


async def _exchange(engine: Engine, payloads: list[bytes]) -> tuple[list[bytes], list[int]]:
    published: list[int] = []
    sink = BatchingSink(engine, lambda _direction, ids: published.extend(ids))
    server = MLLPServer(sink, host="127.0.0.1", port=0, accepted_types=GMED_ACCEPTED_TYPES)
    await server.start()
    try:
        reader, writer = await open_connection("127.0.0.1", server.port)
        acks = []
        for payload in payloads:
            writer.write_message(payload)
            await writer.drain()
            acks.append(await asyncio.wait_for(reader.read_message(), 10))
        writer.close()
        await writer.wait_closed()
    finally:
        await server.close()
        await sink.close()
    return acks, published


def test_ack_after_commit_and_resend_gets_the_first_ack(engine: Engine) -> None:
    raw = FIXTURE.read_bytes()
    other = raw.replace(b"MSG00012", b"MSG00099")
    acks, published = asyncio.run(_exchange(engine, [raw, other, raw]))
    assert [_msa(a).split("|")[1] for a in acks] == ["AA", "AA", "AA"]
    assert acks[2] == acks[0]  # byte for byte the ACK the first copy got
    assert message_store.counts_by_status(engine) == {"received": 2}
    assert len(published) == 2
    with engine.connect() as conn:
        row = message_store.get(conn, published[0])
    assert row.raw == raw and row.ack == acks[0] and row.control_id == "MSG00012"


def test_a_failed_commit_answers_ae_never_aa(engine: Engine) -> None:
    messages.drop(engine)  # the store is gone: the commit fails
    try:
        acks, published = asyncio.run(_exchange(engine, [FIXTURE.read_bytes()]))
    finally:
        messages.create(engine)
    assert _msa(acks[0]).startswith("MSA|AE|MSG00012")
    assert b"ERR|" in acks[0]
    assert published == []
    acks, _ = asyncio.run(_exchange(engine, [FIXTURE.read_bytes()]))  # the sender resends
    assert _msa(acks[0]).startswith("MSA|AA|MSG00012")


def test_garbage_is_stored_as_rejected_with_its_reason(engine: Engine) -> None:
    async def send_junk() -> bytes:
        sink = BatchingSink(engine, None)
        server = MLLPServer(sink, host="127.0.0.1", port=0, accepted_types=GMED_ACCEPTED_TYPES)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(frame(b"MSH|^~\\&|A|B|||20240101||ORU^R01|X1|P|2.5\r"))
            await writer.drain()
            data = await asyncio.wait_for(reader.read(4096), 10)
            writer.close()
            return data
        finally:
            await server.close()
            await sink.close()

    reply = asyncio.run(send_junk())
    assert b"MSA|AR|X1" in reply
    total, rows = message_store.list_messages(engine, message_store.MessageFilter())
    assert total == 1 and rows[0]["status"] == "rejected"
    assert "ORU" in rows[0]["last_error"]
