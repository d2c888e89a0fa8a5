"""The server end to end over real sockets, with real in-memory sinks."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from hl7apy.parser import parse_message

from mllp_listener import FrameProblem, frame, parse_header
from tests.mllp_listener.conftest import BOTH_LOOPS
from tests.mllp_listener.mllp_support import (
    FIXTURES,
    FailingSink,
    RecordingSink,
    ack_segments,
    connected,
    expect_closed,
    make_message,
    msa,
    read_ack,
    serving,
)

VT, FS, CR = b"\x0b", b"\x1c", b"\r"

pytestmark = BOTH_LOOPS


async def test_many_messages_on_one_connection_are_stored_then_acked_in_order() -> None:
    sink = RecordingSink()
    msgs = [make_message(f"ONE{i}") for i in range(300)]
    async with serving(sink) as server, connected(server) as (reader, writer):
        for i, m in enumerate(msgs):
            writer.write_message(m)
            await writer.drain()
            ack = await read_ack(reader)
            assert msa(ack) == ("AA", f"ONE{i}")
            # Commit before ACK: by the time the ACK is on the wire, the sink has the message.
            assert sink.received[i].raw == m
            assert sink.acks[i] == ack
    assert [r.raw for r in sink.received] == msgs
    assert all(r.rejection is None and r.peer.startswith("127.0.0.1:") for r in sink.received)


async def test_ack_waits_for_the_commit() -> None:
    sink = RecordingSink()
    sink.gate = asyncio.Event()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("GATE1"))
        await writer.drain()
        with pytest.raises(TimeoutError):
            await read_ack(reader, timeout=0.3)
        assert sink.received == []
        sink.gate.set()
        assert msa(await read_ack(reader)) == ("AA", "GATE1")
        assert len(sink.received) == 1


async def test_eight_concurrent_connections_commit_concurrently_but_in_order_each() -> None:
    sink = RecordingSink(delay=0.002)
    per_conn = 60

    async def client(n: int) -> list[str]:
        async with connected(server) as (reader, writer):
            got = []
            for i in range(per_conn):
                writer.write_message(make_message(f"C{n}-{i}", sender=f"APP{n}|FAC"))
                await writer.drain()
                code, ctl = msa(await read_ack(reader))
                assert code == "AA"
                got.append(ctl)
            return got

    async with serving(sink) as server:
        results = await asyncio.gather(*(client(n) for n in range(8)))
    for n, got in enumerate(results):
        assert got == [f"C{n}-{i}" for i in range(per_conn)]
        stored = [
            r.header.control_id
            for r in sink.received
            if r.header and r.header.sending_application == f"APP{n}"
        ]
        assert stored == got
    assert len(sink.received) == 8 * per_conn
    assert sink.max_in_flight > 1  # commits from different connections overlap (batchable)
    assert sink.max_in_flight_per_peer == 1  # one connection never has two commits at once


@pytest.mark.parametrize("depth", [1, 4])
async def test_pipelined_sender_gets_acks_in_order(depth: int) -> None:
    sink = RecordingSink()
    rng = random.Random(7)
    store = sink.store

    calls: list[str] = []
    overlap = [0, 0]  # now, max

    async def jittery(received, ack):  # type: ignore[no-untyped-def]
        calls.append(received.header.control_id)
        overlap[0] += 1
        overlap[1] = max(overlap)
        try:
            await asyncio.sleep(rng.random() / 500)  # commits finish out of order
            if received.header.control_id == "P13":
                raise RuntimeError("this one fails")
            return await store(received, ack)
        finally:
            overlap[0] -= 1

    sink.store = jittery  # type: ignore[method-assign]
    n = 200
    async with (
        serving(sink, pipeline_depth=depth) as server,
        connected(server) as (reader, writer),
    ):
        for i in range(n):  # everything at once, before reading any ACK
            writer.write_message(make_message(f"P{i}"))
        await writer.drain()
        acks = [msa(await read_ack(reader)) for _ in range(n)]
    assert acks == [("AE" if i == 13 else "AA", f"P{i}") for i in range(n)]
    assert calls == [f"P{i}" for i in range(n)]  # stores are started in arrival order
    stored = {r.header.control_id for r in sink.received if r.header}
    assert stored == {f"P{i}" for i in range(n) if i != 13}
    if depth == 1:
        assert overlap[1] == 1
    else:
        assert 1 < overlap[1] <= depth


def _expected_answer(raw: bytes) -> tuple[str | None, str]:
    """What the listener must answer for a fixture, derived from its own MSH."""
    header = parse_header(raw)
    if header.is_ack or header.accept_ack_type == "NE":
        return None, header.control_id
    return "AA", header.control_id


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.name)
async def test_every_fixture_gets_the_right_answer(path) -> None:  # type: ignore[no-untyped-def]
    raw = path.read_bytes()
    code, control_id = _expected_answer(raw)
    sink = RecordingSink()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(raw)
        # A follow-up message proves what (if anything) was answered to the fixture.
        writer.write_message(make_message("FOLLOW"))
        await writer.drain()
        first = await read_ack(reader)
        if code is None:
            assert msa(first) == ("AA", "FOLLOW")
        else:
            header = parse_header(raw)
            text = first.decode(header.codec)
            oracle = parse_message(text)
            assert oracle.msa.msa_1.value == code
            assert oracle.msa.msa_2.value == control_id
            assert msa(await read_ack(reader)) == ("AA", "FOLLOW")
    assert sink.received[0].raw == raw  # exactly the bytes between VT and FS
    assert sink.received[0].rejection is None


async def test_sink_failure_sends_ae_never_aa_and_other_connections_keep_working() -> None:
    failing = FailingSink()
    async with serving(failing) as server, connected(server) as (reader, writer):
        for i in range(3):
            writer.write_message(make_message(f"F{i}"))
            await writer.drain()
            ack = await read_ack(reader)
            segs = ack_segments(ack)
            assert (segs["MSA"][1], segs["MSA"][2]) == ("AE", f"F{i}")
            assert segs["ERR"][3].startswith("207^")
            assert segs["ERR"][4] == "E"
        # The sink was told an AA was intended, yet AA never went out.
        assert all(ack is not None and b"MSA|AA|" in ack for _, ack in failing.calls)


@pytest.mark.parametrize("mode", ["NE", "SU"])
async def test_sink_failure_without_error_acks_closes(mode: str) -> None:
    failing = FailingSink()
    async with serving(failing) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("NE1", accept_ack=mode))
        await writer.drain()
        await expect_closed(reader)


async def test_inbound_ack_is_stored_but_not_answered() -> None:
    sink = RecordingSink()
    ack_in = (FIXTURES / "python_hl7_ack_a01_aa_v231.hl7").read_bytes()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(ack_in)
        writer.write_message(make_message("AFTER"))
        await writer.drain()
        assert msa(await read_ack(reader)) == ("AA", "AFTER")
    assert sink.received[0].raw == ack_in
    assert sink.received[0].header is not None and sink.received[0].header.is_ack
    assert sink.acks[0] is None


async def test_byte_identical_resend_gets_the_original_ack_bytes() -> None:
    sink = RecordingSink()
    m = make_message("DUP1")
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(m)
        await writer.drain()
        first = await read_ack(reader)
        writer.write_message(m)
        await writer.drain()
        again = await read_ack(reader)
    assert again == first
    assert len(sink.received) == 1


@pytest.mark.parametrize(
    ("msg_type", "error_code"), [("ORU^R01", "200"), ("SIU^S99", "201"), ("ADT^A01", "201")]
)
async def test_unsupported_types_are_rejected_and_still_stored(
    msg_type: str, error_code: str
) -> None:
    sink = RecordingSink()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("T1", msg_type=msg_type))
        await writer.drain()
        ack = await read_ack(reader)
    oracle = parse_message(ack.decode())
    assert (oracle.msa.msa_1.value, oracle.msa.msa_2.value) == ("AR", "T1")
    assert oracle.err.err_3.err_3_1.value == error_code
    assert msg_type.replace("^", "\\S\\") in oracle.err.err_8.value  # escaped, as HL7 wants
    rejection = sink.received[0].rejection
    assert (
        rejection is not None and rejection.ack_code == "AR" and rejection.error_code == error_code
    )
    assert sink.acks[0] == ack


async def test_accepted_types_are_configurable() -> None:
    sink = RecordingSink()
    async with serving(sink, accepted_types={"ORU^R01"}) as server, connected(server) as (r, w):
        w.write_message(make_message("O1", msg_type="ORU^R01"))
        w.write_message(make_message("O2", msg_type="SIU^S12"))
        await w.drain()
        assert msa(await read_ack(r)) == ("AA", "O1")
        assert msa(await read_ack(r)) == ("AR", "O2")


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
async def test_segment_endings_and_bom(sep: bytes) -> None:
    sink = RecordingSink()
    plain = make_message("S1", sep=sep)
    bom = b"\xef\xbb\xbf" + make_message("S2", sep=sep, version=None)
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(plain)
        writer.write_message(bom)
        await writer.drain()
        assert msa(await read_ack(reader)) == ("AA", "S1")
        ack2 = await read_ack(reader)
        assert msa(ack2) == ("AA", "S2")
        assert ack_segments(ack2)["MSH"][12] == "2.5"
    assert [r.raw for r in sink.received] == [plain, bom]


@pytest.mark.parametrize(
    ("mode", "ok_code", "err_code"),
    [
        ("", "AA", "AR"),
        ("AL", "CA", "CR"),
        ("NE", None, None),
        ("ER", None, "CR"),
        ("SU", "CA", None),
    ],
)
async def test_msh15_modes(mode: str, ok_code: str | None, err_code: str | None) -> None:
    sink = RecordingSink()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("OK", accept_ack=mode))
        writer.write_message(make_message("BAD", accept_ack=mode, msg_type="ORU^R01"))
        writer.write_message(make_message("END"))  # original mode: always answered
        await writer.drain()
        answers = [msa(await read_ack(reader))]
        while answers[-1][1] != "END":
            answers.append(msa(await read_ack(reader)))
    expected = [(c, i) for c, i in ((ok_code, "OK"), (err_code, "BAD")) if c] + [("AA", "END")]
    assert answers == expected
    assert [r.header.control_id for r in sink.received if r.header] == ["OK", "BAD", "END"]


async def test_unknown_charset_gets_ar_with_err() -> None:
    sink = RecordingSink()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("CS1", charset="EBCDIC-FANTASY"))
        await writer.drain()
        ack = await read_ack(reader)
    oracle = parse_message(ack.decode("ascii"))
    assert (oracle.msa.msa_1.value, oracle.msa.msa_2.value) == ("AR", "CS1")
    assert oracle.err.err_3.err_3_1.value == "103"
    assert "EBCDIC-FANTASY" in oracle.err.err_8.value
    assert sink.received[0].rejection is not None


async def test_oversize_is_answered_without_buffering_and_the_connection_goes_on() -> None:
    sink = RecordingSink()
    limit = 2000
    big = make_message("BIG", body="NTE|1||" + "é" * 1500)  # < limit characters, > limit bytes
    async with serving(sink, max_message_bytes=limit) as server, connected(server) as (r, w):
        w.write_message(big)
        w.write_message(make_message("SMALL"))
        await w.drain()
        ack = await read_ack(r)
        assert msa(await read_ack(r)) == ("AA", "SMALL")
    segs = ack_segments(ack)
    assert (segs["MSA"][1], segs["MSA"][2]) == ("AR", "BIG")
    assert segs["ERR"][3].startswith("104^")
    assert str(len(big)) in segs["ERR"][8] and str(limit) in segs["ERR"][8]
    stored = sink.received[0]
    assert stored.raw == big[:limit]
    assert stored.rejection is not None and stored.rejection.error_code == "104"


async def test_message_exactly_at_the_limit_is_accepted() -> None:
    sink = RecordingSink()
    m = make_message("EXACT")
    async with serving(sink, max_message_bytes=len(m)) as server, connected(server) as (r, w):
        w.write_message(m)
        await w.drain()
        assert msa(await read_ack(r)) == ("AA", "EXACT")


async def test_truncated_frame_is_stored_and_answered_on_half_close() -> None:
    sink = RecordingSink()
    whole = make_message("HALF")
    partial = whole[: whole.index(CR) + 5]  # the MSH and a bit of the next segment
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_raw(frame(make_message("WHOLE")) + VT + partial)
        writer.write_eof()
        assert msa(await read_ack(reader)) == ("AA", "WHOLE")
        ack = await read_ack(reader)
        await expect_closed(reader)
    assert msa(ack) == ("AE", "HALF")
    assert sink.received[1].raw == partial
    assert sink.received[1].rejection is not None
    assert FrameProblem.TRUNCATED.value in sink.received[1].rejection.text


async def test_new_start_block_before_end_block() -> None:
    sink = RecordingSink()
    whole = make_message("CUT")
    first = whole[: whole.index(CR) + 5]
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_raw(VT + first + frame(make_message("NEXT")))
        await writer.drain()
        assert msa(await read_ack(reader)) == ("AE", "CUT")
        assert msa(await read_ack(reader)) == ("AA", "NEXT")
    assert sink.received[0].raw == first


async def test_unframed_message_is_answered_ae() -> None:
    sink = RecordingSink()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_raw(make_message("NOVT") + FS + CR)
        await writer.drain()
        ack = await read_ack(reader)
    segs = ack_segments(ack)
    assert (segs["MSA"][1], segs["MSA"][2]) == ("AE", "NOVT")
    assert "outside a frame" in segs["ERR"][8]


@pytest.mark.parametrize(
    "payload",
    [
        b"PID|1||12345\r",  # missing MSH
        b"MSH^~\\&|A|B|C|D|2024||SIU^S12|W1|P|2.5\r",  # wrong separators
        b"\x00\x01junk\x02MSH|^~\\&|A|B|C|D|2024||SIU^S12|W2|P|2.5\r",  # junk glued to MSH
    ],
)
async def test_no_usable_msh_closes_with_a_log_naming_the_bytes(
    payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    sink = RecordingSink()
    caplog.set_level(logging.WARNING, logger="mllp_listener")
    async with serving(sink) as server, connected(server) as (other_r, other_w):
        async with connected(server) as (reader, writer):
            writer.write_message(payload)
            await writer.drain()
            await expect_closed(reader)
        other_w.write_message(make_message("STILL"))  # the listener serves everyone else
        await other_w.drain()
        assert msa(await read_ack(other_r)) == ("AA", "STILL")
    assert repr(payload[:40]) in caplog.text
    assert sink.received[0].raw == payload
    assert sink.received[0].header is None and sink.received[0].rejection is not None


async def test_junk_outside_frames_closes_with_a_log(caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink()
    caplog.set_level(logging.WARNING, logger="mllp_listener")
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("BEFORE"))
        writer.write_raw(b"GET / HTTP/1.1\r\n\r\n" + frame(make_message("AFTER")))
        await writer.drain()
        assert msa(await read_ack(reader)) == ("AA", "BEFORE")
        await expect_closed(reader)
    assert repr(b"GET / HTTP/1.1\r\n\r\n") in caplog.text
    assert sink.received[1].rejection is not None
    assert FrameProblem.OUTSIDE_FRAME.value in sink.received[1].rejection.text


async def test_junk_before_msh_inside_frame_gets_ar() -> None:
    sink = RecordingSink()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(b"garbage line\r" + make_message("JB1"))
        await writer.drain()
        ack = await read_ack(reader)
    segs = ack_segments(ack)
    assert (segs["MSA"][1], segs["MSA"][2]) == ("AR", "JB1")
    assert segs["ERR"][3].startswith("100^")
    assert "garbage line" in segs["ERR"][8]


async def test_empty_frames_are_keepalives() -> None:
    sink = RecordingSink()
    async with serving(sink) as server, connected(server) as (reader, writer):
        writer.write_message(b"")
        writer.write_message(make_message("K1"))
        await writer.drain()
        assert msa(await read_ack(reader)) == ("AA", "K1")
    assert len(sink.received) == 1


async def test_idle_connections_are_closed() -> None:
    sink = RecordingSink()
    async with serving(sink, idle_timeout=0.2) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("I1"))
        await writer.drain()
        assert msa(await read_ack(reader)) == ("AA", "I1")
        await expect_closed(reader, timeout=3)


async def test_slow_commit_is_not_mistaken_for_an_idle_peer() -> None:
    sink = RecordingSink(delay=0.5)
    async with serving(sink, idle_timeout=0.1) as server, connected(server) as (reader, writer):
        writer.write_message(make_message("SLOW"))
        await writer.drain()
        assert msa(await read_ack(reader)) == ("AA", "SLOW")


async def test_close_drops_connections_and_port_is_reported() -> None:
    sink = RecordingSink()
    async with serving(sink) as server:
        assert server.port > 0
        reader, writer = await __import__("mllp_listener").open_connection("127.0.0.1", server.port)
        writer.write_message(make_message("X"))
        await writer.drain()
        await read_ack(reader)
        await server.close()
        await expect_closed(reader)
        assert server.connection_count == 0
        writer.close()
