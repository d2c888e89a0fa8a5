"""Physicians: who can be rostered, where, in which specialties, and when they are away."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Engine, insert, select

from scheduling.errors import InvalidInput
from scheduling.records import get_row, physician_json, versioned_update
from scheduling.tables import physicians
from scheduling.times import utcnow

_LISTS = ("specialties", "locations", "services", "blackout_dates")
_EDITABLE = ("name", "user_id", "practitioner_id", "fte", "active", *_LISTS)


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(_EDITABLE)
    if unknown:
        raise InvalidInput(f"unknown physician fields {sorted(unknown)}")
    out = dict(values)
    for name in _LISTS:
        items = out.get(name, [])
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise InvalidInput(f"{name} must be a list of strings")
    for text in out.get("blackout_dates", []):
        try:
            date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"blackout date {text!r} is not YYYY-MM-DD") from None
    if "fte" in out and not (0 < float(out["fte"]) <= 1.5):
        raise InvalidInput("fte must be above 0 and at most 1.5")
    if "active" in out:
        out["active"] = 1 if out["active"] else 0
    if "name" in out and not str(out["name"]).strip():
        raise InvalidInput("a physician needs a name")
    return out


def create_physician(engine: Engine, values: dict[str, Any]) -> dict[str, Any]:
    if "name" not in values:
        raise InvalidInput("a physician needs a name")
    clean = {
        "specialties": [],
        "locations": [],
        "services": [],
        "blackout_dates": [],
        "fte": 1.0,
        "active": 1,
        **_clean(values),
    }
    now = utcnow()
    with engine.begin() as conn:
        new_id = conn.execute(
            insert(physicians).values(**clean, version=1, created_at=now, updated_at=now)
        ).inserted_primary_key[0]  # type: ignore[index]
        return physician_json(get_row(conn, physicians, int(new_id), "physician"))


def update_physician(
    engine: Engine, physician_id: int, values: dict[str, Any], expected_version: int
) -> dict[str, Any]:
    """Change a physician if still at ``expected_version`` (StaleVersion otherwise).

    Shifts already rostered are not re-checked here; the next edit, approval or publish
    that touches them is (the checker reads the physician as it is then)."""
    with engine.begin() as conn:
        row = versioned_update(
            conn, physicians, physician_id, expected_version, "physician", **_clean(values)
        )
        return physician_json(row)


def get_physician(engine: Engine, physician_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return physician_json(get_row(conn, physicians, physician_id, "physician"))


def list_physicians(engine: Engine, active_only: bool = False) -> list[dict[str, Any]]:
    query = select(physicians).order_by(physicians.c.id)
    if active_only:
        query = query.where(physicians.c.active == 1)
    with engine.connect() as conn:
        return [physician_json(r) for r in conn.execute(query)]
