"""The GMED sandbox sender: streams HL7 files over one persistent MLLP connection."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from hub.outbound import ack_code
from mllp_listener.client import open_connection

_MESSAGE_START = re.compile(rb"(?:^|[\r\n])(?=MSH)")
BOM = b"\xef\xbb\xbf"


def split_messages(data: bytes) -> list[bytes]:
    """A file may hold one message or a batch; each MSH at a line start begins a message."""
    body = data[len(BOM) :] if data.startswith(BOM) else data
    starts = [m.end() for m in _MESSAGE_START.finditer(body)]
    if len(starts) <= 1:
        return [data] if data.strip() else []
    pieces = [
        body[a:b].rstrip(b"\r\n") for a, b in zip(starts, [*starts[1:], len(body)], strict=False)
    ]
    return [p for p in pieces if p.strip()]


@dataclass(frozen=True, slots=True)
class SendResult:
    source: str
    ack_code: str
    ack_text: str
    ack: bytes | None


async def send_files(
    paths: Iterable[Path],
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
) -> AsyncIterator[SendResult]:
    """Send each message and wait for its ACK before the next, as MLLP senders do."""
    import asyncio

    reader, writer = await open_connection(host, port, ssl=ssl_context)
    try:
        for path in paths:
            for n, message in enumerate(split_messages(Path(path).read_bytes()), start=1):
                writer.write_message(message)
                await writer.drain()
                label = f"{path}#{n}"
                if _is_ack(message):
                    yield SendResult(label, "", "ACK sent; none expected back", None)
                    continue
                ack = await asyncio.wait_for(reader.read_message(), timeout)
                code, text = ack_code(ack)
                yield SendResult(label, code, text, ack)
    finally:
        writer.close()
        await writer.wait_closed()


def _is_ack(message: bytes) -> bool:
    body = message[len(BOM) :] if message.startswith(BOM) else message
    if len(body) < 4 or not body.startswith(b"MSH"):
        return False
    fields = body[:200].split(body[3:4])
    return len(fields) > 8 and fields[8].startswith(b"ACK")
