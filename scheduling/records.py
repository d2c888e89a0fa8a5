"""Reading scheduling rows and shaping them for callers; the one versioned-update helper.

Every mutable row carries ``version``; it is the ETag, and every update is conditional on
it (``UPDATE ... WHERE id = :id AND version = :seen``), so of two writers who read the same
version exactly one wins and the other is told its copy is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, Table, select, update

from scheduling.errors import Forbidden, NotFound, StaleVersion
from scheduling.tables import physicians, rosters, shift_requests, shift_types, shifts
from scheduling.times import as_utc, utcnow


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a user name for the log, their physician id, and whether they administer."""

    name: str
    physician_id: int | None = None
    is_admin: bool = False

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("only an admin may do this")

    def require_physician(self) -> int:
        if self.physician_id is None:
            raise Forbidden("only a physician (a user linked to a physician) may do this")
        return self.physician_id


def versioned_update(
    conn: Connection,
    table: Table,
    row_id: int,
    expected_version: int | None,
    what: str,
    **values: Any,
) -> Row[Any]:
    """Update a row if it is still at ``expected_version`` (None: at whatever version is
    stored now); returns the new row. NotFound or StaleVersion otherwise."""
    current = conn.execute(select(table.c.version).where(table.c.id == row_id)).scalar()
    if current is None:
        raise NotFound(f"{what} {row_id} does not exist")
    seen = current if expected_version is None else expected_version
    if "updated_at" in table.c:
        values.setdefault("updated_at", utcnow())
    done = conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.version == seen)
        .values(version=table.c.version + 1, **values)
    )
    if done.rowcount != 1:
        raise StaleVersion(f"{what} {row_id} changed since version {seen}; read it again and retry")
    return conn.execute(select(table).where(table.c.id == row_id)).one()


def get_row(conn: Connection, table: Table, row_id: int, what: str) -> Row[Any]:
    row = conn.execute(select(table).where(table.c.id == row_id)).first()
    if row is None:
        raise NotFound(f"{what} {row_id} does not exist")
    return row


def lock_physicians(conn: Connection, ids: set[int]) -> None:
    """Serialise assignments per physician (PostgreSQL row locks, in id order so two
    transactions never deadlock); SQLite has one writer anyway. Without it two approvals for
    one physician could each pass the conflict check and together break it."""
    if ids and conn.dialect.name != "sqlite":
        conn.execute(
            select(physicians.c.id)
            .where(physicians.c.id.in_(sorted(ids)))
            .order_by(physicians.c.id)
            .with_for_update()
        ).all()


def _iso(value: Any) -> str | None:
    return None if value is None else as_utc(value).isoformat()


def physician_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "user_id": row.user_id,
        "practitioner_id": row.practitioner_id,
        "specialties": list(row.specialties or []),
        "locations": list(row.locations or []),
        "services": list(row.services or []),
        "fte": row.fte,
        "blackout_dates": list(row.blackout_dates or []),
        "active": bool(row.active),
        "version": row.version,
    }


def shift_type_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "code": row.code,
        "name": row.name,
        "kind": row.kind,
        "start_time": row.start_time,
        "duration_minutes": row.duration_minutes,
        "service": row.service,
        "location": row.location,
        "timezone": row.timezone,
        "required_specialties": list(row.required_specialties or []),
        "version": row.version,
    }


def roster_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "period_start": row.period_start.isoformat(),
        "period_end": row.period_end.isoformat(),
        "status": row.status,
        "published_at": _iso(row.published_at),
        "version": row.version,
    }


def shift_json(row: Row[Any]) -> dict[str, Any]:
    """A shift row, joined or not with its type (``type_*`` columns)."""
    out = {
        "id": row.id,
        "roster_id": row.roster_id,
        "shift_type_id": row.shift_type_id,
        "physician_id": row.physician_id,
        "start": _iso(row.start),
        "end": _iso(row.end),
        "service": row.service,
        "location": row.location,
        "status": row.status,
        "version": row.version,
    }
    mapping = row._mapping
    if "type_name" in mapping:
        out["shift_type"] = {
            "code": mapping["type_code"],
            "name": mapping["type_name"],
            "kind": mapping["type_kind"],
            "timezone": mapping["type_timezone"],
        }
    return out


def request_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "shift_id": row.shift_id,
        "requester_id": row.requester_id,
        "counterparty_id": row.counterparty_id,
        "counterparty_shift_id": row.counterparty_shift_id,
        "status": row.status,
        "note": row.note,
        "decided_by": row.decided_by,
        "version": row.version,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def shifts_with_types() -> Any:
    """SELECT shift.* plus the type's code, name, kind, zone and required specialties."""
    return select(
        shifts,
        shift_types.c.code.label("type_code"),
        shift_types.c.name.label("type_name"),
        shift_types.c.kind.label("type_kind"),
        shift_types.c.timezone.label("type_timezone"),
        shift_types.c.required_specialties.label("type_required"),
    ).join(shift_types, shift_types.c.id == shifts.c.shift_type_id)


def shift_with_type(conn: Connection, shift_id: int) -> Row[Any]:
    row = conn.execute(shifts_with_types().where(shifts.c.id == shift_id)).first()
    if row is None:
        raise NotFound(f"shift {shift_id} does not exist")
    return row


def roster_of(conn: Connection, roster_id: int) -> Row[Any]:
    return get_row(conn, rosters, roster_id, "roster")


def request_row(conn: Connection, request_id: int) -> Row[Any]:
    return get_row(conn, shift_requests, request_id, "request")
