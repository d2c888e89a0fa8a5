"""Who could take an open shift: the physicians the conflict checker would accept for it.

The notification dispatcher calls ``eligible_physicians`` to offer a dropped shift to the
pool; the open-shift list of a physician uses ``is_eligible``. Both ask the same checker
that approves the pickup, so nobody is offered a shift they would then be refused.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from scheduling.conflicts import check, planned_from_row
from scheduling.records import shift_with_type
from scheduling.rules import BUILTIN_RULES, RosterRules, load_rules
from scheduling.tables import physicians


def eligible_physicians(
    conn: Connection, shift_id: int, rules: RosterRules | None = None
) -> list[int]:
    """Ids of active physicians who could take the shift without any conflict, in id order.

    The shift's current holder (if any) is left out. ``rules`` defaults to the stored
    overrides on the built-in defaults (pass ``load_rules(conn, context.default_rules)`` to
    honour configured defaults).
    """
    row = shift_with_type(conn, shift_id)
    in_force = rules or load_rules(conn, BUILTIN_RULES)
    candidates = conn.execute(
        select(physicians.c.id).where(physicians.c.active == 1).order_by(physicians.c.id)
    ).scalars()
    return [
        pid
        for pid in candidates
        if pid != row.physician_id
        and not check(conn, in_force, [planned_from_row(row, physician_id=pid)])
    ]


def is_eligible(conn: Connection, shift_id: int, physician_id: int, rules: RosterRules) -> bool:
    row = shift_with_type(conn, shift_id)
    return not check(conn, rules, [planned_from_row(row, physician_id=physician_id)])
