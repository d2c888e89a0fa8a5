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

__all__ = ["PREFIX", "codeable", "coding_system", "system"]

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
    values = rep.values()
    values += [""] * (6 - len(values))
    codings: list[dict[str, str]] = []
    texts: list[str] = []
    for first in (0, 3):
        code, text, sys = values[first], values[first + 1], values[first + 2]
        if text:
            texts.append(text)
        if code:
            coding = {"system": coding_system(sys), "code": code}
            if text:
                coding["display"] = text
            codings.append(coding)
    if not codings and not texts:
        return None
    concept: dict[str, Any] = {}
    if codings:
        concept["coding"] = codings
    concept["text"] = texts[0] if texts else codings[0]["code"]
    return concept
