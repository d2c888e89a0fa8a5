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
from typing import Any, NamedTuple

from adapters.gmed.codes import concept, system
from adapters.gmed.parser import Segment
from adapters.gmed.times import parse_duration
from adapters.gmed.timing import (
    AIX_FIELDS,
    AixTiming,
    DurationMemo,
    TimeMemo,
    aix_timing,
    read_time,
)
from canonical.records import Identifier, SourceRecord, conditional_reference
from mappings.model import Crosswalk, MappingSet

__all__ = ["Actor", "Participation", "Resources", "read_resources"]


class Actor(NamedTuple):
    """A Practitioner, Location or Device the appointment uses, with its record.

    Named tuples (as Participation), made with ``_new``: a few per message.
    """

    record: SourceRecord
    reference: str
    local_key: str
    """'<ResourceType>/<GMED id>': stable across messages, names its Schedule and Slot."""


class Participation(NamedTuple):
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
    """Every AIx segment (``siu_resource_segments``), in message order, actors de-duplicated.

    A plain segment (no repetition, escape, subcomponent or null: nearly all of them) is read
    straight from its split fields, in one place, instead of through several accessor calls;
    the values are those ``component`` / ``components`` / ``aix_timing`` give.
    """
    out = Resources()
    actors, participations, timings = out.actors, out.participations, out.timings
    statuses, service_types = out.filler_statuses, out.service_types
    durations: DurationMemo = {}
    cs = segments[0].separators.component if segments else "^"  # one message's segments
    for seg in segments:
        name = seg.name
        start_f, dur_f, unit_f, status_f = AIX_FIELDS[name]
        width = _WIDTH[name]
        fields = seg.plain_fields()
        if fields is None:
            timing = aix_timing(seg, zone, memo, durations)
            status = seg.component(status_f)
            c3 = seg.components(3, width)
            c4 = seg.components(4)
        else:
            n = len(fields)
            text = fields[start_f].partition(cs)[0] if start_f < n else ""
            start = (memo.get(text) or read_time(text, zone, memo)) if text else None
            amount = fields[dur_f].partition(cs)[0] if dur_f < n else ""
            duration = None
            if amount:  # parse_duration reads no units without an amount
                unit = fields[unit_f] if unit_f < n else ""
                unit_code, _, unit_rest = unit.partition(cs)
                unit_text = unit_rest.partition(cs)[0]
                key = (amount, unit_code, unit_text)
                if key in durations:
                    duration = durations[key]
                else:
                    duration = durations[key] = parse_duration(amount, unit_code, unit_text)
            end = start.utc + duration if start is not None and duration is not None else None
            timing = _new(AixTiming, (start, duration, end))
            status = fields[status_f].partition(cs)[0] if status_f < n else ""
            text = fields[3] if n > 3 else ""
            if text:
                c3 = text.split(cs)
                if len(c3) < width:
                    c3 += [""] * (width - len(c3))
            else:
                c3 = [""] * width
            text = fields[4] if n > 4 else ""
            c4 = text.split(cs) if text else []
        timings.append((seg, timing))
        if status:
            statuses.append(status)
        if name == "AIS":
            service = concept(c3)
            if service is not None and service not in service_types:
                service_types.append(service)
            continue
        actor, participant = _ACTOR_READERS[name](c3, c4, mapping, notes)
        if actor is not None:
            actor = actors.setdefault(actor.local_key, actor)
            participant["actor"] = {"reference": actor.reference}
        elif "actor" not in participant and "type" not in participant:
            continue
        participations.append(_new(Participation, (actor, participant, status, timing)))
    return out


_WIDTH = {"AIS": 0, "AIP": 6, "AIL": 9, "AIG": 2}
"""How many components of field 3 (the resource) each reader uses."""


_new = tuple.__new__
"""``Identifier(system, value)`` and the like as ``_new(Identifier, (system, value))``: the
same named tuple without the Python frame of its ``__new__``."""

_Read = tuple[Actor | None, dict[str, Any]]
"""An AIx segment's actor (None when it names none) and its participant entry so far.

Readers get field 3 (padded to its ``_WIDTH``) and field 4 as ``Segment.components`` gives
them."""

_PROVIDER_SYSTEM = system("provider")
_LOCATION_SYSTEM = system("location")
_RESOURCE_SYSTEM = system("resource")


def _practitioner(local_id: str, cw: Crosswalk | None, name: dict[str, Any] | None) -> Actor:
    identifiers = [_new(Identifier, (_PROVIDER_SYSTEM, local_id))]
    fhir_ids = [{"system": _PROVIDER_SYSTEM, "value": local_id}]
    if cw is not None:
        identifiers.append(_new(Identifier, (cw.system, cw.value)))
        fhir_ids.append({"system": cw.system, "value": cw.value})
    resource: dict[str, Any] = {"resourceType": "Practitioner", "identifier": fhir_ids}
    if name:
        resource["name"] = [name]
    elif cw is not None and cw.display:
        resource["name"] = [{"text": cw.display}]
    target = identifiers[-1]
    return _new(
        Actor,
        (
            SourceRecord("Practitioner", identifiers, resource),
            conditional_reference("Practitioner", target.system, target.value),
            f"Practitioner/{local_id}",
        ),
    )


def _aip(xcn: list[str], f4: list[str], mapping: MappingSet, notes: list[str]) -> _Read:
    participant: dict[str, Any] = {}
    if role := concept(f4):
        participant["type"] = [role]
    local_id = xcn[0]
    name: dict[str, Any] = {}
    if family := xcn[1]:
        name["family"] = family
    given = list(filter(None, (xcn[2], xcn[3])))
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


def _ail(pl: list[str], f4: list[str], mapping: MappingSet, notes: list[str]) -> _Read:
    participant: dict[str, Any] = {}
    parts = pl[:4]
    while parts and not parts[-1]:
        parts.pop()
    if not parts:
        return None, participant
    local_id = "^".join(parts)
    identifiers = [_new(Identifier, (_LOCATION_SYSTEM, local_id))]
    fhir_ids = [{"system": _LOCATION_SYSTEM, "value": local_id}]
    cw = mapping.location(local_id)
    if cw is not None:
        identifiers.append(_new(Identifier, (cw.system, cw.value)))
        fhir_ids.append({"system": cw.system, "value": cw.value})
    label = pl[8] or " / ".join(filter(None, (pl[3], pl[6], pl[7], *parts[:3])))
    resource: dict[str, Any] = {
        "resourceType": "Location",
        "identifier": fhir_ids,
        "status": "active",
        "mode": "instance",
        "name": (cw.display if cw and cw.display else label),
    }
    if kind := concept(f4):
        resource["type"] = [kind]
    target = identifiers[-1]
    actor = _new(
        Actor,
        (
            SourceRecord("Location", identifiers, resource),
            conditional_reference("Location", target.system, target.value),
            f"Location/{local_id}",
        ),
    )
    return actor, participant


def _aig(ei: list[str], f4: list[str], mapping: MappingSet, notes: list[str]) -> _Read:
    local_id, text = ei[:2]
    participant: dict[str, Any] = {}
    kind = concept(f4)
    if kind is not None:
        participant["type"] = [kind]
    if not local_id:
        if kind is not None:
            notes.append(f"AIG-3 is empty; participant kept with its type {kind['text']!r} only")
        return None, participant
    cw = mapping.provider(local_id)
    if cw is not None:
        return _practitioner(local_id, cw, {"text": text} if text else None), participant
    ident = _new(Identifier, (_RESOURCE_SYSTEM, local_id))
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "identifier": [{"system": _RESOURCE_SYSTEM, "value": local_id}],
        "deviceName": [{"name": text or local_id, "type": "user-friendly-name"}],
    }
    if kind is not None:
        resource["type"] = kind
    actor = _new(
        Actor,
        (
            SourceRecord("Device", [ident], resource),
            conditional_reference("Device", _RESOURCE_SYSTEM, local_id),
            f"Device/{local_id}",
        ),
    )
    return actor, participant


_ACTOR_READERS = {"AIP": _aip, "AIL": _ail, "AIG": _aig}
