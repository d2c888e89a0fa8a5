"""The canonical resources: which FHIR R4 types we store and what makes one acceptable.

fhir.resources checks structure and datatypes but not required code lists, so the statuses
and other bound codes the scheduling flow depends on are checked here as well. The common
Slot and Schedule shapes skip the R4B model when fast_validation vouches for them.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from canonical import fast_validation
from canonical.errors import InvalidResource

SUPPORTED_TYPES: tuple[str, ...] = (
    "Schedule",
    "Slot",
    "Appointment",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Device",
)

APPOINTMENT_STATUS = frozenset(
    {
        "proposed",
        "pending",
        "booked",
        "arrived",
        "fulfilled",
        "cancelled",
        "noshow",
        "entered-in-error",
        "checked-in",
        "waitlist",
    }
)
SLOT_STATUS = frozenset({"busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"})
PARTICIPANT_REQUIRED = frozenset({"required", "optional", "information-only"})
PARTICIPATION_STATUS = frozenset({"accepted", "declined", "tentative", "needs-action"})
GENDER = frozenset({"male", "female", "other", "unknown"})
LOCATION_STATUS = frozenset({"active", "suspended", "inactive"})
LOCATION_MODE = frozenset({"instance", "kind"})
DEVICE_STATUS = frozenset({"active", "inactive", "entered-in-error", "unknown"})
IDENTIFIER_USE = frozenset({"usual", "official", "temp", "secondary", "old"})
# R4 app-3: only these appointment statuses may leave start and end out.
UNTIMED_APPOINTMENT_STATUS = frozenset({"proposed", "cancelled", "waitlist"})

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_REFERENCE_RE = re.compile(
    r"^(?:.*/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$"
)


def is_valid_id(value: str) -> bool:
    """FHIR ids are short and URL-safe; anything else cannot name a stored resource."""
    return bool(_ID_RE.match(value))


def split_reference(reference: str) -> tuple[str, str] | None:
    """``Type/id`` (relative, absolute or versioned) to ``(type, id)``; None for other forms."""
    match = _REFERENCE_RE.match(reference)
    if match is None:
        return None
    return match.group("type"), match.group("id")


def content_hash(resource: dict[str, Any]) -> str:
    """A stable digest of a resource's content without ``id`` and ``meta``.

    Equal digests mean an upsert changes nothing, so validation and a new version are skipped.
    orjson with sorted keys: the stdlib encoder cost a tenth of a sync (see same_content).
    """
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return hashlib.sha256(orjson.dumps(body, option=_HASH_OPTIONS)).hexdigest()


_HASH_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def legacy_content_hash(resource: dict[str, Any]) -> str:
    """The digest rows written before content_hash used orjson carry (stdlib JSON text)."""
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def same_content(stored_hash: str, digest: str, resource: dict[str, Any]) -> bool:
    """Whether a stored row with ``stored_hash`` holds ``resource`` (digest: its content_hash).

    The two encoders agree on almost every resource; where they do not (some floats), a row
    of the old digest is still recognised as unchanged instead of getting a new version.
    """
    return stored_hash == digest or stored_hash == legacy_content_hash(resource)


@lru_cache(maxsize=4096)
def parse_instant(value: str | None) -> datetime | None:
    """A FHIR instant/dateTime with offset as an aware UTC datetime (None if absent).

    Cached: a write checks and indexes each time twice, and a slot's end is the next's start.
    """
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidResource(f"{value!r} is not a FHIR instant") from exc
    if parsed.tzinfo is None:
        raise InvalidResource(f"instant {value!r} has no timezone offset")
    return parsed.astimezone(UTC)


def validate(resource_type: str, resource: dict[str, Any]) -> None:
    """Raise InvalidResource unless ``resource`` is a valid canonical ``resource_type``."""
    if resource_type not in SUPPORTED_TYPES:
        raise InvalidResource(f"resource type {resource_type!r} is not stored by Harmony")
    declared = resource.get("resourceType")
    if declared != resource_type:
        raise InvalidResource(f"resourceType is {declared!r}, expected {resource_type!r}")
    if not fast_validation.surely_valid(resource_type, resource):
        try:
            get_fhir_model_class(resource_type).model_validate(resource)
        except ValidationError as exc:
            raise InvalidResource(f"invalid {resource_type}: {_summarize(exc)}") from exc
    _check_identifiers(resource_type, resource)
    _CODE_CHECKS[resource_type](resource)


def _summarize(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _require(value: Any, allowed: frozenset[str], where: str, optional: bool = True) -> None:
    if value is None and optional:
        return
    if value not in allowed:
        raise InvalidResource(f"{where} is {value!r}; expected one of {', '.join(sorted(allowed))}")


def _check_identifiers(resource_type: str, resource: dict[str, Any]) -> None:
    for i, ident in enumerate(resource.get("identifier") or []):
        _require(ident.get("use"), IDENTIFIER_USE, f"{resource_type}.identifier[{i}].use")


def _check_period(resource_type: str, resource: dict[str, Any]) -> None:
    start = parse_instant(resource.get("start"))
    end = parse_instant(resource.get("end"))
    if start and end and end < start:
        raise InvalidResource(f"{resource_type}.end {resource['end']} is before start")


def _check_appointment(resource: dict[str, Any]) -> None:
    status = resource.get("status")
    _require(status, APPOINTMENT_STATUS, "Appointment.status", optional=False)
    has_start, has_end = "start" in resource, "end" in resource
    if has_start != has_end:
        raise InvalidResource("Appointment needs both start and end, or neither (app-2)")
    if not has_start and status not in UNTIMED_APPOINTMENT_STATUS:
        raise InvalidResource(f"a {status} Appointment needs start and end (app-3)")
    _check_period("Appointment", resource)
    if not resource.get("participant"):
        raise InvalidResource("Appointment needs at least one participant")
    for i, participant in enumerate(resource.get("participant") or []):
        where = f"Appointment.participant[{i}]"
        _require(participant.get("required"), PARTICIPANT_REQUIRED, f"{where}.required")
        _require(participant.get("status"), PARTICIPATION_STATUS, f"{where}.status", False)


def _check_slot(resource: dict[str, Any]) -> None:
    _require(resource.get("status"), SLOT_STATUS, "Slot.status", optional=False)
    _check_period("Slot", resource)


def _check_schedule(resource: dict[str, Any]) -> None:
    if not resource.get("actor"):
        raise InvalidResource("Schedule needs at least one actor")


def _check_person(resource_type: str) -> Any:
    def check(resource: dict[str, Any]) -> None:
        _require(resource.get("gender"), GENDER, f"{resource_type}.gender")

    return check


def _check_practitioner_role(resource: dict[str, Any]) -> None:
    if not resource.get("practitioner"):
        raise InvalidResource("PractitionerRole needs the practitioner who fills it")


def _check_location(resource: dict[str, Any]) -> None:
    _require(resource.get("status"), LOCATION_STATUS, "Location.status")
    _require(resource.get("mode"), LOCATION_MODE, "Location.mode")


def _check_device(resource: dict[str, Any]) -> None:
    _require(resource.get("status"), DEVICE_STATUS, "Device.status")


_CODE_CHECKS = {
    "Appointment": _check_appointment,
    "Slot": _check_slot,
    "Schedule": _check_schedule,
    "Patient": _check_person("Patient"),
    "Practitioner": _check_person("Practitioner"),
    "PractitionerRole": _check_practitioner_role,
    "Location": _check_location,
    "Device": _check_device,
}


def status_of(resource: dict[str, Any]) -> str | None:
    """The status column value (Appointment, Slot, Location, Device; None elsewhere)."""
    status = resource.get("status")
    return status if isinstance(status, str) else None
