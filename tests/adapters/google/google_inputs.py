"""Shared inputs for the Google adapter tests: fixtures, mapping set, envelopes, checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.contract import Envelope, IntegrationConfig
from canonical.model import validate
from canonical.records import SourceBundle
from mappings.defaults import load_default
from mappings.model import MappingSet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "google"
INTEGRATION = "gcal"
WEEKDAYS_9_TO_5 = {
    d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
}


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture(name))


def google_mapping() -> MappingSet:
    content = load_default("google")
    assert content is not None
    return MappingSet(source="google", version=1, content=content)


def calendar(
    calendar_id: str = "dr.ada@clinic.example",
    timezone: str = "America/New_York",
    hours: dict[str, list[list[str]]] | None = None,
    slot_minutes: int = 30,
    buffer_minutes: int = 0,
    practitioner: str = "Dr Ada",
) -> dict[str, Any]:
    return {
        "calendar_id": calendar_id,
        "practitioner": practitioner,
        "timezone": timezone,
        "working_hours": WEEKDAYS_9_TO_5 if hours is None else hours,
        "slot_minutes": slot_minutes,
        "buffer_minutes": buffer_minutes,
    }


def wrap(kind: str, body: Any, context: dict[str, Any] | None = None) -> bytes:
    """A stored page as the client writes it."""
    return Envelope(
        integration=INTEGRATION,
        source_type="google",
        kind=kind,
        request=f"GET https://www.googleapis.com/calendar/v3/{kind}",
        body=body,
        context=context or {},
        fetched_at="2025-03-24T12:00:00+00:00",
    ).to_bytes()


def checked(bundle: SourceBundle) -> SourceBundle:
    """Every record passes the canonical store's validation, references come first."""
    seen: set[str] = set()
    for record in bundle.records:
        validate(record.resource_type, record.resource)
        first = record.identifiers[0]
        assert first.system.startswith(f"urn:harmony:{INTEGRATION}:")
        for ref in _references(record.resource):
            if "?identifier=" in ref:
                target = ref.split("?identifier=")[1]
                if not ref.startswith("Patient"):
                    assert f"{ref.split('?')[0]}|{target}" in seen, f"{ref} before its record"
        seen.add(f"{record.resource_type}|{first.system}|{first.value}")
    return bundle


def _references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        for item in value.values():
            found += _references(item)
        return found
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    return []


def config(base_url: str, credentials: dict[str, str], **options: Any) -> IntegrationConfig:
    return IntegrationConfig(INTEGRATION, "google", base_url, credentials, options)
