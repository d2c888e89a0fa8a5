"""Shared inputs for the athena tests: fixtures, a mapping set built in code, a config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from adapters.athena.normalize import normalize_bytes
from adapters.contract import IntegrationConfig, envelope
from canonical.model import validate
from canonical.records import SourceBundle
from mappings.model import MappingContent, MappingSet

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "athena"
INTEGRATION = "athena-main"
TIMEZONE = "America/New_York"
STATUSES = {
    "f": "booked",
    "x": "cancelled",
    "2": "checked-in",
    "3": "fulfilled",
    "4": "fulfilled",
}


def athena_mapping(**extra: Any) -> MappingSet:
    """The athena appointmentstatus codes and their FHIR statuses."""
    return MappingSet(
        source="athena", version=1, content=MappingContent(status=dict(STATUSES), **extra)
    )


def config(base_url: str = "http://athena.invalid", **options: Any) -> IntegrationConfig:
    return IntegrationConfig(
        name=INTEGRATION,
        source_type="athena",
        base_url=base_url,
        credentials={"client_id": "sandbox-client", "client_secret": "sandbox-secret"},
        options={"practiceid": "195900", **options},
    )


def fixture_body(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def stored(kind: str, body: Any, **context: Any) -> bytes:
    """A page as the message store keeps it."""
    cfg = config()
    return envelope(cfg, kind, "GET /test", body, {**cfg.options, **context}).to_bytes()


def normalized(
    kind: str, body: Any, mapping: MappingSet | None = None, **context: Any
) -> SourceBundle:
    """Normalize and check every record the way the canonical store will."""
    bundle = normalize_bytes(stored(kind, body, **context), mapping or athena_mapping(), TIMEZONE)
    for record in bundle.records:
        validate(record.resource_type, record.resource)
    return bundle


def of_type(bundle: SourceBundle, resource_type: str) -> list[dict[str, Any]]:
    return [r.resource for r in bundle.records if r.resource_type == resource_type]
