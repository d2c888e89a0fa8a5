"""Epic sync end to end, beside the raw fhir.resources R4B parse rate of the same slots.

10,000 free slots come from the Epic sandbox (its own process) over HTTP, through SMART
backend auth and Bundle paging; each page is stored in the message store, normalized and
upserted into the canonical store. The baseline is ``Slot.model_validate_json`` over the
same slots' JSON: the least any FHIR consumer must do. Target: end to end at least 40% of it.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from fhir.resources.R4B.slot import Slot
from sqlalchemy import Engine, func, select

from adapters.contract import read_envelope
from adapters.epic.auth import generate_key, public_jwks
from adapters.epic.sandbox import FHIR_BASE
from bench.procs import free_port, postgres_schema, process
from bench.sandboxes import EPIC_CLIENT_ID
from canonical.tables import resources
from hub.db import create_all, make_engine
from hub.integrations import IntegrationRegistry
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.sources import make_source_client
from hub.tables import messages

SLOTS = 10_000
PAGE_SIZE = 500
TARGET_RATIO = 0.4


def _stored_slots(engine: Engine) -> list[bytes]:
    """Every slot's JSON as the sandbox served it, read back from the stored pages."""
    with engine.connect() as conn:
        pages = conn.execute(select(messages.c.raw).where(messages.c.channel == "epic")).scalars()
        bodies = [read_envelope(raw).body for raw in pages]
    return [
        orjson.dumps(entry["resource"])
        for body in bodies
        if isinstance(body, dict)
        for entry in body.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "Slot"
    ]


def _parse_rate(slots: list[bytes]) -> float:
    began = time.perf_counter()
    for raw in slots:
        Slot.model_validate_json(raw)
    return len(slots) / (time.perf_counter() - began)


def _sync(engine: Engine, base: str, pem: str, kid: str, workers: int) -> tuple[float, int, int]:
    """Slots per second end to end (fetch, store, normalize, upsert), pages, free slots stored.

    The pages are processed by ``workers`` threads as `harmony worker --concurrency N` does,
    straight after the sync, so the figure leaves out bus latency.
    """
    url = engine.url.render_as_string(hide_password=False)
    settings = Settings(database_url=url)
    runtime = HubRuntime(settings, engine)
    registry = IntegrationRegistry(engine, settings)
    registry.add(
        "epic-bench",
        "epic",
        base,
        credentials={"client_id": EPIC_CLIENT_ID, "private_key_pem": pem, "kid": kid},
        options={"page_size": PAGE_SIZE, "days_ahead": 15},
    )
    # Steady state, as in a running hub: the HTTP stack imported, start-up objects frozen.
    make_source_client(registry.config("epic-bench")).close()
    gc.freeze()
    began = time.perf_counter()
    report = runtime.syncs.runner.run("epic-bench")
    with ThreadPoolExecutor(workers) as pool:
        statuses = list(pool.map(runtime.worker.process_inbound, report.message_ids))
    elapsed = time.perf_counter() - began
    runtime.stop()
    if report.error or set(statuses) - {"processed", "filtered"}:
        raise RuntimeError(f"sync failed: {report.error or statuses}")
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(resources)
            .where(resources.c.resource_type == "Slot", resources.c.status == "free")
        ).scalar_one()
    return SLOTS / elapsed, report.pages, int(stored)


def run() -> list[str]:
    pem, kid = generate_key()
    lines = [f"Epic sync: {SLOTS} free slots, pages of {PAGE_SIZE}, sandbox in its own process"]
    with tempfile.TemporaryDirectory() as tmp:
        jwks = Path(tmp) / "jwks.json"
        jwks.write_text(json.dumps(public_jwks(pem, kid)))
        port = free_port()
        args = ["-m", "bench.sandboxes", "epic", str(port), str(SLOTS), str(jwks)]
        with process([sys.executable, *args], port):
            base = f"http://127.0.0.1:{port}{FHIR_BASE}"
            engine = make_engine(f"sqlite:///{Path(tmp) / 'sync.db'}")
            create_all(engine)
            runs = [("SQLite, 1 worker", *_sync(engine, base, pem, kid, 1))]
            slots = _stored_slots(engine)
            engine.dispose()
            parse = _parse_rate(slots)
            lines.append(
                f"  fhir.resources R4B Slot parse      {parse:9,.0f} slots/s (baseline, "
                f"{len(slots)} slots)"
            )
            with postgres_schema() as pg_url:
                engine = make_engine(pg_url)
                create_all(engine)
                runs.append(("PostgreSQL, 2 workers", *_sync(engine, base, pem, kid, 2)))
                engine.dispose()
    for name, rate, pages, stored in runs:
        lines.append(
            f"  Harmony end to end, {name:<22} {rate:7,.0f} slots/s  ratio {rate / parse:4.2f}"
            f" (target {TARGET_RATIO})  {pages} pages, {stored} free slots stored"
        )
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
