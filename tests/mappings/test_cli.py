"""``harmony mappings`` end to end against a SQLite file, the way an admin would use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from hub.cli_mappings import app
from hub.db import make_engine
from hub.settings import get_settings
from mappings.defaults import load_default
from mappings.store import MappingStore
from mappings.tables import metadata


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    monkeypatch.setenv("HARMONY_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_shows_shipped_sources(database: str) -> None:
    out = ok("list")
    for source in ("gmed", "epic", "athena", "google"):
        assert f"{source}@v1" in out


def test_export_edit_create_activate_diff_rollback(database: str, tmp_path: Path) -> None:
    exported = json.loads(ok("export", "gmed"))
    assert exported == load_default("gmed").model_dump(mode="json")  # type: ignore[union-attr]

    exported["status"]["Parked"] = "pending"
    exported["timezone"] = "America/Chicago"
    edited = tmp_path / "gmed.json"
    edited.write_text(json.dumps(exported))

    assert "gmed@v2 (not active)" in ok("create", "gmed", str(edited), "--note", "chicago")
    assert "v2" in ok("versions", "gmed") and "chicago" in ok("versions", "gmed")
    diff = ok("diff", "gmed", "1", "2")
    assert '+ status[Parked]: - -> "pending"' in diff
    assert '+ timezone: - -> "America/Chicago"' in diff
    assert len(diff.strip().splitlines()) == 2

    assert "gmed@v2" in ok("activate", "gmed", "2")
    shown = json.loads(ok("show", "gmed"))
    assert (shown["label"], shown["active"], shown["note"]) == ("gmed@v2", True, "chicago")
    assert json.loads(ok("show", "gmed", "--version", "1"))["active"] is False

    assert "active: gmed@v1" in ok("rollback", "gmed")
    assert json.loads(ok("export", "gmed"))["timezone"] is None
    assert json.loads(ok("export", "gmed", "--version", "2"))["timezone"] == "America/Chicago"


def test_create_with_activate(database: str, tmp_path: Path) -> None:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps({"status": {"ok": "booked"}}))
    assert "acme@v1 (active)" in ok("create", "acme", str(path))
    assert "acme@v2 (active)" in ok("create", "acme", str(path), "--activate")
    assert "same content" in ok("diff", "acme", "1", "2")


def test_invalid_file_is_refused_with_the_reason(database: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"status": {"Booked": "confirmed"}, "timezone": "Nowhere/Land"}))
    result = run("create", "gmed", str(path))
    assert result.exit_code == 1
    assert "status.Booked" in result.stderr and "not a FHIR R4 Appointment status" in result.stderr
    assert "timezone" in result.stderr and "Nowhere/Land" in result.stderr
    assert "v2" not in ok("versions", "gmed")


def test_errors_exit_non_zero_with_a_message(database: str) -> None:
    cases = {
        ("show", "nosuchvendor"): "no mapping set for source 'nosuchvendor'",
        ("activate", "gmed", "9"): "has no mapping version 9",
        ("rollback", "gmed"): "cannot roll back",
        ("diff", "gmed", "1", "3"): "has no mapping version 3",
        ("versions", "Not OK"): "invalid source name",
    }
    for args, message in cases.items():
        result = run(*args)
        assert result.exit_code == 1, args
        assert message in result.stderr, (args, result.stderr)


def test_unmapped_report(database: str) -> None:
    assert "no unmapped codes" in ok("unmapped")
    engine = make_engine(database)
    with Session(engine) as s:
        store = MappingStore(s)
        for message_id in (7, 8, 9):
            store.record_unmapped("gmed", "status", "Parked", message_id)
        store.record_unmapped("epic", "status", "on-hold", 3)
        s.commit()
    engine.dispose()
    out = ok("unmapped")
    assert "'Parked'" in out and "seen 3x" in out and "message 9" in out and "gmed@v1" in out
    assert "on-hold" in out
    assert "on-hold" not in ok("unmapped", "gmed")
