"""Shared pieces for the MLLP tests: real in-memory sinks, a message builder, a server runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mllp_listener import MLLPServer, Received, StoreOutcome, open_connection
from mllp_listener.streams import MLLPReader, MLLPWriter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hl7v2"

ACCEPTED = frozenset(
    {f"SIU^S{n}" for n in range(12, 27)} | {"ADT^A04", "ADT^A08"},
)


class RecordingSink:
    """An in-memory message store: keeps every Received and the ACK it was told about,
    answers byte-identical resends with the stored ACK, and tracks overlapping calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[Received] = []
        self.acks: list[bytes | None] = []
        self.by_key: dict[tuple[str, str], tuple[bytes, bytes | None]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_by_peer: dict[str, int] = {}
        self.max_in_flight_per_peer = 0
        self.gate: asyncio.Event | None = None

    async def store(self, received: Received, ack: bytes | None) -> StoreOutcome:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        peer_count = self.in_flight_by_peer.get(received.peer, 0) + 1
        self.in_flight_by_peer[received.peer] = peer_count
        self.max_in_flight_per_peer = max(self.max_in_flight_per_peer, peer_count)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            header = received.header
            if header is not None and received.rejection is None:
                key = (header.sender, header.control_id)
                seen = self.by_key.get(key)
                if seen is not None and seen[0] == received.raw:
                    return StoreOutcome(duplicate_ack=seen[1])
                self.by_key[key] = (received.raw, ack)
            self.received.append(received)
            self.acks.append(ack)
            return StoreOutcome()
        finally:
            self.in_flight -= 1
            self.in_flight_by_peer[received.peer] -= 1


class FailingSink:
    """A store whose database is down: every commit fails."""

    def __init__(self) -> None:
        self.calls: list[tuple[Received, bytes | None]] = []

    async def store(self, received: Received, ack: bytes | None) -> StoreOutcome:
        self.calls.append((received, ack))
        raise RuntimeError("database is down")


def make_message(
    control_id: str,
    *,
    msg_type: str = "SIU^S12",
    sep: bytes = b"\r",
    version: str | None = "2.5",
    accept_ack: str = "",
    charset: str = "",
    sender: str = "GMED|CLINIC",
    body: str = "SCH|1|1||||||||^^^20240101090000",
    encoding: str = "utf-8",
) -> bytes:
    """A small SIU-like message with only the MSH fields the listener reads set."""
    msh = (
        f"MSH|^~\\&|{sender}|HARMONY|HUB|20240101090000||{msg_type}|{control_id}|P|{version or ''}"
    )
    if accept_ack or charset:
        msh += f"|||{accept_ack}|||{charset}"
    text = msh + "\r" + body.replace("\n", "\r")
    return text.replace("\r", "\x00").encode(encoding).replace(b"\x00", sep) + sep


def ack_segments(ack: bytes, encoding: str = "utf-8") -> dict[str, list[str]]:
    """Split an ACK into {segment id: fields} (first occurrence); fields[n] is SEG-n."""
    out: dict[str, list[str]] = {}
    for seg in ack.decode(encoding).split("\r"):
        if not seg:
            continue
        fields = seg.split("|")
        if fields[0] == "MSH":
            fields = ["MSH", "|", *fields[1:]]
        out.setdefault(fields[0], fields)
    return out


def msa(ack: bytes, encoding: str = "utf-8") -> tuple[str, str]:
    """(MSA-1, MSA-2) of an ACK."""
    fields = ack_segments(ack, encoding)["MSA"]
    return fields[1], fields[2]


async def read_ack(reader: MLLPReader, timeout: float = 5.0) -> bytes:
    async with asyncio.timeout(timeout):
        return await reader.read_message()


async def expect_closed(reader: MLLPReader, timeout: float = 5.0) -> None:
    """The server closed the connection: the next read ends the stream without a message."""
    async with asyncio.timeout(timeout):
        frame = await reader.read_frame()
    assert frame is None, f"expected the server to close, got {frame!r}"


@contextlib.asynccontextmanager
async def serving(sink: Any, **kw: Any) -> AsyncIterator[MLLPServer]:
    kw.setdefault("accepted_types", ACCEPTED)
    kw.setdefault("host", "127.0.0.1")
    kw.setdefault("port", 0)
    server = MLLPServer(sink, **kw)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def connected(server: MLLPServer, **kw: Any) -> AsyncIterator[tuple[MLLPReader, MLLPWriter]]:
    reader, writer = await open_connection("127.0.0.1", server.port, **kw)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
