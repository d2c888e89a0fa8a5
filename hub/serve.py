"""Run the hub's roles in one asyncio process: API, MLLP listener, workers, demo sender."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
from pathlib import Path
from typing import Any

from hub.channels import GMED_ACCEPTED_TYPES
from hub.db import SqliteCheckpointer, engine_for
from hub.ingest import BatchingSink
from hub.runtime import HubRuntime
from hub.settings import Settings

log = logging.getLogger(__name__)

DEMO_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hl7v2"


def mllp_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS when a certificate is configured; mutual TLS when a client CA is too."""
    if not settings.mllp_tls_cert:
        return None
    from mllp_listener.tls import server_ssl_context

    key = settings.mllp_tls_key or settings.mllp_tls_cert  # a PEM may hold both
    return server_ssl_context(settings.mllp_tls_cert, key, settings.mllp_tls_client_ca)


async def serve_all(
    settings: Settings,
    *,
    api: bool,
    mllp: bool,
    workers: int,
    demo: bool = False,
) -> None:
    """Start the chosen roles and run until SIGINT/SIGTERM."""
    gmed_sandbox = None
    if demo and not settings.gmed_outbound_host:
        from hub.demo import start_gmed_receiver

        gmed_sandbox, gmed_port = await start_gmed_receiver(settings.mllp_host)
        settings = settings.model_copy(
            update={"gmed_outbound_host": settings.mllp_host, "gmed_outbound_port": gmed_port}
        )
    engine = engine_for(settings)
    if settings.is_development:
        from hub.migrate import upgrade

        await asyncio.to_thread(upgrade, settings.database_url)
    runtime = HubRuntime(settings, engine)
    # Everything built so far lives as long as the process: keep the collector from walking
    # it again and again (measured: a third of a page's processing time went to full GCs).
    gc.freeze()
    sources: list[Any] = []
    if demo:
        from hub.demo import start_demo_sources

        sources = await asyncio.to_thread(start_demo_sources, engine, settings)
    checkpointer = SqliteCheckpointer(engine).start() if engine.dialect.name == "sqlite" else None
    if workers:
        await asyncio.to_thread(runtime.start, workers)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    tasks: list[asyncio.Task[None]] = []
    server = sink = None
    if mllp:
        from mllp_listener.server import MLLPServer

        sink = BatchingSink(engine, runtime.publish)
        server = MLLPServer(
            sink,
            host=settings.mllp_host,
            port=settings.mllp_port,
            ssl_context=mllp_ssl_context(settings),
            max_message_bytes=settings.mllp_max_message_bytes,
            accepted_types=GMED_ACCEPTED_TYPES,
            idle_timeout=settings.mllp_idle_timeout_seconds,
        )
        await server.start()
        log.info("MLLP listening on %s:%s", settings.mllp_host, server.port)
    web = app = None
    web_task: asyncio.Task[None] | None = None
    if api:
        import uvicorn

        from api.app import create_app

        app = create_app(settings, engine=engine, runtime=runtime)
        config = uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level=settings.log_level.lower(),
            lifespan="off",
        )
        web = uvicorn.Server(config)
        web_task = asyncio.create_task(web.serve())
        tasks.append(web_task)
        log.info("API on http://%s:%s", settings.api_host, settings.api_port)
    if demo and server is not None:
        tasks.append(asyncio.create_task(_demo(settings.mllp_host, server.port)))
    if sources and web is not None:
        from hub.demo import open_google_push

        tasks.append(
            asyncio.create_task(_after_start(web, open_google_push, sources, engine, settings))
        )

    # uvicorn takes over SIGINT/SIGTERM while it runs, so its end is a stop signal too.
    ends: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if web_task is not None:
        ends.append(web_task)
    await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
    ends[0].cancel()
    log.info("shutting down")
    if web is not None:
        web.should_exit = True
    if app is not None:
        from api.roster import close_streams

        await close_streams(app)  # uvicorn waits for open streams: end them now
    if server is not None:
        await server.close()
    if sink is not None:
        await sink.close()
    for task in tasks:
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
    await asyncio.to_thread(runtime.stop)
    if app is not None:
        app.state.audit.close()  # the audit events still buffered reach the database
    if gmed_sandbox is not None:
        await gmed_sandbox.close()
    if sources:
        from hub.demo import stop_demo_sources

        stop_demo_sources(sources)
    if checkpointer is not None:
        checkpointer.stop()


async def _after_start(web: Any, work: Any, *args: Any) -> None:
    """Run ``work`` in a thread once the API accepts connections (push channels need it)."""
    while not web.started:
        await asyncio.sleep(0.05)
    await asyncio.to_thread(work, *args)


async def _demo(host: str, port: int) -> None:
    """The GMED sandbox: stream every bundled fixture in, as a real sender would."""
    from hub.sender import send_files

    files = sorted(DEMO_FIXTURES.glob("*.hl7"))
    await asyncio.sleep(0.5)
    try:
        async for result in send_files(files, host, port):
            log.info("demo sent %s: %s %s", result.source, result.ack_code, result.ack_text)
    except OSError as exc:
        log.error("demo sender could not reach %s:%s: %s", host, port, exc)
