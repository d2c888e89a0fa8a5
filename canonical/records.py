"""What an adapter hands to the canonical store: source-shaped facts already in FHIR form.

Adapters do not know canonical ids. A record that points at another record of the same
bundle uses a FHIR conditional reference, ``"Practitioner?identifier=<system>|<value>"``,
exactly as in a FHIR transaction Bundle; the repository resolves it to ``Practitioner/<id>``.
Records are listed so that every referenced record comes before the records that use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple


def conditional_reference(resource_type: str, system: str, value: str) -> str:
    """A reference the repository resolves through the identifier table."""
    return f"{resource_type}?identifier={system}|{value}"


class Identifier(NamedTuple):
    """An identifier system and value; a tuple because adapters make a dozen per message."""

    system: str
    value: str


@dataclass(slots=True)
class SourceRecord:
    """One resource as a source describes it.

    ``identifiers[0]`` is the source's own primary id (the upsert key, with ``source_system``);
    every identifier, primary or not, finds the record later. ``resource`` is FHIR R4 JSON
    without ``id`` and ``meta``; the repository adds both. ``original_time_text`` keeps the
    source's own time text (an HL7 TS without offset, say) next to the UTC value we derived.
    """

    resource_type: str
    identifiers: list[Identifier]
    resource: dict[str, Any]
    original_time_text: str | None = None
    if_missing: bool = False
    """A stand-in (a Practitioner known only by id on a slot page, say) for a record another
    page describes in full: created when missing, never written over."""


@dataclass(slots=True)
class Provenance:
    """Where a record version came from; stored beside every version."""

    source_system: str
    message_id: int | None
    mapping_version: str | None
    received_at: datetime


@dataclass(slots=True)
class SourceBundle:
    """Everything one inbound message says, plus facts worth reporting but not storing."""

    records: list[SourceRecord] = field(default_factory=list)
    event: str = ""
    """A short name for what happened (``booked``, ``rescheduled``, ``cancelled`` ...)."""
    notes: list[str] = field(default_factory=list)
    unmapped: list[tuple[str, str]] = field(default_factory=list)
    """(table, code) pairs the mapping set did not know; reported, not fatal."""
