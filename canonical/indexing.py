"""What a resource contributes to the search columns and the search index.

Kept apart from the repository so that the search side and the write side agree on one
definition of every search parameter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from canonical.model import parse_instant, split_reference, status_of


@dataclass(frozen=True, slots=True)
class Columns:
    status: str | None
    start: datetime | None
    end: datetime | None
    schedule_id: str | None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One searchable fact: a reference (system = target type) or a token (system = system)."""

    param: str
    system: str
    value: str


def columns_of(resource_type: str, resource: dict[str, Any]) -> Columns:
    """The values copied into indexed columns of ``canonical_resources``."""
    schedule_id = None
    if resource_type == "Slot":
        target = split_reference((resource.get("schedule") or {}).get("reference", ""))
        schedule_id = target[1] if target else None
    timed = resource_type in ("Slot", "Appointment")
    return Columns(
        status=status_of(resource),
        start=parse_instant(resource.get("start")) if timed else None,
        end=parse_instant(resource.get("end")) if timed else None,
        schedule_id=schedule_id,
    )


def entries_of(resource_type: str, resource: dict[str, Any]) -> list[IndexEntry]:
    """The ``search_index`` rows for a resource, without duplicates."""
    found: dict[tuple[str, str, str], None] = {}
    for entry in _entries(resource_type, resource):
        found[(entry.param, entry.system, entry.value)] = None
    return [IndexEntry(*key) for key in found]


def _entries(resource_type: str, resource: dict[str, Any]) -> Iterator[IndexEntry]:
    if resource_type == "Schedule":
        for actor in resource.get("actor") or []:
            yield from _reference("actor", actor)
        yield from _codeable("service-type", resource.get("serviceType"))
    elif resource_type == "Slot":
        yield from _reference("schedule", resource.get("schedule"))
        yield from _codeable("service-type", resource.get("serviceType"))
    elif resource_type == "Appointment":
        for participant in resource.get("participant") or []:
            yield from _reference("actor", participant.get("actor"))
        for slot in resource.get("slot") or []:
            yield from _reference("slot", slot)
        yield from _codeable("service-type", resource.get("serviceType"))
        yield from _codeable("appointment-type", [resource.get("appointmentType")])
    elif resource_type == "PractitionerRole":
        yield from _reference("practitioner", resource.get("practitioner"))


def _reference(param: str, reference: dict[str, Any] | None) -> Iterator[IndexEntry]:
    target = split_reference((reference or {}).get("reference") or "")
    if target is not None:
        yield IndexEntry(param, target[0], target[1])


def _codeable(param: str, concepts: list[dict[str, Any] | None] | None) -> Iterator[IndexEntry]:
    for concept in concepts or []:
        for coding in (concept or {}).get("coding") or []:
            if coding.get("code"):
                yield IndexEntry(param, coding.get("system") or "", coding["code"])
