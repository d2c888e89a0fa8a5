"""``harmony integrations ...``: register sources, see their health, sync one now.

Credentials come from a JSON file (``--credentials FILE``) so they stay out of shell history;
they are sealed in the database and never printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hub.db import engine_for
from hub.integrations import IntegrationError, IntegrationRegistry
from hub.settings import get_settings

app = typer.Typer(help="API sources (Epic, athena, Google) and their syncs.", no_args_is_help=True)


def _registry() -> IntegrationRegistry:
    settings = get_settings()
    return IntegrationRegistry(engine_for(settings), settings)


def _json_file(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise _fail(f"{path}: {exc}") from None
    if not isinstance(value, dict):
        raise _fail(f"{path}: expected a JSON object")
    return value


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _show(view: dict[str, Any]) -> None:
    typer.echo(json.dumps(view, indent=2, default=str))


@app.command("add")
def add(
    name: str,
    source_type: Annotated[str, typer.Argument(help="epic, athena or google")],
    base_url: str,
    credentials: Annotated[Path | None, typer.Option(help="JSON file of credentials")] = None,
    options: Annotated[Path | None, typer.Option(help="JSON file of source options")] = None,
    owner: Annotated[str | None, typer.Option(help="Organization or provider served")] = None,
    interval: Annotated[int | None, typer.Option(help="Sync interval, seconds")] = None,
    webhook_secret: Annotated[str | None, typer.Option(envvar="HARMONY_WEBHOOK_SECRET")] = None,
) -> None:
    """Register a source."""
    try:
        view = _registry().add(
            name,
            source_type,
            base_url,
            credentials=_json_file(credentials),
            options=_json_file(options),
            owner=owner,
            sync_interval_seconds=interval,
            webhook_secret=webhook_secret,
        )
    except IntegrationError as exc:
        raise _fail(str(exc)) from None
    _show(view.as_json())


@app.command("list")
def list_() -> None:
    """One line per integration: health, last sync, last error."""
    for view in _registry().list():
        last = view.last_success_at.isoformat() if view.last_success_at else "never"
        typer.echo(
            f"{view.name:<20} {view.source_type:<7} {view.health:<13} last ok {last}"
            + (f"  error: {view.last_error}" if view.last_error else "")
        )


@app.command("show")
def show(name: str) -> None:
    try:
        _show(_registry().get(name).as_json())
    except IntegrationError as exc:
        raise _fail(str(exc)) from None


@app.command("remove")
def remove(name: str) -> None:
    try:
        _registry().remove(name)
    except IntegrationError as exc:
        raise _fail(str(exc)) from None


@app.command("enable")
def enable(name: str, off: Annotated[bool, typer.Option("--off")] = False) -> None:
    """Enable (or with --off, disable) scheduled syncs; enabling closes an open circuit."""
    try:
        _show(_registry().update(name, enabled=not off).as_json())
    except IntegrationError as exc:
        raise _fail(str(exc)) from None


@app.command("sync")
def sync(name: str, full: Annotated[bool, typer.Option(help="Ignore the cursor")] = False) -> None:
    """Sync now: store every page; the hub's workers (or `harmony worker`) normalize them."""
    from hub.bus import Bus
    from hub.sync import AlreadyRunning, SyncRunner

    settings = get_settings()
    bus = Bus(settings.broker_url, prefix=settings.broker_prefix)
    publisher = bus.publisher()
    runner = SyncRunner(engine_for(settings), settings, publisher.publish)
    try:
        report = runner.run(name, full=full)
    except (IntegrationError, AlreadyRunning) as exc:
        raise _fail(str(exc)) from None
    finally:
        publisher.close()
    _show(report.as_json())
    if report.error:
        raise typer.Exit(1)
