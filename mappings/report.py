"""Whether a code a message carried is mapped now, so fixed codes drop out of the report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mappings.model import MappingSet, UnmappedCode


@dataclass(frozen=True, slots=True)
class UnmappedEntry:
    """A code seen in messages that the source's active version still does not translate."""

    source: str
    table: str
    code: str
    count: int
    first_seen: datetime
    last_seen: datetime
    last_message_id: int | None
    checked_against: str | None
    """The label of the version the code was checked against (None: the source has none)."""


def is_mapped(mapping_set: MappingSet, table: str, code: str) -> bool:
    """Looks the code up the way adapters do; an unknown table counts as unmapped."""
    try:
        if table == "status":
            mapping_set.status(code)
            return True
        if table == "trigger_events":
            mapping_set.trigger(code)
            return True
    except UnmappedCode:
        return False
    if table == "appointment_types":
        return mapping_set.appointment_type(code) is not None
    if table == "providers":
        return mapping_set.provider(code) is not None
    if table == "locations":
        return mapping_set.location(code) is not None
    return False
