"""The `harmony` command: run the hub (all in one, or one role per process) and operate it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from hub import message_store
from hub.db import engine_for
from hub.message_store import MessageFilter, utcnow
from hub.settings import Settings, get_settings

app = typer.Typer(
    help="Harmony: an interoperability hub for clinical scheduling.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
messages_app = typer.Typer(
    help="The message store: list, inspect, replay, prune.", no_args_is_help=True
)
gmed_app = typer.Typer(help="GMED (HL7 v2 over MLLP) tools.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(messages_app, name="messages")
app.add_typer(gmed_app, name="gmed")

from hub.cli_integrations import app as integrations_app  # noqa: E402
from hub.cli_mappings import app as mappings_app  # noqa: E402
from hub.cli_roster import app as roster_app  # noqa: E402

app.add_typer(mappings_app, name="mappings", help="Versioned mapping sets.")
app.add_typer(integrations_app, name="integrations")
app.add_typer(roster_app, name="roster", help="Roster generation (CP-SAT) and its benchmark.")


def _run(coro: Coroutine[Any, Any, None]) -> None:
    """uvloop roughly halves the event loop's cost per MLLP message (measured in bench_mllp)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def _settings() -> Settings:
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings


# --- running -------------------------------------------------------------------------------


@app.command()
def serve(
    demo: Annotated[
        bool,
        typer.Option(
            help="Start the Epic, athena and Google sandboxes and stream the GMED fixtures in."
        ),
    ] = False,
    workers: Annotated[int, typer.Option(help="Worker threads.")] = 1,
) -> None:
    """API, MLLP listener and workers in one process: the embedded default."""
    from hub.serve import serve_all

    _run(serve_all(_settings(), api=True, mllp=True, workers=workers, demo=demo))


@app.command()
def api() -> None:
    """Only the HTTP API (FHIR R4 and engine endpoints)."""
    from hub.serve import serve_all

    _run(serve_all(_settings(), api=True, mllp=False, workers=0))


@app.command()
def mllp() -> None:
    """Only the MLLP listener: stores, ACKs and publishes ids for workers elsewhere."""
    from hub.serve import serve_all

    _run(serve_all(_settings(), api=False, mllp=True, workers=0))


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker threads in this process.")] = 1,
) -> None:
    """Only workers: take message ids from the bus and turn them into canonical records."""
    from hub.serve import serve_all

    _run(serve_all(_settings(), api=False, mllp=False, workers=concurrency))


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply Alembic migrations to HARMONY_DATABASE_URL."""
    from hub.migrate import upgrade

    upgrade(_settings().database_url, revision)
    typer.echo(f"database at {revision}")


@db_app.command("revision")
def db_revision(message: str) -> None:
    """Autogenerate a migration (for developers changing tables)."""
    from hub.migrate import revision

    revision(_settings().database_url, message)


# --- messages ------------------------------------------------------------------------------


def _filter(
    status: str | None, channel: str | None, message_type: str | None, error: str | None
) -> MessageFilter:
    return MessageFilter(
        status=status, channel=channel, message_type=message_type, error_contains=error
    )


StatusOpt = Annotated[str | None, typer.Option(help="received, processed, parked, ...")]
ChannelOpt = Annotated[str | None, typer.Option(help="Channel, e.g. gmed.")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="Message type, e.g. SIU^S12.")]
ErrorOpt = Annotated[str | None, typer.Option("--error", help="Text in the last error.")]


@messages_app.command("list")
def messages_list(
    status: StatusOpt = None,
    channel: ChannelOpt = None,
    message_type: TypeOpt = None,
    error: ErrorOpt = None,
    limit: int = 50,
) -> None:
    """Newest first, with status, attempts and last error."""
    engine = engine_for(_settings())
    total, rows = message_store.list_messages(
        engine, _filter(status, channel, message_type, error), limit=limit
    )
    typer.echo(f"{total} message(s)")
    for r in rows:
        err = f"  {r['last_error']}" if r["last_error"] else ""
        typer.echo(
            f"{r['id']:>8} {r['received_at']:%Y-%m-%d %H:%M:%S} {r['direction']:<8} "
            f"{r['channel']:<10} {r['message_type'] or '-':<10} {r['status']:<10} "
            f"attempts={r['attempts']}{err}"
        )


@messages_app.command("show")
def messages_show(
    message_id: int, raw: bool = typer.Option(False, help="Print raw bytes only.")
) -> None:
    """One message: its metadata, raw body and ACK."""
    engine = engine_for(_settings())
    with engine.connect() as conn:
        row = message_store.get(conn, message_id)
    if row is None:
        typer.echo(f"no message {message_id}", err=True)
        raise typer.Exit(1)
    if raw:
        typer.echo(row.raw.decode("utf-8", errors="replace"))
        return
    meta = {k: v for k, v in row._mapping.items() if k not in ("raw", "ack")}
    typer.echo(json.dumps(meta, default=str, indent=2))
    typer.echo("--- raw ---")
    typer.echo(row.raw.decode("utf-8", errors="replace").replace("\r", "\n"))
    if row.ack:
        typer.echo("--- ack ---")
        typer.echo(row.ack.decode("utf-8", errors="replace").replace("\r", "\n"))


@messages_app.command("replay")
def messages_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Message ids; or use a filter.")] = None,
    status: StatusOpt = None,
    channel: ChannelOpt = None,
    message_type: TypeOpt = None,
    error: ErrorOpt = None,
) -> None:
    """Replay one message, several, or every one matching a filter (e.g. --status parked)."""
    from hub.runtime import HubRuntime

    settings = _settings()
    runtime = HubRuntime(settings)
    wanted = list(ids or [])
    if not wanted:
        if not any((status, channel, message_type, error)):
            typer.echo("give message ids or a filter (e.g. --status parked)", err=True)
            raise typer.Exit(2)
        wanted = message_store.matching_ids(
            runtime.engine, _filter(status, channel, message_type, error)
        )
    replayed = runtime.replay(wanted)
    runtime.publisher.close()
    typer.echo(f"replayed {len(replayed)} message(s)")


@messages_app.command("prune")
def messages_prune(
    days: Annotated[
        int | None, typer.Option(help="Retention; default HARMONY_RETENTION_DAYS.")
    ] = None,
) -> None:
    """Delete finished messages older than the retention period (parked ones are kept)."""
    settings = _settings()
    keep = days if days is not None else settings.retention_days
    removed = message_store.prune(engine_for(settings), utcnow() - timedelta(days=keep))
    typer.echo(f"pruned {removed} message(s) finished more than {keep} day(s) ago")


@messages_app.command("stats")
def messages_stats() -> None:
    """Counts by status."""
    counts = message_store.counts_by_status(engine_for(_settings()))
    for status, count in sorted(counts.items()):
        typer.echo(f"{status:<10} {count}")


# --- gmed ----------------------------------------------------------------------------------


@gmed_app.command("send")
def gmed_send(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    host: str = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Default HARMONY_MLLP_PORT.")] = None,
) -> None:
    """Stream HL7 files to an MLLP listener and print each ACK."""
    from hub.sender import send_files

    target = port or _settings().mllp_port

    async def run() -> int:
        failures = 0
        async for result in send_files(files, host, target):
            typer.echo(f"{result.ack_code or '--':<3} {result.source}  {result.ack_text}")
            failures += result.ack_code not in ("AA", "CA", "")
        return failures

    failures = asyncio.run(run())
    raise typer.Exit(1 if failures else 0)


def main() -> None:
    app()
