"""A mapping set: the code tables and crosswalks one source's messages are read through.

Adapters call the lookups below; a lookup that must succeed raises ``UnmappedCode`` so the
hub parks the message with a reason an integration engineer can act on (add the code,
activate the new version, replay).
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from canonical.errors import RejectedInput
from canonical.model import APPOINTMENT_STATUS

APPOINTMENT_STATUSES = APPOINTMENT_STATUS
"""FHIR R4 Appointment.status; fhir.resources does not enforce it, so mapping sets do."""


def _check_status(value: str) -> str:
    if value not in APPOINTMENT_STATUSES:
        raise ValueError(
            f"{value!r} is not a FHIR R4 Appointment status "
            f"(one of {', '.join(sorted(APPOINTMENT_STATUSES))})"
        )
    return value


AppointmentStatus = Annotated[str, AfterValidator(_check_status)]


class UnmappedCode(RejectedInput):
    """A code the active mapping set does not translate."""

    def __init__(self, source: str, table: str, code: str, version_label: str) -> None:
        self.source, self.table, self.code, self.version_label = source, table, code, version_label
        super().__init__(
            f"unmapped {table} code {code!r} for source {source!r} in mapping set "
            f"{version_label}; add it, activate the new version and replay"
        )


class Coding(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: str | None = None
    code: str
    display: str | None = None


class Crosswalk(BaseModel):
    """A source's local id mapped to a canonical identifier (an NPI, a location code ...)."""

    model_config = ConfigDict(frozen=True)

    system: str
    value: str
    display: str | None = None


class TriggerRule(BaseModel):
    """What a trigger event means: the domain event name and, if it decides it, the status."""

    model_config = ConfigDict(frozen=True)

    event: str
    status: AppointmentStatus | None = None
    """None: the status comes from the source's filler status code (SCH-25) mapping."""


class MappingContent(BaseModel):
    """The editable body of a mapping set version, as stored and as shipped in defaults/."""

    model_config = ConfigDict(extra="forbid")

    timezone: str | None = None
    trigger_events: dict[str, TriggerRule] = Field(default_factory=dict)
    status: dict[str, AppointmentStatus] = Field(default_factory=dict)
    appointment_types: dict[str, Coding] = Field(default_factory=dict)
    providers: dict[str, Crosswalk] = Field(default_factory=dict)
    locations: dict[str, Crosswalk] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @field_validator("trigger_events")
    @classmethod
    def _upper_triggers(cls, value: dict[str, TriggerRule]) -> dict[str, TriggerRule]:
        # MappingSet.trigger looks events up upper-cased; a lower-case key would never match.
        upper = {k.strip().upper(): v for k, v in value.items()}
        if len(upper) != len(value):
            raise ValueError("trigger event keys differ only by case or spaces")
        return upper

    @field_validator("status")
    @classmethod
    def _status_values(cls, value: dict[str, str]) -> dict[str, str]:
        # Keys match case-insensitively, so two spellings must not disagree.
        seen: dict[str, tuple[str, str]] = {}
        for key, status in value.items():
            folded = key.strip().casefold()
            if not folded:
                raise ValueError("empty status code key")
            if folded in seen and seen[folded][1] != status:
                raise ValueError(
                    f"status keys {seen[folded][0]!r} and {key!r} match the same code "
                    f"but map to {seen[folded][1]!r} and {status!r}"
                )
            seen[folded] = (key, status)
        return value


class MappingSet(BaseModel):
    """One version of one source's mappings, ready for lookups."""

    model_config = ConfigDict(frozen=True)

    source: str
    version: int
    content: MappingContent

    @property
    def label(self) -> str:
        return f"{self.source}@v{self.version}"

    def zone(self, default_timezone: str) -> ZoneInfo:
        """The source's timezone, else the hub's configured default."""
        return ZoneInfo(self.content.timezone or default_timezone)

    def trigger(self, trigger_event: str) -> TriggerRule:
        rule = self.content.trigger_events.get(trigger_event.upper())
        if rule is None:
            raise UnmappedCode(self.source, "trigger_events", trigger_event, self.label)
        return rule

    def status(self, code: str) -> str:
        """Filler status (SCH-25 and the like) to a FHIR Appointment status; case-insensitive."""
        found = self._status_folded.get(code.strip().casefold())
        if found is None:
            raise UnmappedCode(self.source, "status", code, self.label)
        return found

    def appointment_type(self, code: str) -> Coding | None:
        """Exact key first, then case-insensitive; None lets the adapter keep the text."""
        found = self.content.appointment_types.get(code)
        if found is None:
            found = self._types_folded.get(code.strip().casefold())
        return found

    def provider(self, local_id: str) -> Crosswalk | None:
        return self.content.providers.get(local_id)

    def location(self, local_id: str) -> Crosswalk | None:
        return self.content.locations.get(local_id)

    # Versions are immutable, so the folded tables are built once per MappingSet object.
    @cached_property
    def _status_folded(self) -> dict[str, str]:
        return {k.strip().casefold(): v for k, v in self.content.status.items()}

    @cached_property
    def _types_folded(self) -> dict[str, Coding]:
        return {k.strip().casefold(): v for k, v in self.content.appointment_types.items()}
