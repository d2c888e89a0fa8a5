"""The connection protocol's flow control and TLS hand-over, driven through a fake transport
so each pause and resume can be observed (over real sockets they depend on kernel buffers)."""

from __future__ import annotations

import asyncio
from typing import Any

from mllp_listener import MLLPServer, Received, StoreOutcome, frame
from mllp_listener.connection import PAUSE_AT, RESUME_AT, Connection, _replay
from tests.mllp_listener.mllp_support import ACCEPTED, make_message, msa


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.reading = True
        self.closing = False
        self.protocol: Any = None

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4242) if name == "peername" else default

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_protocol(self) -> Any:
        return self.protocol


class GatedSink:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.stored: list[str] = []

    async def store(self, received: Received, ack: bytes | None) -> StoreOutcome:
        await self.gate.wait()
        assert received.header is not None
        self.stored.append(received.header.control_id)
        return StoreOutcome()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _connect(sink: Any) -> tuple[Connection, FakeTransport]:
    server = MLLPServer(sink, host="127.0.0.1", port=0, accepted_types=ACCEPTED)
    conn = Connection(server)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


def _acked(transport: FakeTransport) -> list[str]:
    return [msa(w[1:-2])[1] for w in transport.written]


async def test_reading_pauses_while_frames_pile_up_and_resumes_when_drained() -> None:
    sink = GatedSink()
    conn, transport = _connect(sink)
    n = PAUSE_AT + 5
    conn.data_received(b"".join(frame(make_message(f"F{i}")) for i in range(n)))
    await _settle()
    assert not transport.reading  # one commit is pending and the rest wait decoded
    sink.gate.set()
    await _settle()
    assert transport.reading  # resumed once no more than RESUME_AT frames were waiting
    for _ in range(n):
        await asyncio.sleep(0)
    assert sink.stored == [f"F{i}" for i in range(n)]
    assert _acked(transport) == sink.stored
    assert RESUME_AT < PAUSE_AT
    conn.abort()
    await _settle()


async def test_acks_wait_while_the_peer_does_not_read_them() -> None:
    sink = GatedSink()
    sink.gate.set()
    conn, transport = _connect(sink)
    conn.pause_writing()  # the transport's buffer is over its high-water mark
    conn.data_received(frame(make_message("W1")) + frame(make_message("W2")))
    await _settle()
    assert _acked(transport) == ["W1"]  # written, then the worker waits to drain
    assert sink.stored == ["W1"]
    conn.resume_writing()
    await _settle()
    assert _acked(transport) == ["W1", "W2"]
    conn.abort()
    await _settle()


async def test_connection_lost_while_waiting_to_drain_stops_the_worker() -> None:
    sink = GatedSink()
    sink.gate.set()
    conn, transport = _connect(sink)
    conn.pause_writing()
    conn.data_received(frame(make_message("L1")) + frame(make_message("L2")))
    await _settle()
    transport.closing = True
    conn.connection_lost(ConnectionResetError())
    await _settle()
    assert conn.task is not None and conn.task.done()
    assert sink.stored == ["L1"]  # nothing more is stored for a peer that is gone


class ChunkyTLSProtocol:
    """Stands in for a TLS protocol (a BufferedProtocol) that takes 3 bytes at a time."""

    def __init__(self) -> None:
        self.buffer = bytearray(3)
        self.received = b""

    def get_buffer(self, hint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, n: int) -> None:
        self.received += bytes(self.buffer[:n])


class PlainProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.received = b""

    def data_received(self, data: bytes) -> None:
        self.received += data


def test_bytes_read_before_start_tls_go_to_the_tls_protocol() -> None:
    transport = FakeTransport()
    previous = PlainProtocol()
    transport.protocol = ChunkyTLSProtocol()
    _replay(transport, b"client hello", previous)
    assert transport.protocol.received == b"client hello"
    transport.protocol = PlainProtocol()
    _replay(transport, b"hello", previous)
    assert transport.protocol.received == b"hello"
    transport.protocol = previous  # start_tls did not take over: nothing to hand over to
    _replay(transport, b"lost", previous)
    assert previous.received == b""
