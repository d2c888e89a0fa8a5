"""MLLP ingest with ACK-after-commit over 8 persistent connections, against two baselines.

Harmony runs as `harmony mllp` (store + ACK + publish, no workers) on SQLite and on PostgreSQL;
the ceiling is a bare asyncio server that ACKs without storing; hl7apy's MLLP server is the
peer. Each server is its own process; the load comes from this one.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from bench.loadgen import LoadResult, make_messages, run_load
from bench.procs import free_port, harmony, postgres_schema, process

COUNT = 20_000
PACED_COUNT = 10_000
PACED_RATE = 1_000.0


def _harmony_env(port: int, database_url: str, synchronous: str) -> dict[str, str]:
    return {
        "HARMONY_MLLP_PORT": str(port),
        "HARMONY_DATABASE_URL": database_url,
        "HARMONY_SQLITE_SYNCHRONOUS": synchronous,
        "HARMONY_BROKER_URL": "memory://",
        "HARMONY_LOG_LEVEL": "WARNING",
    }


def _load(port: int, tag: str, count: int, **kw: object) -> LoadResult:
    return asyncio.run(run_load("127.0.0.1", port, make_messages(count, tag), **kw))  # type: ignore[arg-type]


def _harmony_run(
    database_url: str, tag: str, synchronous: str = "FULL"
) -> tuple[LoadResult, LoadResult]:
    port = free_port()
    env = _harmony_env(port, database_url, synchronous)
    with process(harmony("mllp", env), port, env):
        _load(port, f"{tag}w", 1000)  # warm-up: imports, first connections, WAL creation
        full = _load(port, f"{tag}f", COUNT)
        paced = _load(port, f"{tag}p", PACED_COUNT, rate=PACED_RATE)
    return full, paced


def run() -> list[str]:
    lines = [f"MLLP ingest, 8 persistent connections, {COUNT} SIU^S12 (lock-step per connection)"]
    port = free_port()
    with process([sys.executable, "-m", "bench.servers", "ceiling", str(port)], port):
        _load(port, "cw", 1000)
        ceiling = _load(port, "c", COUNT)
    lines.append(f"  ceiling (bare asyncio, no store)   {ceiling.summary()}")

    port = free_port()
    with process([sys.executable, "-m", "bench.servers", "hl7apy", str(port)], port):
        peer = _load(port, "h", 2000, reconnect_each=True)
    lines.append(f"  hl7apy MLLPServer (no store)*      {peer.summary()}")

    runs = []
    for synchronous in ("FULL", "NORMAL"):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            runs.append((f"SQLite {synchronous}", *_harmony_run(sqlite_url, "s", synchronous)))
    with postgres_schema() as pg_url:
        runs.append(("PostgreSQL", *_harmony_run(pg_url, "g")))

    for name, full, paced in runs:
        lines.append(f"  Harmony, commit then ACK, {name:<14}{full.summary()}")
        lines.append(
            f"      ratio to ceiling {full.rate / ceiling.rate:5.2f}, "
            f"to hl7apy {full.rate / peer.rate:6.1f}x"
        )
        lines.append(f"      paced at {PACED_RATE:.0f} msg/s:    {paced.summary()}")
    lines.append(
        "  * hl7apy's server closes after each message, so its client reconnects per message"
    )
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
