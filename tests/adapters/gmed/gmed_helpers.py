"""Shared inputs for the GMED adapter tests: fixture files and a mapping set built in code."""

from __future__ import annotations

from pathlib import Path

from mappings.model import MappingContent, MappingSet, TriggerRule

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HL7V2 = sorted((FIXTURES / "hl7v2").glob("*.hl7"))
EDGE = sorted((FIXTURES / "hl7v2_edge").glob("*.hl7"))


def fixture_bytes(name: str) -> bytes:
    for folder in ("hl7v2", "hl7v2_edge"):
        path = FIXTURES / folder / name
        if path.exists():
            return path.read_bytes()
    raise FileNotFoundError(name)


def gmed_mapping(timezone: str | None = None, **extra: object) -> MappingSet:
    """The trigger and status tables the issue describes for GMED."""
    content = MappingContent(
        timezone=timezone,
        trigger_events={
            "S12": TriggerRule(event="booked", status="booked"),
            "S13": TriggerRule(event="rescheduled"),
            "S14": TriggerRule(event="modified"),
            "S15": TriggerRule(event="cancelled", status="cancelled"),
            "S16": TriggerRule(event="discontinued", status="cancelled"),
            "S17": TriggerRule(event="deleted", status="entered-in-error"),
            "S26": TriggerRule(event="noshow", status="noshow"),
            "A04": TriggerRule(event="patient-registered"),
            "A08": TriggerRule(event="patient-updated"),
        },
        status={
            "Booked": "booked",
            "Confirmed": "booked",
            "Scheduled": "booked",
            "Pending": "pending",
            "Waitlist": "waitlist",
            "Cancelled": "cancelled",
            "Dc": "cancelled",
            "Discontinued": "cancelled",
            "Deleted": "entered-in-error",
            "Noshow": "noshow",
            "Complete": "fulfilled",
            "Started": "arrived",
        },
        **extra,  # type: ignore[arg-type]
    )
    return MappingSet(source="gmed", version=1, content=content)
