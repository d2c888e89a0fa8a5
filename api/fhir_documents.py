"""The FHIR documents the API answers with: OperationOutcome, Bundles, CapabilityStatement.

Pure functions of their inputs so the router stays about HTTP and these stay testable.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from canonical.model import SUPPORTED_TYPES
from canonical.search import IGNORED_PARAMS, RESULT_PARAMS, SEARCH_PARAMS

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def searchset(
    base: str,
    resources: list[dict[str, Any]],
    total: int,
    links: dict[str, str],
) -> dict[str, Any]:
    """A searchset Bundle; ``links`` maps relation (self, next, previous) to URL."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": rel, "url": url} for rel, url in links.items()],
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def history_bundle(base: str, self_url: str, versions: list[dict[str, Any]]) -> dict[str, Any]:
    """A history Bundle, newest version first, with the request/response R4 asks of each entry."""
    entries = []
    for r in versions:
        version = r["meta"]["versionId"]
        created = version == "1"
        entries.append(
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {
                    "method": "POST" if created else "PUT",
                    "url": r["resourceType"] if created else f"{r['resourceType']}/{r['id']}",
                },
                "response": {
                    "status": "201 Created" if created else "200 OK",
                    "etag": f'W/"{version}"',
                    "lastModified": r["meta"]["lastUpdated"],
                },
            }
        )
    return {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(entries),
        "link": [{"relation": "self", "url": self_url}],
        "entry": entries,
    }


def capability_statement(base: str, software_version: str, date: str) -> dict[str, Any]:
    """What this server really supports: read, vread, history and the search params we index."""
    resources = []
    for resource_type in SUPPORTED_TYPES:
        resources.append(
            {
                "type": resource_type,
                "profile": f"http://hl7.org/fhir/StructureDefinition/{resource_type}",
                "interaction": [
                    {"code": "read"},
                    {"code": "vread"},
                    {"code": "history-instance"},
                    {"code": "search-type"},
                ],
                "versioning": "versioned",
                "readHistory": True,
                "searchParam": [
                    {"name": p.name, "type": p.type, "documentation": p.documentation}
                    for p in SEARCH_PARAMS[resource_type]
                ],
            }
        )
    result_params = ", ".join(sorted(RESULT_PARAMS | IGNORED_PARAMS))
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "Harmony",
        "kind": "instance",
        "software": {"name": "Harmony", "version": software_version},
        "implementation": {"description": "Harmony canonical scheduling store", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    f"Result parameters: {result_params}. Unknown search parameters are "
                    "rejected with 400 rather than ignored. _offset pages through results."
                ),
                "security": {
                    "cors": False,
                    "description": "Send an OAuth bearer token: Authorization: Bearer <token>",
                },
                "resource": resources,
            }
        ],
    }
