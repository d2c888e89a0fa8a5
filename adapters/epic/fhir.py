"""Small readings of FHIR JSON that the client, the normalizer and the sandbox share."""

from __future__ import annotations

from typing import Any

FHIR_JSON = "application/fhir+json"


def outcome(severity: str, code: str, diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome with one issue: how Epic answers an error."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}],
    }


def outcome_text(body: Any) -> str:
    """The issues of an OperationOutcome as one line an operator can read."""
    issues = body.get("issue") if isinstance(body, dict) else None
    parts = []
    for issue in issues or []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        parts.append(f"{issue.get('severity', '?')} {issue.get('code', '?')}: {text}".strip())
    return "; ".join(parts) or "OperationOutcome without issues"


def outcome_codes(body: Any) -> set[str]:
    issues = body.get("issue") if isinstance(body, dict) else None
    return {str(issue.get("code")) for issue in issues or []}


def is_error_outcome(body: Any) -> bool:
    """An OperationOutcome carrying an error or fatal issue (informational ones ride along)."""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return False
    return any(i.get("severity") in ("error", "fatal") for i in body.get("issue") or [])


def next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def reference_id(reference: str | None, resource_type: str) -> str | None:
    """The id of ``Type/id`` (relative or absolute) when it names ``resource_type``."""
    if not reference:
        return None
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
        return parts[-1]
    if len(parts) >= 4 and parts[-2] == "_history" and parts[-4] == resource_type:
        return parts[-3]
    return None
