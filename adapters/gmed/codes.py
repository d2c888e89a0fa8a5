"""How GMED ids and codes become FHIR identifiers and codings.

Identifier systems are ``urn:harmony:gmed:<kind>`` for ids without a namespace and
``urn:harmony:gmed:<kind>:<namespace>`` when the sender qualifies them (EI namespace id, or
its universal id when only that is sent; CX assigning authority for patients). The namespace
is percent-encoded so a system never holds '|', spaces or '?', which would break the
conditional references built from it. Kinds: ``placer``, ``filler`` (appointments),
``patient``, ``provider``, ``location``, ``resource`` (AIG equipment), ``schedule``, ``slot``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import quote

from adapters.gmed.parser import Repetition

__all__ = ["PREFIX", "codeable", "coding_system", "concept", "system"]

PREFIX = "urn:harmony:gmed"

_CODE_SYSTEMS = {
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "LN": "http://loinc.org",
    "I10": "http://hl7.org/fhir/sid/icd-10",
    "I9": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT4": "http://www.ama-assn.org/go/cpt",
    "UCUM": "http://unitsofmeasure.org",
}


@lru_cache(maxsize=4096)
def system(kind: str, namespace: str = "") -> str:
    """The identifier system for a GMED id of ``kind``, qualified by its namespace if any."""
    if not namespace:
        return f"{PREFIX}:{kind}"
    return f"{PREFIX}:{kind}:{quote(namespace, safe='.-_~')}"


@lru_cache(maxsize=1024)
def coding_system(name: str) -> str:
    """HL7 table 0396 coding-system names to FHIR system URIs; local ones stay ours."""
    upper = name.strip().upper()
    known = _CODE_SYSTEMS.get(upper)
    if known:
        return known
    if upper.startswith("HL7") and upper[3:].isdigit():
        return f"http://terminology.hl7.org/CodeSystem/v2-{upper[3:]}"
    return system("codesystem", name.strip() or "local")


def codeable(rep: Repetition) -> dict[str, Any] | None:
    """A CE/CWE repetition as a CodeableConcept (both the primary and alternate codings)."""
    if not rep.raw:
        return None
    return concept(rep.values())


def concept(values: list[str]) -> dict[str, Any] | None:
    """A CE/CWE's component values (``Segment.components``) as a CodeableConcept."""
    n = len(values)
    if not n:
        return None
    code = values[0]
    text = values[1] if n > 1 else ""
    alt_code = values[3] if n > 3 else ""
    alt_text = values[4] if n > 4 else ""
    codings: list[dict[str, str]] = []
    if code:
        coding = {"system": coding_system(values[2] if n > 2 else ""), "code": code}
        if text:
            coding["display"] = text
        codings.append(coding)
    if alt_code:
        coding = {"system": coding_system(values[5] if n > 5 else ""), "code": alt_code}
        if alt_text:
            coding["display"] = alt_text
        codings.append(coding)
    if codings:
        return {"coding": codings, "text": text or alt_text or codings[0]["code"]}
    if text or alt_text:
        return {"text": text or alt_text}
    return None
