"""A small roster world written straight into the tables: physicians with their users,
admins, call-center staff, shifts, requests and the roster events scheduling would write."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from hub.notifications.tables import notifications
from hub.users import create_user
from scheduling.tables import (
    physicians,
    roster_events,
    rosters,
    shift_requests,
    shift_types,
    shifts,
)

NOW = datetime(2030, 3, 4, 12, 0, tzinfo=UTC)


@dataclass
class Doctor:
    physician_id: int
    user_id: int
    username: str


class World:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with engine.begin() as conn:
            self.shift_type_id = conn.execute(
                insert(shift_types).values(
                    code="DAY",
                    name="Day clinic",
                    kind="clinic",
                    start_time="08:00",
                    duration_minutes=480,
                    service="cardiology",
                    location="main",
                    timezone="America/New_York",
                    required_specialties=[],
                    version=1,
                )
            ).inserted_primary_key[0]
            self.roster_id = conn.execute(
                insert(rosters).values(
                    name="March",
                    period_start=date(2030, 3, 1),
                    period_end=date(2030, 3, 31),
                    status="published",
                    version=1,
                    created_at=NOW,
                    updated_at=NOW,
                )
            ).inserted_primary_key[0]

    def doctor(self, name: str, *, email: str | None = None, password: str | None = None) -> Doctor:
        with self.engine.begin() as conn:
            pid = conn.execute(
                insert(physicians).values(
                    name=name,
                    specialties=["cardiology"],
                    locations=["main"],
                    services=["cardiology"],
                    fte=1.0,
                    blackout_dates=[],
                    active=1,
                    version=1,
                    created_at=NOW,
                    updated_at=NOW,
                )
            ).inserted_primary_key[0]
        username = name.lower().replace(" ", ".")
        user = create_user(
            self.engine,
            username,
            roles={"physician"},
            email=email,
            password=password,
            physician_id=int(pid),
            display_name=name,
        )
        return Doctor(int(pid), user.id, username)

    def staff(self, username: str, role: str, *, email: str | None = None) -> int:
        return create_user(self.engine, username, roles={role}, email=email).id

    def shift(self, doctor: Doctor | None, day: int = 10) -> int:
        start = datetime(2030, 3, day, 13, 0, tzinfo=UTC)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    insert(shifts).values(
                        roster_id=self.roster_id,
                        shift_type_id=self.shift_type_id,
                        physician_id=doctor.physician_id if doctor else None,
                        start=start,
                        end=start + timedelta(hours=8),
                        service="cardiology",
                        location="main",
                        status="assigned" if doctor else "open",
                        version=1,
                        created_at=NOW,
                        updated_at=NOW,
                    )
                ).inserted_primary_key[0]
            )

    def request(
        self, kind: str, shift_id: int, requester: Doctor, counterparty: Doctor | None = None
    ) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    insert(shift_requests).values(
                        kind=kind,
                        shift_id=shift_id,
                        requester_id=requester.physician_id,
                        counterparty_id=counterparty.physician_id if counterparty else None,
                        status="pending",
                        version=1,
                        created_at=NOW,
                        updated_at=NOW,
                    )
                ).inserted_primary_key[0]
            )

    def event(
        self,
        kind: str,
        shift_ids: list[int],
        physicians_concerned: list[Doctor],
        *,
        request_id: int | None = None,
        actor: str = "system",
        event_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        values: dict[str, Any] = {
            "kind": kind,
            "roster_id": self.roster_id,
            "shift_ids": shift_ids,
            "request_id": request_id,
            "physician_ids": [d.physician_id for d in physicians_concerned],
            "actor": actor,
            "detail": detail or {},
            "created_at": NOW,
        }
        if event_id is not None:
            values["id"] = event_id
        with self.engine.begin() as conn:
            return int(conn.execute(insert(roster_events).values(**values)).inserted_primary_key[0])

    def told(self, event_id: int | None = None) -> set[tuple[int, str]]:
        """(user id, kind) of every notification (of one event)."""
        query = select(notifications.c.user_id, notifications.c.kind)
        if event_id is not None:
            query = query.where(notifications.c.event_id == event_id)
        with self.engine.connect() as conn:
            return {(int(r.user_id), str(r.kind)) for r in conn.execute(query)}
