"""Booking latency through the API against each sandbox, beside the adapter's own call.

The hub answers ``POST /api/appointments`` after the source confirmed the booking and its
answer was stored and normalized; the baseline is the same adapter's ``book()`` called
directly on the same sandbox (no hub), so the ratio is what Harmony adds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from adapters.contract import BookingRequest
from adapters.sandbox_server import BackgroundServer
from api.app import create_app
from canonical.search import search
from hub.db import create_all, make_engine
from hub.demo import start_demo_sources, stop_demo_sources
from hub.integrations import IntegrationRegistry
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.sources import make_source_client

BOOKINGS = 20


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def _free_slots(runtime: HubRuntime, integration: str) -> list[dict[str, Any]]:
    with Session(runtime.engine) as session:
        found = search(session, "Slot", [("status", "free"), ("_count", "1000")]).resources
    system = f"urn:harmony:{integration}:"
    mine = [s for s in found if s["identifier"][0]["system"].startswith(system)]
    return mine[::3]  # spaced out: a booking blocks its neighbours where buffers apply


def run() -> list[str]:
    lines = [f"Booking latency, {BOOKINGS} bookings per source, API vs the adapter called directly"]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'booking.db'}")
        create_all(engine)
        settings = Settings(database_url=str(engine.url))
        runtime = HubRuntime(settings, engine)
        sources = start_demo_sources(engine, settings)
        api = BackgroundServer(create_app(settings, engine=engine, runtime=runtime)).start()
        registry = IntegrationRegistry(engine, settings)
        http = httpx.Client(
            base_url=api.url, headers={"Authorization": f"Bearer {settings.dev_token}"}, timeout=30
        )
        try:
            for source in sources:
                report = runtime.syncs.runner.run(source.name)
                for message_id in report.message_ids:
                    runtime.worker.process_inbound(message_id)
                slots = _free_slots(runtime, source.name)
                if len(slots) < 2 * BOOKINGS:
                    lines.append(f"  {source.name}: only {len(slots)} free slots, skipped")
                    continue
                through_api = []
                for slot in slots[:BOOKINGS]:
                    began = time.perf_counter()
                    answer = http.post("/api/appointments", json={"slot_id": slot["id"]})
                    through_api.append(time.perf_counter() - began)
                    if answer.status_code != 201:
                        raise RuntimeError(f"{source.name}: {answer.status_code} {answer.text}")
                client = make_source_client(registry.config(source.name))
                direct = []
                for slot in slots[BOOKINGS : 2 * BOOKINGS]:
                    request = BookingRequest(slot["identifier"][0]["value"], slot)
                    began = time.perf_counter()
                    client.book(request)
                    direct.append(time.perf_counter() - began)
                client.close()
                (a50, a99), (d50, d99) = _percentiles(through_api), _percentiles(direct)
                lines.append(
                    f"  {source.name:<12} API p50 {a50:6.1f} ms  p99 {a99:6.1f} ms   "
                    f"adapter alone p50 {d50:6.1f} ms  p99 {d99:6.1f} ms   "
                    f"ratio p50 {a50 / d50:4.1f}x"
                )
        finally:
            http.close()
            api.stop()
            stop_demo_sources(sources)
            runtime.stop()
            engine.dispose()
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
