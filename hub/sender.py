"""The GMED sandbox sender: streams HL7 files over one persistent MLLP connection."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from hub.outbound import ack_code
from mllp_listener.client import open_connection
from mllp_listener.header import HeaderError, parse_header

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


ERROR_ONLY_WAIT = 2.0


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
                expect = _expected_reply(message)
                if expect == "none":
                    yield SendResult(label, "", "no ACK expected (an ACK, or MSH-15 NE)", None)
                    continue
                try:
                    wait = timeout if expect == "always" else ERROR_ONLY_WAIT
                    ack = await asyncio.wait_for(reader.read_message(), wait)
                except TimeoutError:
                    if expect == "always":
                        raise
                    yield SendResult(
                        label, "", "no ACK within the wait: accepted (MSH-15 ER)", None
                    )
                    continue
                code, text = ack_code(ack)
                yield SendResult(label, code, text, ack)
    finally:
        writer.close()
        await writer.wait_closed()


def _expected_reply(message: bytes) -> str:
    """'always', 'error-only' or 'none', from MSH-9 and MSH-15 as the receiver will read them."""
    try:
        header = parse_header(message)
    except HeaderError:
        return "always"  # the receiver answers a broken header with an AR, or closes
    if header.is_ack or header.accept_ack_type == "NE":
        return "none"
    if header.accept_ack_type == "ER":
        return "error-only"
    return "always"
