"""Appointment reminders 24 hours and 1 hour before, through the notification outbox.

A pass (the hub's scheduler runs one every ``appointment_reminder_poll_seconds``; tests
call ``queue_reminders`` with their own ``now``) finds booked appointments that have entered
a window and queues the reminder for the users linked to the patient (``app_user.patient_id``):
an in-app notification plus email and push deliveries, which the outbox retries until sent.

Each (appointment, kind) is written once, whatever the number of passes or processes: the
``appointment_reminder`` row is unique on it and commits with its notifications. Only the
tightest window is used: an appointment booked 40 minutes ahead gets the 1 h reminder and
its 24 h one is recorded as skipped, never sent late. Cancelled appointments are not
reminded; a reminder still waiting for delivery when Harmony cancels the appointment is
withdrawn (``withdraw``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, select, update

from canonical.tables import resources
from hub.db import write_turn
from hub.message_store import as_utc, utcnow
from hub.notifications.dispatcher import lock_cursor
from hub.notifications.outbox import Channels, insert_ignoring_duplicates, store
from hub.notifications.routing import Message
from hub.notifications.tables import deliveries
from hub.settings import Settings
from hub.tables import appointment_reminders
from hub.users import users

log = logging.getLogger(__name__)

WINDOWS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)))
"""Reminder kinds, tightest first."""
NOTIFICATION_KIND = "appointment_reminder_{}"
REMINDED = ("booked",)


def queue_reminders(
    engine: Engine, settings: Settings, channels: Channels, now: datetime | None = None
) -> int:
    """One pass: queue the reminders due at ``now``; how many notifications were written."""
    now = now or utcnow()
    horizon = now + WINDOWS[-1][1]
    with engine.connect() as conn:
        rows = conn.execute(
            select(resources.c.id, resources.c.start, resources.c.resource).where(
                resources.c.resource_type == "Appointment",
                resources.c.status.in_(REMINDED),
                resources.c.start > now,
                resources.c.start <= horizon,
            )
        ).all()
        done = _done_kinds(conn, [r.id for r in rows])
    written = 0
    for row in rows:
        start = as_utc(row.start)
        kind = next(k for k, window in WINDOWS if start - now <= window)
        if kind in done.get(row.id, ()):
            continue
        try:
            written += _queue_one(engine, settings, channels, now, row.resource, start, kind)
        except Exception as exc:  # one bad appointment must not hold back the others
            log.warning("reminder %s for Appointment/%s failed: %s", kind, row.id, exc)
    return written


def withdraw(engine: Engine, appointment_id: str, reason: str = "appointment cancelled") -> int:
    """Drop reminder deliveries of the appointment that are not sent yet; how many."""
    with engine.connect() as conn:
        found = conn.execute(
            select(appointment_reminders.c.notification_ids).where(
                appointment_reminders.c.appointment_id == appointment_id
            )
        ).all()
    ids = [int(i) for (group,) in found for i in group or ()]
    if not ids:
        return 0
    now = utcnow()
    with write_turn(engine), engine.begin() as conn:
        result = conn.execute(
            update(deliveries)
            .where(
                deliveries.c.notification_id.in_(ids),
                deliveries.c.status.in_(("pending", "retrying")),
            )
            .values(
                status="dropped",
                last_error=reason,
                next_attempt_at=None,
                updated_at=now,
                finished_at=now,
            )
        )
    return int(result.rowcount or 0)


def _queue_one(
    engine: Engine,
    settings: Settings,
    channels: Channels,
    now: datetime,
    appointment: dict[str, Any],
    start: datetime,
    kind: str,
) -> int:
    appointment_id = str(appointment["id"])
    with write_turn(engine), engine.begin() as conn:
        lock_cursor(conn)  # notification ids stay in order for the inbox stream
        reminder_id = conn.execute(
            insert_ignoring_duplicates(
                conn, appointment_reminders, ("appointment_id", "kind")
            ).returning(appointment_reminders.c.id),
            {
                "appointment_id": appointment_id,
                "kind": kind,
                "state": "queued",
                "appointment_start": start,
                "notification_ids": [],
                "created_at": utcnow(),
            },
        ).scalar()
        if reminder_id is None:
            return 0  # another pass or process got there first
        kinds = [k for k, _window in WINDOWS]
        for looser in kinds[kinds.index(kind) + 1 :]:
            conn.execute(
                insert_ignoring_duplicates(conn, appointment_reminders, ("appointment_id", "kind")),
                {
                    "appointment_id": appointment_id,
                    "kind": looser,
                    "state": "skipped",
                    "appointment_start": start,
                    "notification_ids": [],
                    "created_at": utcnow(),
                },
            )
        messages = [
            _message(user_id, kind, now, start, appointment, settings)
            for user_id in _patient_users(conn, appointment)
        ]
        created = store(conn, int(reminder_id), messages, channels)
        conn.execute(
            update(appointment_reminders)
            .where(appointment_reminders.c.id == reminder_id)
            .values(notification_ids=created, state="queued" if messages else "no-recipient")
        )
    return len(created)


def _done_kinds(conn: Connection, appointment_ids: list[str]) -> dict[str, set[str]]:
    done: dict[str, set[str]] = {}
    for chunk in range(0, len(appointment_ids), 500):
        rows = conn.execute(
            select(appointment_reminders.c.appointment_id, appointment_reminders.c.kind).where(
                appointment_reminders.c.appointment_id.in_(appointment_ids[chunk : chunk + 500])
            )
        )
        for row in rows:
            done.setdefault(row.appointment_id, set()).add(row.kind)
    return done


def _patient_users(conn: Connection, appointment: dict[str, Any]) -> list[int]:
    patients = [
        ref.split("/", 1)[1]
        for p in appointment.get("participant") or []
        if (ref := str((p.get("actor") or {}).get("reference", ""))).startswith("Patient/")
    ]
    if not patients:
        return []
    rows = conn.execute(
        select(users.c.id).where(users.c.patient_id.in_(patients), users.c.active == 1)
    )
    return sorted(int(r.id) for r in rows)


def _message(
    user_id: int,
    kind: str,
    now: datetime,
    start: datetime,
    appointment: dict[str, Any],
    settings: Settings,
) -> Message:
    zone = ZoneInfo(settings.default_timezone)
    local = start.astimezone(zone)
    when = f"{local:%a} {local.day} {local:%b} at {local:%H:%M} ({settings.default_timezone})"
    with_whom = [
        str((p.get("actor") or {}).get("display"))
        for p in appointment.get("participant") or []
        if (p.get("actor") or {}).get("display")
        and not str((p.get("actor") or {}).get("reference", "")).startswith("Patient/")
    ]
    who = f" with {' and '.join(with_whom)}" if with_whom else ""
    title = "Appointment tomorrow" if kind == "24h" else "Appointment in one hour"
    if kind == "24h" and local.date() == now.astimezone(zone).date():
        title = "Appointment today"
    return Message(
        user_id=user_id,
        kind=NOTIFICATION_KIND.format(kind),
        title=title,
        body=f"Reminder: your appointment{who} is on {when}.",
        data={
            "appointment_id": appointment["id"],
            "reminder": kind,
            "start": start.isoformat().replace("+00:00", "Z"),
        },
    )
