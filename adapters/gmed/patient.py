"""PID to a FHIR Patient record.

Implausible birth dates (before 1850 or in the future, e.g. VINAH's '10131113') and gender
codes outside HL7 table 0001 are left out with a note rather than rejecting the message: a
wrong demographic must not block the appointment behind it. An explicit null ``""`` and an
empty field both leave the element out; records are complete replacements, so the value is
cleared either way.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from adapters.gmed.codes import system
from adapters.gmed.parser import Repetition, Segment, Separators
from canonical.records import Identifier, SourceRecord

__all__ = ["patient_record"]

_new = tuple.__new__
"""``Identifier(system, value)`` without the Python frame of the named tuple's ``__new__``."""

_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "U": "unknown", "N": "unknown"}
_NAME_USE = {
    "L": "official",
    "D": "usual",
    "M": "maiden",
    "N": "nickname",
    "S": "anonymous",
    "T": "temp",
    "U": "old",
}
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def patient_record(pid: Segment, notes: list[str]) -> SourceRecord | None:
    """The Patient PID describes; None (with a note) when PID-3 holds no identifier."""
    identifiers: list[Identifier] = []
    fhir_ids: list[dict[str, Any]] = []
    seps = pid.separators
    text = pid.raw_field(3)
    reps: list[Repetition] | None = None
    if seps.repetition in text or seps.subcomponent in text:
        reps = pid.repetitions(3)
        cxs = [rep.values() for rep in reps]
    else:  # one CX whose CX-4.2 is empty: its values without Repetition objects
        cxs = [pid.components(3)] if text else []
    for i, cx in enumerate(cxs):
        value = cx[0]
        if not value:
            continue
        cx += [""] * (5 - len(cx))
        authority = cx[3] or (reps[i].component(4, 2) if reps is not None else "")
        ident = _new(Identifier, (system("patient", authority), value))
        identifiers.append(ident)
        entry: dict[str, Any] = {"system": ident.system, "value": value}
        if id_type := cx[4]:
            entry["type"] = {"coding": [{"system": _V2_0203, "code": id_type}]}
        fhir_ids.append(entry)
    if not identifiers:
        notes.append("PID-3 holds no patient identifier; the patient is left out")
        return None
    resource: dict[str, Any] = {"resourceType": "Patient", "identifier": fhir_ids}
    if names := _names(pid, seps):
        resource["name"] = names
    if birth := _birth_date(pid.component(7), notes):
        resource["birthDate"] = birth
    gender = pid.component(8)
    if gender:
        mapped = _GENDER.get(gender.upper())
        if mapped:
            resource["gender"] = mapped
        else:
            notes.append(f"PID-8 {gender!r} is not an HL7 table 0001 sex code; gender left out")
    return SourceRecord("Patient", identifiers, resource)


def _names(pid: Segment, seps: Separators) -> list[dict[str, Any]]:
    names: list[dict[str, Any]] = []
    text = pid.raw_field(5)
    if seps.repetition in text:
        xpns = [rep.values() for rep in pid.repetitions(5)]
    else:
        xpns = [pid.components(5)] if text else []
    for xpn in xpns:
        xpn += [""] * (7 - len(xpn))
        family = xpn[0]
        given = list(filter(None, (xpn[1], xpn[2])))
        if not family and not given:
            continue
        name: dict[str, Any] = {}
        if use := _NAME_USE.get(xpn[6].upper()):
            name["use"] = use
        if family:
            name["family"] = family
        if given:
            name["given"] = given
        if suffix := xpn[3]:
            name["suffix"] = [suffix]
        if prefix := xpn[4]:
            name["prefix"] = [prefix]
        names.append(name)
    return names


_LOADED_ON = datetime.now(UTC).date()


def _birth_date(text: str, notes: list[str]) -> str | None:
    """The date part of PID-7 as FHIR date, at the precision sent."""
    if not text:
        return None
    digits = text[:8]
    try:
        if len(digits) >= 8 and digits.isdigit():
            born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
            value = born.isoformat()
        elif len(digits) >= 6 and digits[:6].isdigit():
            born = date(int(digits[:4]), int(digits[4:6]), 1)
            value = born.isoformat()[:7]
        elif digits[:4].isdigit():
            born = date(int(digits[:4]), 1, 1)
            value = digits[:4]
        else:
            raise ValueError("not digits")
    except ValueError:
        notes.append(f"PID-7 {text!r} is not a date; birthDate left out")
        return None
    # A date no later than the day this module was loaded is no later than today either: the
    # clock is only read for the rare birth date after that.
    if born.year < 1850 or (born > _LOADED_ON and born > datetime.now(UTC).date()):
        notes.append(f"PID-7 {text!r} is not a plausible birth date; birthDate left out")
        return None
    return value
