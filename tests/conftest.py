"""Storage fixtures: every storage test runs on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from hub.db import create_all, make_engine

FIXTURES = Path(__file__).parent / "fixtures"
PG_URL = os.environ.get("HARMONY_TEST_DATABASE_URL")
BROKER_URL = os.environ.get("HARMONY_TEST_BROKER_URL")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'harmony.db'}"
        return
    if not PG_URL:
        pytest.skip("HARMONY_TEST_DATABASE_URL is not set; PostgreSQL tests skipped")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL, pool_size=1)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on a fresh database with every Harmony table created."""
    eng = make_engine(database_url)
    create_all(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def broker_url() -> str:
    if not BROKER_URL:
        pytest.skip("HARMONY_TEST_BROKER_URL is not set; RabbitMQ tests skipped")
    return BROKER_URL
