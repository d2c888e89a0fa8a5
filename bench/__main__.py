"""`make bench`: every benchmark in turn; each prints its figure beside its baseline."""

from __future__ import annotations

import sys
import time

from bench import (
    bench_attendance,
    bench_booking,
    bench_memory,
    bench_mllp,
    bench_normalize,
    bench_ranking,
    bench_roster,
    bench_rostering,
    bench_sync,
)

SUITES = {
    "normalize": bench_normalize,
    "mllp": bench_mllp,
    "memory": bench_memory,
    "sync": bench_sync,
    "booking": bench_booking,
    "roster": bench_roster,
    "rostering": bench_rostering,
    "ranking": bench_ranking,
    "attendance": bench_attendance,
}


def main() -> int:
    wanted = sys.argv[1:] or list(SUITES)
    for name in wanted:
        began = time.perf_counter()
        for line in SUITES[name].run():
            print(line, flush=True)
        print(f"  ({name}: {time.perf_counter() - began:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
