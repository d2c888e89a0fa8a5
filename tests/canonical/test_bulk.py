"""Driver-level bulk inserts store exactly what SQLAlchemy's own inserts store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from canonical import bulk
from canonical.tables import resources

RESOURCE = {"resourceType": "Slot", "status": "free", "comment": 'é "quoted" \n', "n": 1.5}


def row(resource_id: str, resource: Any) -> dict[str, Any]:
    return {
        "resource_type": "Slot",
        "id": resource_id,
        "version_id": 1,
        "last_updated": datetime(2024, 5, 6, 9, 0, 0, 123456, tzinfo=UTC),
        "status": "free",
        "start": datetime(2024, 5, 6, 9, 0, tzinfo=UTC),
        "end": None,
        "schedule_id": None,
        "source_system": "epic",
        "message_seq": 2**40,
        "content_hash": "0" * 64,
        "resource": resource,
    }


def test_bulk_rows_read_back_like_sqlalchemy_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        dumps = bulk.json_serializer(conn.dialect)
        bulk.insert_rows(
            conn,
            resources,
            bulk.columns_of(resources),
            [row("bulk-1", dumps(RESOURCE)), row("bulk-2", dumps({}))],
        )
        conn.execute(insert(resources), [row("orm-1", RESOURCE)])
    with engine.connect() as conn:
        found = {r.id: r._asdict() for r in conn.execute(select(resources))}
        if engine.dialect.name == "sqlite":  # datetimes are text there: the same text
            raw = dict(
                conn.exec_driver_sql(
                    "SELECT id, last_updated || start FROM canonical_resources"
                ).all()
            )
            assert raw["bulk-1"] == raw["orm-1"]
    bulk_row, orm_row = found["bulk-1"], found["orm-1"]
    for name in ("pk", "id"):
        bulk_row.pop(name), orm_row.pop(name)
    assert bulk_row == orm_row
    assert orm_row["resource"] == RESOURCE
    assert found["bulk-2"]["resource"] == {}


def test_no_rows_is_a_no_op(engine: Engine) -> None:
    with engine.begin() as conn:
        bulk.insert_rows(conn, resources, bulk.columns_of(resources), [])
        assert conn.execute(select(resources)).all() == []
