"""Shift types: the templates shifts are made from (start time, length, zone, who may work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from scheduling.errors import InvalidInput, StateConflict
from scheduling.records import get_row, shift_type_json, versioned_update
from scheduling.tables import shift_types
from scheduling.times import parse_hhmm, zone

KINDS = frozenset({"call", "clinic", "night", "weekend", "day", "evening", "consult", "other"})
_FIELDS = (
    "code",
    "name",
    "kind",
    "start_time",
    "duration_minutes",
    "service",
    "location",
    "timezone",
    "required_specialties",
)


def _clean(values: dict[str, Any], creating: bool) -> dict[str, Any]:
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown shift type fields {sorted(unknown)}")
    missing = [f for f in _FIELDS if f not in values and f != "required_specialties"]
    if creating and missing:
        raise InvalidInput(f"a shift type needs {', '.join(missing)}")
    out = dict(values)
    if "kind" in out and out["kind"] not in KINDS:
        raise InvalidInput(f"kind {out['kind']!r} is not one of {', '.join(sorted(KINDS))}")
    if "start_time" in out:
        parse_hhmm(str(out["start_time"]))
    if "timezone" in out:
        zone(str(out["timezone"]))
    if "duration_minutes" in out:
        minutes = int(out["duration_minutes"])
        if not 0 < minutes <= 48 * 60:
            raise InvalidInput("duration_minutes must be between 1 and 2880")
        out["duration_minutes"] = minutes
    specialties = out.get("required_specialties", [])
    if not isinstance(specialties, list) or not all(isinstance(s, str) for s in specialties):
        raise InvalidInput("required_specialties must be a list of strings")
    if creating:
        out.setdefault("required_specialties", [])
    return out


def create_shift_type(engine: Engine, values: dict[str, Any]) -> dict[str, Any]:
    clean = _clean(values, creating=True)
    try:
        with engine.begin() as conn:
            new_id = conn.execute(
                insert(shift_types).values(**clean, version=1)
            ).inserted_primary_key[0]  # type: ignore[index]
            return shift_type_json(get_row(conn, shift_types, int(new_id), "shift type"))
    except IntegrityError:
        raise StateConflict(f"a shift type with code {clean['code']!r} exists") from None


def update_shift_type(
    engine: Engine, type_id: int, values: dict[str, Any], expected_version: int
) -> dict[str, Any]:
    """Change the template; shifts already made keep their times (they are records)."""
    clean = _clean(values, creating=False)
    with engine.begin() as conn:
        return shift_type_json(
            versioned_update(conn, shift_types, type_id, expected_version, "shift type", **clean)
        )


def get_shift_type(engine: Engine, type_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        return shift_type_json(get_row(conn, shift_types, type_id, "shift type"))


def list_shift_types(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(shift_types).order_by(shift_types.c.id))
        return [shift_type_json(r) for r in rows]
