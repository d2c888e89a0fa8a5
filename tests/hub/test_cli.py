"""`harmony messages ...` and `harmony db upgrade` as an operator runs them, on a SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from hub import message_store
from hub.cli import app
from hub.db import make_engine
from hub.message_store import INBOUND, NewMessage, RetryPolicy, utcnow
from hub.settings import get_settings
from hub.tables import messages


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("HARMONY_DATABASE_URL", url)
    get_settings.cache_clear()
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    yield url
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _store(url: str, control_id: str) -> int:
    raw = f"MSH|^~\\&|GMED|CLINIC|||||SIU^S12|{control_id}|P|2.5\r".encode()
    message = NewMessage(
        channel="gmed", direction=INBOUND, raw=raw, message_type="SIU^S12", control_id=control_id
    )
    return message_store.store_batch(make_engine(url), [message])[0].id


def test_list_show_stats(database: str) -> None:
    first = _store(database, "C1")
    out = run("messages", "list").stdout
    assert "1 message(s)" in out and "SIU^S12" in out and "received" in out
    shown = run("messages", "show", str(first)).stdout
    assert '"control_id": "C1"' in shown and "MSH|^~\\&|GMED" in shown
    assert run("messages", "show", str(first), "--raw").stdout.startswith("MSH|")
    assert run("messages", "show", "999").exit_code == 1
    assert "received   1" in run("messages", "stats").stdout


def test_replay_by_filter_and_refuse_an_empty_one(database: str) -> None:
    engine = make_engine(database)
    ids = [_store(database, f"P{i}") for i in range(3)]
    for message_id in ids[:2]:
        message_store.fail(engine, message_id, "unmapped x", permanent=True, policy=RetryPolicy(1))
    assert run("messages", "replay").exit_code == 2
    result = run("messages", "replay", "--status", "parked")
    assert result.exit_code == 0 and "replayed 2 message(s)" in result.stdout
    assert message_store.counts_by_status(engine) == {"received": 3}


def test_prune_keeps_recent_and_parked(database: str) -> None:
    engine = make_engine(database)
    old, recent = _store(database, "O"), _store(database, "R")
    with engine.begin() as conn:
        message_store.finish(conn, old, "processed")
        message_store.finish(conn, recent, "processed")
        conn.execute(
            update(messages)
            .where(messages.c.id == old)
            .values(finished_at=utcnow() - timedelta(days=45))
        )
    result = run("messages", "prune", "--days", "30")
    assert "pruned 1 message(s)" in result.stdout
    assert message_store.counts_by_status(engine) == {"processed": 1}
