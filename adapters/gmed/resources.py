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

from adapters.gmed.codes import codeable, system
from adapters.gmed.parser import ResourceGroup, ResourceItem
from adapters.gmed.timing import AIX_FIELDS, AixTiming, TimeMemo, aix_timing
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
    timings: list[tuple[ResourceItem, AixTiming]] = field(default_factory=list)
    filler_statuses: list[str] = field(default_factory=list)


def read_resources(
    groups: list[ResourceGroup],
    mapping: MappingSet,
    zone: tzinfo,
    notes: list[str],
    memo: TimeMemo,
) -> Resources:
    """Every AIx segment of every RGS group, in message order, actors de-duplicated."""
    out = Resources()
    for group in groups:
        for item in group.items:
            seg = item.segment
            timing = aix_timing(item, zone, memo)
            out.timings.append((item, timing))
            status = seg.component(AIX_FIELDS[seg.name][3])
            if status:
                out.filler_statuses.append(status)
            if seg.name == "AIS":
                concept = codeable(seg.repetition(3))
                if concept is not None and concept not in out.service_types:
                    out.service_types.append(concept)
                continue
            actor, participant = _ACTOR_READERS[seg.name](item, mapping, notes)
            if actor is not None:
                actor = out.actors.setdefault(actor.local_key, actor)
                participant["actor"] = {"reference": actor.reference}
            if "actor" not in participant and "type" not in participant:
                continue
            out.participations.append(Participation(actor, participant, status, timing))
    return out


def _practitioner(local_id: str, cw: Crosswalk | None, name: dict[str, Any] | None) -> Actor:
    local = Identifier(system("provider"), local_id)
    identifiers = [local] + ([Identifier(cw.system, cw.value)] if cw else [])
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "identifier": [{"system": i.system, "value": i.value} for i in identifiers],
    }
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


def _aip(
    item: ResourceItem, mapping: MappingSet, notes: list[str]
) -> tuple[Actor | None, dict[str, Any]]:
    seg = item.segment
    xcn = seg.repetition(3)
    participant: dict[str, Any] = {}
    if role := codeable(seg.repetition(4)):
        participant["type"] = [role]
    local_id = xcn.component(1)
    name: dict[str, Any] = {}
    if family := xcn.component(2, 1):
        name["family"] = family
    given = [g for g in (xcn.component(3), xcn.component(4)) if g]
    if given:
        name["given"] = given
    if prefix := xcn.component(6):
        name["prefix"] = [prefix]
    if not local_id:
        if name:
            text = " ".join([*given, name.get("family", "")]).strip()
            participant["actor"] = {"display": text}
            notes.append(f"AIP-3 {text!r} has no id; the participant is named only")
        return None, participant
    return _practitioner(local_id, mapping.provider(local_id), name or None), participant


def _ail(
    item: ResourceItem, mapping: MappingSet, notes: list[str]
) -> tuple[Actor | None, dict[str, Any]]:
    seg = item.segment
    pl = seg.repetition(3)
    participant: dict[str, Any] = {}
    parts = [pl.component(1), pl.component(2), pl.component(3), pl.component(4, 1)]
    while parts and not parts[-1]:
        parts.pop()
    if not parts:
        return None, participant
    local_id = "^".join(parts)
    local = Identifier(system("location"), local_id)
    cw = mapping.location(local_id)
    identifiers = [local] + ([Identifier(cw.system, cw.value)] if cw else [])
    label = pl.component(9) or " / ".join(
        p for p in (pl.component(4, 1), pl.component(7), pl.component(8), *parts[:3]) if p
    )
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "identifier": [{"system": i.system, "value": i.value} for i in identifiers],
        "status": "active",
        "mode": "instance",
        "name": (cw.display if cw and cw.display else label),
    }
    if kind := codeable(seg.repetition(4)):
        resource["type"] = [kind]
    target = identifiers[-1]
    actor = Actor(
        SourceRecord("Location", identifiers, resource),
        conditional_reference("Location", target.system, target.value),
        f"Location/{local_id}",
    )
    return actor, participant


def _aig(
    item: ResourceItem, mapping: MappingSet, notes: list[str]
) -> tuple[Actor | None, dict[str, Any]]:
    seg = item.segment
    ce = seg.repetition(3)
    participant: dict[str, Any] = {}
    kind = codeable(seg.repetition(4))
    if kind is not None:
        participant["type"] = [kind]
    local_id, text = ce.component(1), ce.component(2)
    if not local_id:
        if kind is not None:
            notes.append(f"AIG-3 is empty; participant kept with its type {kind['text']!r} only")
        return None, participant
    cw = mapping.provider(local_id)
    if cw is not None:
        return _practitioner(local_id, cw, {"text": text} if text else None), participant
    ident = Identifier(system("resource"), local_id)
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [{"system": ident.system, "value": local_id}],
        "deviceName": [{"name": text or local_id, "type": "user-friendly-name"}],
    }
    if kind is not None:
        resource["type"] = kind
    actor = Actor(
        SourceRecord("Device", [ident], resource),
        conditional_reference("Device", ident.system, ident.value),
        f"Device/{local_id}",
    )
    return actor, participant


_ACTOR_READERS = {"AIP": _aip, "AIL": _ail, "AIG": _aig}
