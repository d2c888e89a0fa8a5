"""SIU resource groups (AIS, AIG, AIL, AIP) to appointment participants and their records.

* AIP (personnel) -> Practitioner. The GMED id is the primary identifier
  (``urn:harmony:gmed:provider|<AIP-3.1>``); a provider crosswalk adds the canonical one (an
  NPI ...) and the appointment points at that, so the Practitioner other sources know is used.
* AIL (location) -> Location. Its GMED id is PL components 1-4 (point of care, room, bed,
  facility namespace) joined by '^' without trailing empties, e.g. '055^Room01^^GH Clinic',
  which is also the key the location crosswalk is looked up by.
* AIG (general resource) -> Device, as HL7 means AIG for equipment; people belong in AIP. A
  sender that puts a person in AIG (Barts does) is handled by a provider crosswalk for that
  AIG-3 id, which makes it a Practitioner. An AIG without AIG-3 becomes a participant with
  only a type (AIG-4), and a note.
* AIS (service) -> Appointment.serviceType, not a participant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from adapters.gmed.codes import concept, system
from adapters.gmed.parser import Segment
from adapters.gmed.timing import AIX_FIELDS, AixTiming, DurationMemo, TimeMemo, aix_timing
from canonical.records import Identifier, SourceRecord, conditional_reference
from mappings.model import Crosswalk, MappingSet

__all__ = ["Actor", "Participation", "Resources", "read_resources"]


@dataclass(slots=True)
class Actor:
    """A Practitioner, Location or Device the appointment uses, with its record."""

    record: SourceRecord
    reference: str
    local_key: str
    """'<ResourceType>/<GMED id>': stable across messages, names its Schedule and Slot."""


@dataclass(slots=True)
class Participation:
    """One AIG/AIL/AIP segment's part in the appointment."""

    actor: Actor | None
    participant: dict[str, Any]
    filler_status: str
    timing: AixTiming


@dataclass(slots=True)
class Resources:
    actors: dict[str, Actor] = field(default_factory=dict)
    participations: list[Participation] = field(default_factory=list)
    service_types: list[dict[str, Any]] = field(default_factory=list)
    timings: list[tuple[Segment, AixTiming]] = field(default_factory=list)
    filler_statuses: list[str] = field(default_factory=list)


def read_resources(
    segments: list[Segment],
    mapping: MappingSet,
    zone: tzinfo,
    notes: list[str],
    memo: TimeMemo,
) -> Resources:
    """Every AIx segment (``siu_resource_segments``), in message order, actors de-duplicated."""
    out = Resources()
    actors, participations, timings = out.actors, out.participations, out.timings
    durations: DurationMemo = {}
    for seg in segments:
        name = seg.name
        timing = aix_timing(seg, zone, memo, durations)
        timings.append((seg, timing))
        status = seg.component(AIX_FIELDS[name][3])
        if status:
            out.filler_statuses.append(status)
        if name == "AIS":
            service = concept(seg.components(3))
            if service is not None and service not in out.service_types:
                out.service_types.append(service)
            continue
        actor, participant = _ACTOR_READERS[name](seg, mapping, notes)
        if actor is not None:
            actor = actors.setdefault(actor.local_key, actor)
            participant["actor"] = {"reference": actor.reference}
        elif "actor" not in participant and "type" not in participant:
            continue
        participations.append(Participation(actor, participant, status, timing))
    return out


_Read = tuple[Actor | None, dict[str, Any]]
"""An AIx segment's actor (None when it names none) and its participant entry so far."""

_PROVIDER_SYSTEM = system("provider")
_LOCATION_SYSTEM = system("location")
_RESOURCE_SYSTEM = system("resource")


def _practitioner(local_id: str, cw: Crosswalk | None, name: dict[str, Any] | None) -> Actor:
    identifiers = [Identifier(_PROVIDER_SYSTEM, local_id)]
    fhir_ids = [{"system": _PROVIDER_SYSTEM, "value": local_id}]
    if cw is not None:
        identifiers.append(Identifier(cw.system, cw.value))
        fhir_ids.append({"system": cw.system, "value": cw.value})
    resource: dict[str, Any] = {"resourceType": "Practitioner", "identifier": fhir_ids}
    if name:
        resource["name"] = [name]
    elif cw is not None and cw.display:
        resource["name"] = [{"text": cw.display}]
    target = identifiers[-1]
    return Actor(
        SourceRecord("Practitioner", identifiers, resource),
        conditional_reference("Practitioner", target.system, target.value),
        f"Practitioner/{local_id}",
    )


def _aip(seg: Segment, mapping: MappingSet, notes: list[str]) -> _Read:
    xcn = seg.components(3, 6)
    participant: dict[str, Any] = {}
    if role := concept(seg.components(4)):
        participant["type"] = [role]
    local_id = xcn[0]
    name: dict[str, Any] = {}
    if family := xcn[1]:
        name["family"] = family
    given = [g for g in (xcn[2], xcn[3]) if g]
    if given:
        name["given"] = given
    if prefix := xcn[5]:
        name["prefix"] = [prefix]
    if not local_id:
        if name:
            text = " ".join([*given, name.get("family", "")]).strip()
            participant["actor"] = {"display": text}
            notes.append(f"AIP-3 {text!r} has no id; the participant is named only")
        return None, participant
    return _practitioner(local_id, mapping.provider(local_id), name or None), participant


def _ail(seg: Segment, mapping: MappingSet, notes: list[str]) -> _Read:
    pl = seg.components(3, 9)
    participant: dict[str, Any] = {}
    parts = pl[:4]
    while parts and not parts[-1]:
        parts.pop()
    if not parts:
        return None, participant
    local_id = "^".join(parts)
    identifiers = [Identifier(_LOCATION_SYSTEM, local_id)]
    fhir_ids = [{"system": _LOCATION_SYSTEM, "value": local_id}]
    cw = mapping.location(local_id)
    if cw is not None:
        identifiers.append(Identifier(cw.system, cw.value))
        fhir_ids.append({"system": cw.system, "value": cw.value})
    label = pl[8] or " / ".join([p for p in (pl[3], pl[6], pl[7], *parts[:3]) if p])
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "identifier": fhir_ids,
        "status": "active",
        "mode": "instance",
        "name": (cw.display if cw and cw.display else label),
    }
    if kind := concept(seg.components(4)):
        resource["type"] = [kind]
    target = identifiers[-1]
    actor = Actor(
        SourceRecord("Location", identifiers, resource),
        conditional_reference("Location", target.system, target.value),
        f"Location/{local_id}",
    )
    return actor, participant


def _aig(seg: Segment, mapping: MappingSet, notes: list[str]) -> _Read:
    local_id, text = seg.components(3, 2)[:2]
    participant: dict[str, Any] = {}
    kind = concept(seg.components(4))
    if kind is not None:
        participant["type"] = [kind]
    if not local_id:
        if kind is not None:
            notes.append(f"AIG-3 is empty; participant kept with its type {kind['text']!r} only")
        return None, participant
    cw = mapping.provider(local_id)
    if cw is not None:
        return _practitioner(local_id, cw, {"text": text} if text else None), participant
    ident = Identifier(_RESOURCE_SYSTEM, local_id)
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [{"system": _RESOURCE_SYSTEM, "value": local_id}],
        "deviceName": [{"name": text or local_id, "type": "user-friendly-name"}],
    }
    if kind is not None:
        resource["type"] = kind
    actor = Actor(
        SourceRecord("Device", [ident], resource),
        conditional_reference("Device", _RESOURCE_SYSTEM, local_id),
        f"Device/{local_id}",
    )
    return actor, participant


_ACTOR_READERS = {"AIP": _aip, "AIL": _ail, "AIG": _aig}
