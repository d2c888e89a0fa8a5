"""Live roster: snapshot latency beside the bare SQL query, and SSE fan-out to 100 clients.

The roster is realistic: 30 physicians, 8 services/locations with day and night call plus
weekday clinics, a published month and a draft month (filtered out), 500 roster events.
Fan-out runs the API in its own process; the clients and the writer are here, so each
delivery is timed from the writer's commit to the client's read on one clock.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from bench.procs import free_port, postgres_schema, process
from hub.db import create_all, make_engine
from scheduling.live_roster import local_instant
from scheduling.live_roster_query import load_snapshot, shifts_query
from scheduling.tables import physicians, roster_events, rosters, shift_types, shifts

TZ = "America/New_York"
GROUPS = [
    (s, loc) for s in ("cardiology", "neurology", "icu", "surgery") for loc in ("main", "north")
]
SNAPSHOTS = 300
CHANGES = 40
CLIENTS = 100
TOKEN = "harmony-dev-token"


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"


def seed(engine: Engine, month: date = date(2026, 3, 1)) -> int:
    """31 days from ``month`` published and the next 31 in draft; returns the shift count
    (the draft's included)."""
    stamp = datetime.now(UTC)
    rng = random.Random(7)
    with engine.begin() as conn:
        conn.execute(
            insert(physicians),
            [
                {
                    "name": f"Dr {i:02d}",
                    "specialties": [],
                    "locations": [],
                    "services": [],
                    "fte": 1.0,
                    "blackout_dates": [],
                    "active": 1,
                    "version": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
                for i in range(1, 31)
            ],
        )
        types: dict[tuple[str, str, str], int] = {}
        for service, location in GROUPS:
            for kind, begin, minutes in (("day", "07:00", 720), ("night", "19:00", 720)) + (
                (("clinic", "08:00", 540),) if location == "main" else ()
            ):
                row: dict[str, object] = {
                    "code": f"{service}-{location}-{kind}",
                    "name": kind,
                    "kind": "call" if kind != "clinic" else "clinic",
                    "start_time": begin,
                    "duration_minutes": minutes,
                    "service": service,
                    "location": location,
                    "timezone": TZ,
                    "required_specialties": [],
                    "version": 1,
                }
                types[(service, location, kind)] = int(
                    conn.execute(insert(shift_types).values(**row)).inserted_primary_key[0]  # type: ignore[index]
                )
        rows = []
        for status, offset in (("published", 0), ("draft", 31)):
            roster = {
                "name": status,
                "period_start": month + timedelta(days=offset),
                "period_end": month + timedelta(days=offset + 30),
                "status": status,
                "published_at": stamp if status == "published" else None,
                "version": 1,
                "created_at": stamp,
                "updated_at": stamp,
            }
            roster_id = int(conn.execute(insert(rosters).values(**roster)).inserted_primary_key[0])  # type: ignore[index]
            for day in range(offset, offset + 31):
                today = (month + timedelta(days=day)).isoformat()
                tomorrow = (month + timedelta(days=day + 1)).isoformat()
                for (service, location, kind), type_id in types.items():
                    if kind == "clinic" and (month + timedelta(days=day)).weekday() >= 5:
                        continue
                    start_day, end_day, begin, end = {
                        "day": (today, today, "07:00", "19:00"),
                        "night": (today, tomorrow, "19:00", "07:00"),
                        "clinic": (today, today, "08:00", "17:00"),
                    }[kind]
                    rows.append(
                        {
                            "roster_id": roster_id,
                            "shift_type_id": type_id,
                            "physician_id": rng.randint(1, 30),
                            "start": local_instant(start_day, begin, TZ),
                            "end": local_instant(end_day, end, TZ),
                            "service": service,
                            "location": location,
                            "status": "assigned",
                            "version": 1,
                            "created_at": stamp,
                            "updated_at": stamp,
                        }
                    )
        conn.execute(insert(shifts), rows)
        conn.execute(
            insert(roster_events),
            [
                {
                    "kind": "edit",
                    "roster_id": 1,
                    "shift_ids": [i],
                    "request_id": None,
                    "physician_ids": [rng.randint(1, 30)],
                    "actor": "admin",
                    "detail": {},
                    "created_at": stamp,
                }
                for i in range(1, 501)
            ],
        )
    return len(rows)


def _timed(fn: Callable[[], object], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return samples


def snapshot_lines(engine: Engine, label: str) -> list[str]:
    count = seed(engine)
    rng = random.Random(11)
    month = datetime(2026, 3, 1, 5, tzinfo=UTC)
    instants = [month + timedelta(minutes=rng.randint(0, 30 * 24 * 60)) for _ in range(SNAPSHOTS)]
    picks = iter(instants * 2)

    def bare() -> object:
        at = next(picks)
        with engine.connect() as conn:
            return conn.execute(shifts_query(at, at + timedelta(hours=12))).fetchall()

    def snapshot() -> object:
        return load_snapshot(engine, next(picks), 12).as_json()

    bare()
    snapshot()  # warm-up: connection, statement cache
    picks = iter(instants * 2)
    base = _timed(bare, SNAPSHOTS)
    full = _timed(snapshot, SNAPSHOTS)
    ratio = statistics.median(full) / statistics.median(base)
    return [
        f"  {label}: {count} shifts (half published), 12 h window",
        f"    plain SQL query (baseline)         {_ms(base)}",
        f"    load_snapshot (query+events+JSON)  {_ms(full)}   ({ratio:.1f}x the query)",
    ]


# --- SSE fan-out ---------------------------------------------------------------------------


def serve(port: int, database_url: str) -> None:
    """The API alone in this process (``python -m bench.bench_roster serve PORT URL``)."""
    import uvicorn

    from api.app import create_app
    from hub.settings import Settings

    settings = Settings(database_url=database_url, log_level="WARNING")
    app = create_app(settings, engine=make_engine(database_url))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


async def _client(port: int, token: str, ready: asyncio.Event, got: dict[int, float]) -> None:
    """A minimal SSE client: raw socket, records when each change's id arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/roster/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    buffer = b""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            buffer += chunk
            if b"event: snapshot" in buffer:
                ready.set()
            while (at := buffer.find(b"event: change\nid: ")) >= 0:
                end = buffer.find(b"\n", at + 18)
                if end < 0:
                    break
                got.setdefault(int(buffer[at + 18 : end]), time.perf_counter())
                buffer = buffer[end:]
            buffer = buffer[-4096:]
    finally:
        writer.close()


async def _fan_out(port: int, engine: Engine, clients: int, pair: tuple[int, int]) -> list[float]:
    """Connect ``clients`` streams, make CHANGES swaps at random moments, and time each
    delivery from the swap's commit to each client's read."""
    ready = [asyncio.Event() for _ in range(clients)]
    got: list[dict[int, float]] = [{} for _ in range(clients)]
    tasks = [asyncio.create_task(_client(port, TOKEN, ready[i], got[i])) for i in range(clients)]
    rng = random.Random(3)
    latencies: list[float] = []
    lost = 0
    try:
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
        for _ in range(CHANGES):
            await asyncio.sleep(0.3 + rng.random() * 0.25)  # not in step with the poller
            event_id, committed = await asyncio.to_thread(_swap, engine, *pair)
            deadline = time.perf_counter() + 5
            while any(event_id not in g for g in got) and time.perf_counter() < deadline:
                await asyncio.sleep(0.002)
            latencies.extend(g[event_id] - committed for g in got if event_id in g)
            lost += sum(event_id not in g for g in got)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if lost:
        raise RuntimeError(f"{lost} deliveries missing after 5 s")
    return latencies


def _pair(engine: Engine) -> tuple[int, int]:
    """Who is on call for cardiology at main now, and the next shift there."""
    snap = load_snapshot(engine, datetime.now(UTC), 24).as_json()
    group = next(g for g in snap["groups"] if g["key"] == "cardiology|main")
    return group["on_call"][0]["shift_id"], group["upcoming"][0]["shift_id"]


def fan_out_lines() -> list[str]:
    lines = [f"  SSE fan-out, {CHANGES} swaps each (commit -> client read), API in its own process"]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'fanout.db'}"
        engine = make_engine(url)
        create_all(engine)
        seed(engine, date.today() - timedelta(days=15))
        pair = _pair(engine)
        port = free_port()
        with process([sys.executable, "-m", "bench.bench_roster", "serve", str(port), url], port):
            for clients in (1, CLIENTS):
                samples = asyncio.run(_fan_out(port, engine, clients, pair))
                lines.append(
                    f"    {clients:>3} client{'s' if clients > 1 else ' '} "
                    f"({len(samples):>4} deliveries)      {_ms(samples)}"
                )
        engine.dispose()
    lines.append(
        "    (the poller reads roster_event every 0.25 s: about 125 ms of each figure is that wait)"
    )
    return lines


def run() -> list[str]:
    lines = ["Live roster: snapshot latency and SSE fan-out"]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'roster.db'}")
        create_all(engine)
        lines += snapshot_lines(engine, "SQLite")
        engine.dispose()
    try:
        with postgres_schema() as pg_url:
            engine = make_engine(pg_url)
            create_all(engine)
            lines += snapshot_lines(engine, "PostgreSQL")
            engine.dispose()
    except Exception as exc:  # no PostgreSQL here: say so, measure the rest
        lines.append(f"  PostgreSQL: skipped ({type(exc).__name__})")
    lines += fan_out_lines()
    return lines


def _swap(engine: Engine, first: int, second: int) -> tuple[int, float]:
    """Exchange two shifts' physicians and log the swap in one transaction, as the shift
    workflow does; returns the new event's id and the moment the commit returned."""
    from sqlalchemy import select, update

    with engine.begin() as conn:
        a, b = (
            conn.execute(select(shifts.c.physician_id).where(shifts.c.id == i)).scalar_one()
            for i in (first, second)
        )
        conn.execute(update(shifts).where(shifts.c.id == first).values(physician_id=b))
        conn.execute(update(shifts).where(shifts.c.id == second).values(physician_id=a))
        row = {
            "kind": "swap",
            "roster_id": 1,
            "shift_ids": [first, second],
            "request_id": None,
            "physician_ids": [a, b],
            "actor": "bench",
            "detail": {},
            "created_at": datetime.now(UTC),
        }
        event_id = conn.execute(insert(roster_events).values(**row)).inserted_primary_key[0]  # type: ignore[index]
    return int(event_id), time.perf_counter()


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), sys.argv[3])


if __name__ == "__main__":
    main()
