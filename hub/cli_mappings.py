"""``harmony mappings ...``: review, edit, activate and roll back mapping sets from a shell.

The edit loop is ``export`` to a file, change it, ``create --activate`` from it; ``diff``
before activating and ``rollback`` if it went wrong.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hub.db import engine_for
from hub.settings import get_settings
from mappings.errors import InvalidSourceName, NothingToRollBack, UnknownSource, UnknownVersion
from mappings.model import MappingContent
from mappings.store import MappingStore

app = typer.Typer(help="Versioned mapping sets per source.", no_args_is_help=True)

_USER_ERRORS = (UnknownSource, UnknownVersion, InvalidSourceName, NothingToRollBack)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


@contextmanager
def _store() -> Iterator[MappingStore]:
    """One transaction per command, committed only if the command succeeded."""
    engine = engine_for(get_settings())
    try:
        with Session(engine) as session:
            try:
                yield MappingStore(session)
                session.commit()
            except _USER_ERRORS as exc:
                raise _fail(str(exc)) from exc
            except DBAPIError as exc:
                raise _fail(f"database error ({exc.orig}); has `harmony db upgrade` run?") from exc
    finally:
        engine.dispose()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _short(value: Any) -> str:
    return "-" if value is None else json.dumps(value, ensure_ascii=False)


@app.command("list")
def list_sources() -> None:
    """Sources and their active versions."""
    with _store() as store:
        for source in store.sources():
            infos = store.versions(source)
            active = next(i for i in infos if i.active)
            typer.echo(f"{source:<16} active {active.label:<16} {len(infos)} version(s)")


@app.command()
def versions(source: str) -> None:
    """Stored versions of a source, oldest first; * marks the active one."""
    with _store() as store:
        for info in store.versions(source):
            mark = "*" if info.active else " "
            when = info.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
            typer.echo(
                f"{mark} v{info.version:<4} {when}  {info.created_by}  {info.note or ''}".rstrip()
            )


@app.command()
def show(
    source: str,
    version: Annotated[int | None, typer.Option(help="Default: the active version.")] = None,
) -> None:
    """A version with its bookkeeping, as JSON."""
    with _store() as store:
        mapping_set = store.active(source) if version is None else store.get(source, version)
        info = store.version_info(source, mapping_set.version)
        _print_json(
            {
                "label": info.label,
                "active": info.active,
                "note": info.note,
                "created_at": info.created_at.isoformat(),
                "created_by": info.created_by,
                "content": mapping_set.content.model_dump(mode="json"),
            }
        )


@app.command()
def export(
    source: str,
    version: Annotated[int | None, typer.Option(help="Default: the active version.")] = None,
) -> None:
    """Only the content, as JSON to edit and feed back to create."""
    with _store() as store:
        mapping_set = store.active(source) if version is None else store.get(source, version)
        _print_json(mapping_set.content.model_dump(mode="json"))


@app.command()
def create(
    source: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    activate: Annotated[bool, typer.Option(help="Activate the new version at once.")] = False,
    note: Annotated[str | None, typer.Option(help="Why this version exists.")] = None,
) -> None:
    """Store FILE (MappingContent JSON) as the source's next version."""
    try:
        content = MappingContent.model_validate_json(file.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(f"{file} is not a valid mapping set: {problems}") from exc
    with _store() as store:
        mapping_set = store.create(
            source, content, note=note, created_by=_user(), activate=activate
        )
        state = "active" if store.active_version(source) == mapping_set.version else "not active"
        typer.echo(f"created {mapping_set.label} ({state})")


@app.command("activate")
def activate_version(source: str, version: int) -> None:
    """Make VERSION the one the next messages are read through."""
    with _store() as store:
        mapping_set = store.activate(source, version, by=_user())
        typer.echo(f"active: {mapping_set.label}")


@app.command()
def rollback(source: str) -> None:
    """Re-activate the version that was active before the current one."""
    with _store() as store:
        before = store.active(source).label
        mapping_set = store.rollback(source, by=_user())
        typer.echo(f"rolled back {before} -> active: {mapping_set.label}")


@app.command()
def diff(source: str, a: int, b: int) -> None:
    """What changes going from version A to version B."""
    with _store() as store:
        changes = store.diff(source, a, b)
    if not changes:
        typer.echo(f"{source}@v{a} and {source}@v{b} have the same content")
        return
    signs = {"added": "+", "removed": "-", "changed": "~"}
    for change in changes:
        where = f"{change.table}[{change.key}]" if change.key else change.table
        typer.echo(
            f"{signs[change.kind]} {where}: {_short(change.before)} -> {_short(change.after)}"
        )


@app.command()
def unmapped(source: Annotated[str | None, typer.Argument()] = None) -> None:
    """Codes seen in messages that the active versions still do not translate."""
    with _store() as store:
        report = store.unmapped(source)
    if not report:
        typer.echo("no unmapped codes")
        return
    for e in report:
        last = e.last_seen.strftime("%Y-%m-%d %H:%M:%SZ")
        typer.echo(
            f"{e.source:<12} {e.table:<18} {e.code!r:<24} seen {e.count}x, last {last}"
            f" (message {e.last_message_id}), not in {e.checked_against or 'any version'}"
        )
