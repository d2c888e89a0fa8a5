"""The conflict rules: defaults from the caller (a hub reads HARMONY_ROSTER_*), overridden
by an admin.

The overrides live in one ``roster_rule`` row with a version (its ETag), so two admins
editing the rules cannot overwrite each other unseen. A change writes a ``rules`` event.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from scheduling.errors import InvalidInput, StaleVersion
from scheduling.roster_events import write_event
from scheduling.tables import roster_rules
from scheduling.times import utcnow, zone

RULES_ROW = 1


@dataclass(frozen=True, slots=True)
class ForbiddenSequence:
    """A shift of kind ``next_kind`` may not start within ``within_hours`` of the end of a
    shift of kind ``after_kind`` (``*`` matches any kind)."""

    after_kind: str
    next_kind: str
    within_hours: float

    @classmethod
    def parse(cls, text: str) -> ForbiddenSequence:
        try:
            kinds, hours = text.split(":")
            after, nxt = kinds.split(">")
            within = float(hours)
        except ValueError:
            raise InvalidInput(
                f"forbidden sequence {text!r} is not '<kind>><kind or *>:<hours>'"
            ) from None
        if not after.strip() or not nxt.strip() or within <= 0:
            raise InvalidInput(f"forbidden sequence {text!r} needs two kinds and hours > 0")
        return cls(after.strip(), nxt.strip(), within)

    def matches(self, earlier_kind: str, later_kind: str) -> bool:
        return self.after_kind in ("*", earlier_kind) and self.next_kind in ("*", later_kind)

    def text(self) -> str:
        return f"{self.after_kind}>{self.next_kind}:{self.within_hours:g}"


@dataclass(frozen=True, slots=True)
class RosterRules:
    timezone: str
    min_rest_hours: float
    weekly_max_hours: float
    weekly_max_shifts: int
    forbidden_sequences: tuple[ForbiddenSequence, ...]
    swap_lead_days: int
    version: int = 0
    """0: the defaults, never edited."""

    def as_json(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "min_rest_hours": self.min_rest_hours,
            "weekly_max_hours": self.weekly_max_hours,
            "weekly_max_shifts": self.weekly_max_shifts,
            "forbidden_sequences": [s.text() for s in self.forbidden_sequences],
            "swap_lead_days": self.swap_lead_days,
            "version": self.version,
        }


_FIELDS = (
    "timezone",
    "min_rest_hours",
    "weekly_max_hours",
    "weekly_max_shifts",
    "forbidden_sequences",
    "swap_lead_days",
)


BUILTIN_RULES = RosterRules(
    timezone="UTC",
    min_rest_hours=10.0,
    weekly_max_hours=60.0,
    weekly_max_shifts=6,
    forbidden_sequences=(
        ForbiddenSequence("night", "clinic", 24),
        ForbiddenSequence("night", "call", 24),
    ),
    swap_lead_days=2,
)
"""The defaults when the caller has none; HARMONY_ROSTER_* settings default to these."""


def _with_overrides(base: RosterRules, overrides: dict[str, Any], version: int) -> RosterRules:
    unknown = set(overrides) - set(_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown rule fields {sorted(unknown)}; known: {list(_FIELDS)}")
    values: dict[str, Any] = {"version": version}
    try:
        if "timezone" in overrides:
            values["timezone"] = zone(str(overrides["timezone"])).key
        for name in ("min_rest_hours", "weekly_max_hours"):
            if name in overrides:
                values[name] = float(overrides[name])
        for name in ("weekly_max_shifts", "swap_lead_days"):
            if name in overrides:
                values[name] = int(overrides[name])
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bad rule value: {exc}") from None
    if any(v < 0 for k, v in values.items() if k not in ("timezone", "version")):
        raise InvalidInput("rule values must not be negative")
    if "forbidden_sequences" in overrides:
        items = overrides["forbidden_sequences"]
        if not isinstance(items, list):
            raise InvalidInput("forbidden_sequences is a list of '<kind>><kind>:<hours>'")
        values["forbidden_sequences"] = tuple(ForbiddenSequence.parse(str(t)) for t in items)
    return replace(base, **values)


def load_rules(conn: Connection, defaults: RosterRules) -> RosterRules:
    """The rules in force: ``defaults`` with the stored overrides on top."""
    row = conn.execute(select(roster_rules).where(roster_rules.c.id == RULES_ROW)).first()
    if row is None:
        return defaults
    return _with_overrides(defaults, dict(row.rules), row.version)


def update_rules(
    engine: Engine,
    defaults: RosterRules,
    changes: dict[str, Any],
    *,
    expected_version: int,
    actor: str,
) -> RosterRules:
    """Merge ``changes`` into the stored overrides if nobody changed them since
    ``expected_version`` (StaleVersion otherwise)."""
    with engine.begin() as conn:
        row = conn.execute(select(roster_rules).where(roster_rules.c.id == RULES_ROW)).first()
        current = 0 if row is None else row.version
        if current != expected_version:
            raise StaleVersion(f"the rules are at version {current}, not {expected_version}")
        merged = {**(dict(row.rules) if row is not None else {}), **changes}
        rules = _with_overrides(defaults, merged, current + 1)
        stored = {k: v for k, v in rules.as_json().items() if k in merged}
        now = utcnow()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(roster_rules).values(
                            id=RULES_ROW, rules=stored, version=1, updated_by=actor, updated_at=now
                        )
                    )
            except IntegrityError:
                raise StaleVersion("the rules changed meanwhile; read them again") from None
        else:
            done = conn.execute(
                update(roster_rules)
                .where(roster_rules.c.id == RULES_ROW, roster_rules.c.version == current)
                .values(rules=stored, version=current + 1, updated_by=actor, updated_at=now)
            )
            if done.rowcount != 1:
                raise StaleVersion("the rules changed meanwhile; read them again")
        write_event(
            conn,
            "rules",
            actor=actor,
            detail={"summary": f"{actor} changed the roster rules", "rules": rules.as_json()},
        )
    return rules
