"""Peak resident size of `harmony serve` (API, MLLP, workers) while ingesting 200,000 messages.

Memory must not grow with the count: the figure is sampled at each quarter of the stream,
and the baseline is the same process's size before the first message.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path

from bench.loadgen import make_messages, run_load
from bench.procs import free_port, harmony, process

TOTAL = int(os.environ.get("HARMONY_BENCH_MEMORY_MESSAGES", "200000"))
QUARTERS = 4


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def run() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        port, api_port = free_port(), free_port()
        env = {
            "HARMONY_MLLP_PORT": str(port),
            "HARMONY_API_PORT": str(api_port),
            "HARMONY_DATABASE_URL": f"sqlite:///{Path(tmp) / 'mem.db'}",
            "HARMONY_BROKER_URL": "memory://",
            "HARMONY_LOG_LEVEL": "WARNING",
        }
        with process(harmony("serve", env), port, env) as proc:
            time.sleep(1.0)
            baseline = _status_kb(proc.pid, "VmRSS")
            peaks: list[tuple[int, int, int]] = []
            sent = 0
            began = time.perf_counter()
            per_quarter = TOTAL // QUARTERS
            samples: list[int] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.5):
                    samples.append(_status_kb(proc.pid, "VmRSS"))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            for q in range(QUARTERS):
                batch = make_messages(per_quarter, f"m{q}")
                result = asyncio.run(run_load("127.0.0.1", port, batch))
                sent += result.sent
                peaks.append((sent, max(samples or [0]), _status_kb(proc.pid, "VmHWM")))
            stop.set()
            elapsed = time.perf_counter() - began
    lines = [
        f"Memory of `harmony serve` ingesting {sent} messages "
        f"({sent / elapsed:.0f} msg/s, workers on)",
        f"  before the first message: {baseline / 1024:7.1f} MB resident",
    ]
    for count, rss_peak, hwm in peaks:
        lines.append(
            f"  after {count:>7}: peak resident {rss_peak / 1024:7.1f} MB "
            f"(VmHWM {hwm / 1024:7.1f} MB, {hwm / max(baseline, 1):4.2f}x the idle size)"
        )
    growth = (peaks[-1][2] - peaks[0][2]) / 1024
    lines.append(
        f"  growth from first to last quarter: {growth:+.1f} MB (target < 300 MB peak, flat)"
    )
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
