"""athena departments, providers and appointments to canonical records.

Every record's primary identifier is athena's own id under the integration's system
(``urn:harmony:<integration>:departmentid|1``). A ``Records`` collects one page's records by
kind and primary id, so an id athena repeats (a booked list can hold the same appointment
twice) becomes one record, and lists them referenced records first.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from adapters.athena.values import number, text
from adapters.contract import source_system
from canonical.errors import RejectedInput
from canonical.records import Identifier, SourceRecord, conditional_reference
from mappings.model import MappingSet

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
_GENDER = {"m": "male", "f": "female", "male": "male", "female": "female"}
_ORDER = ("Location", "Practitioner", "Patient", "Schedule", "Slot", "Appointment")


class MissingField(RejectedInput):
    """An athena object lacks a field without which it cannot become a record."""


def required(item: dict[str, Any], name: str, what: str) -> str:
    value = text(item.get(name))
    if not value:
        raise MissingField(f"athena {what} without {name}: {_short(item)}")
    return value


def _short(item: dict[str, Any]) -> str:
    shown = ", ".join(f"{k}={item[k]!r}" for k in list(item)[:6])
    return "{" + shown + ("" if len(item) <= 6 else ", ...") + "}"


@dataclass
class Records:
    """One page's records, de-duplicated by kind and primary identifier."""

    integration: str
    by_kind: dict[str, dict[str, SourceRecord]] = field(default_factory=dict)

    def system(self, kind: str) -> str:
        return source_system(self.integration, kind)

    def add(self, record: SourceRecord) -> str:
        """Keep ``record`` (a later one with the same id replaces it); returns its reference."""
        first = record.identifiers[0]
        self.by_kind.setdefault(record.resource_type, {})[first.value] = record
        return conditional_reference(record.resource_type, first.system, first.value)

    def ordered(self) -> list[SourceRecord]:
        return [r for kind in _ORDER for r in self.by_kind.get(kind, {}).values()]


def _identified(
    resource_type: str,
    ids: list[Identifier],
    body: dict[str, Any],
    time_text: str | None = None,
    *,
    stand_in: bool = False,
) -> SourceRecord:
    """``stand_in``: named in passing (by id only), so it must not overwrite the full record."""
    resource = {
        "resourceType": resource_type,
        "identifier": [{"system": i.system, "value": i.value} for i in ids],
        **body,
    }
    return SourceRecord(
        resource_type, ids, resource, original_time_text=time_text, if_missing=stand_in
    )


def location(records: Records, item: dict[str, Any], mapping: MappingSet) -> str:
    """A department as a Location; a bare one (only the id) when a page names it in passing."""
    departmentid = required(item, "departmentid", "department")
    ids = [Identifier(records.system("departmentid"), departmentid)]
    if (walk := mapping.location(departmentid)) is not None:
        ids.append(Identifier(walk.system, walk.value))
    body: dict[str, Any] = {"status": "active", "mode": "instance"}
    name = text(item.get("patientdepartmentname")) or text(item.get("name"))
    if name:
        body["name"] = name
    if (alias := text(item.get("name"))) and alias != name:
        body["alias"] = [alias]
    telecom = [
        {"system": kind, "value": text(item.get(key)), "use": "work"}
        for key, kind in (("phone", "phone"), ("fax", "fax"))
        if text(item.get(key))
    ]
    if telecom:
        body["telecom"] = telecom
    lines = [text(item.get(k)) for k in ("address", "address2") if text(item.get(k))]
    address = {
        k: v
        for k, v in (
            ("line", lines),
            ("city", text(item.get("city"))),
            ("state", text(item.get("state"))),
            ("postalCode", text(item.get("zip"))),
        )
        if v
    }
    if address:
        body["address"] = {"use": "work", **address}
    with contextlib.suppress(KeyError, ValueError):
        body["position"] = {
            "latitude": float(text(item["latitude"])),
            "longitude": float(text(item["longitude"])),
        }
    bare = set(item) <= {"departmentid"}
    return records.add(_identified("Location", ids, body, stand_in=bare))


def practitioner(records: Records, item: dict[str, Any], mapping: MappingSet) -> str:
    """A provider as a Practitioner, with its NPI and any crosswalked id after athena's id."""
    providerid = required(item, "providerid", "provider")
    ids = [Identifier(records.system("providerid"), providerid)]
    if npi := text(item.get("npi")):
        ids.append(Identifier(NPI_SYSTEM, npi))
    if (walk := mapping.provider(providerid)) is not None:
        ids.append(Identifier(walk.system, walk.value))
    body: dict[str, Any] = {}
    if "billable" in item or "firstname" in item:
        body["active"] = True
    family, given = text(item.get("lastname")), text(item.get("firstname"))
    display = text(item.get("displayname"))
    if family or given or display:
        name: dict[str, Any] = {"use": "official"}
        if family:
            name["family"] = family
        if given:
            name["given"] = [given]
        if display:
            name["text"] = display
        body["name"] = [name]
    if gender := _GENDER.get(text(item.get("sex")).lower()):
        body["gender"] = gender
    bare = set(item) <= {"providerid"}
    return records.add(_identified("Practitioner", ids, body, stand_in=bare))


def patient(records: Records, patientid: str) -> str:
    ids = [Identifier(records.system("patientid"), patientid)]
    return records.add(_identified("Patient", ids, {}, stand_in=True))


def schedule(records: Records, departmentid: str, providerid: str, actors: list[str]) -> str:
    """The Schedule of one provider in one department (athena books per both)."""
    key = f"{departmentid}/{providerid or 'department'}"
    ids = [Identifier(records.system("schedule"), key)]
    body = {"active": True, "actor": [{"reference": ref} for ref in actors]}
    return records.add(_identified("Schedule", ids, body))


def appointment_type(
    records: Records, item: dict[str, Any], mapping: MappingSet, unmapped: list[tuple[str, str]]
) -> dict[str, Any] | None:
    """athena's type id and name, plus the mapping set's coding when it has one."""
    typeid = text(item.get("appointmenttypeid"))
    name = text(item.get("patientappointmenttypename")) or text(item.get("appointmenttype"))
    if not typeid and not name:
        return None
    codings: list[dict[str, Any]] = []
    if typeid:
        own = {"system": records.system("appointmenttypeid"), "code": typeid}
        if name:
            own["display"] = name
        codings.append(own)
        mapped = mapping.appointment_type(typeid)
        if mapped is None and name:
            mapped = mapping.appointment_type(name)
        if mapped is None:
            unmapped.append(("appointment_types", typeid))
        else:
            codings.insert(0, mapped.model_dump(exclude_none=True))
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    if name:
        concept["text"] = name
    return concept


def minutes_of(item: dict[str, Any], what: str) -> int:
    minutes = number(item.get("duration"))
    if minutes is None or minutes <= 0:
        raise MissingField(f"athena {what} without a usable duration: {_short(item)}")
    return minutes
