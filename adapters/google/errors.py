"""Google's error bodies, read once for the client (SourceError) and the normalizer."""

from __future__ import annotations

from typing import Any

import orjson

from canonical.errors import RejectedInput


class GoogleErrorBody(RejectedInput):
    """A stored page that is Google's error answer: there is nothing in it to store, ever."""


def error_parts(body: Any) -> tuple[int | None, str | None, str]:
    """(code, first reason, message) from ``{"error": {...}}`` bodies, bytes or parsed.

    The token endpoint's ``{"error": "invalid_grant", "error_description": ...}`` is read too.
    """
    if isinstance(body, bytes | str):
        try:
            body = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            text = body.decode(errors="replace") if isinstance(body, bytes) else body
            return None, None, text[:300].strip()
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return None, error, str(body.get("error_description") or error)
    if not isinstance(error, dict):
        return None, None, ""
    errors = error.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    code = error.get("code")
    return (
        code if isinstance(code, int) else None,
        first.get("reason"),
        str(error.get("message") or first.get("message") or ""),
    )


def is_error_body(body: Any) -> bool:
    return isinstance(body, dict) and "error" in body and "kind" not in body
