"""An MLLP load generator: N persistent connections, lock-step or paced, ACK latency per message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

VT, FS, CR = b"\x0b", b"\x1c", b"\r"
TEMPLATE = (
    Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "hl7v2"
    / "fhirconv_siu_s12_01_v28.hl7"
)


def make_messages(count: int, tag: str) -> list[bytes]:
    """Distinct SIU^S12 messages (unique MSH-10 and appointment ids), CR-separated."""
    text = TEMPLATE.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r").rstrip(b"\r")
    segments = text.split(b"\r")
    msh = segments[0].split(b"|")
    sch = segments[1].split(b"|")
    out = []
    for i in range(count):
        msh[9] = f"{tag}-{i}".encode()
        sch[1] = f"{tag}P{i}".encode()
        sch[2] = f"{tag}F{i}".encode()
        out.append(b"\r".join([b"|".join(msh), b"|".join(sch), *segments[2:]]) + b"\r")
    return out


@dataclass
class LoadResult:
    sent: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> str:
        return (
            f"{self.rate:8.0f} msg/s  p50 {self.percentile(50):6.2f} ms  "
            f"p99 {self.percentile(99):6.2f} ms  errors {self.errors}"
        )


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    data = await reader.readuntil(FS + CR)
    start = data.find(VT)
    return data[start + 1 : -2]


async def _connection(
    host: str,
    port: int,
    messages: list[bytes],
    latencies: list[float],
    interval: float | None,
    reconnect_each: bool,
    check: Callable[[bytes], bool],
) -> int:
    errors = 0
    reader = writer = None
    start = time.perf_counter()
    for n, message in enumerate(messages):
        due = start + n * interval if interval else time.perf_counter()
        if interval:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        assert reader is not None
        writer.write(VT + message + FS + CR)
        await writer.drain()
        ack = await _read_frame(reader)
        latencies.append((time.perf_counter() - due) * 1000)
        errors += not check(ack)
        if reconnect_each:
            writer.close()
            await writer.wait_closed()
            reader = writer = None
    if writer is not None:
        writer.close()
        await writer.wait_closed()
    return errors


def is_aa(ack: bytes) -> bool:
    return b"MSA|AA|" in ack or b"MSA|CA|" in ack


async def run_load(
    host: str,
    port: int,
    messages: list[bytes],
    *,
    connections: int = 8,
    rate: float | None = None,
    reconnect_each: bool = False,
) -> LoadResult:
    """Split messages over connections; with ``rate`` (msg/s in total) send on a schedule."""
    shares = [messages[i::connections] for i in range(connections)]
    interval = connections / rate if rate else None
    latencies: list[float] = []
    began = time.perf_counter()
    errors = await asyncio.gather(
        *(
            _connection(host, port, share, latencies, interval, reconnect_each, is_aa)
            for share in shares
        )
    )
    return LoadResult(len(messages), time.perf_counter() - began, latencies, sum(errors))
