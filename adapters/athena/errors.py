"""athena's error answers (``{"error": ..., "detailedmessage": ...}``) as SourceErrors.

A booking refused because the slot is gone is ``SlotUnavailable`` (the hub offers another
slot); other 4xx answers will not pass by retrying; 5xx that survived the retries may.
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.contract import SlotUnavailable, SourceError

_SLOT_GONE = (
    "already booked",
    "not marked as being available",
    "appointment id is invalid",
)


def athena_message(response: httpx.Response) -> str:
    """athena's own words: error, detailedmessage and missing fields; else the raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if not isinstance(body, dict) or "error" not in body:
        return response.text[:300]
    parts = [str(body["error"])]
    if body.get("detailedmessage"):
        parts.append(str(body["detailedmessage"]))
    if body.get("missingfields"):
        parts.append("missing fields: " + ", ".join(map(str, body["missingfields"])))
    return "; ".join(parts)


def checked(response: httpx.Response, *, booking: bool = False) -> Any:
    """The JSON body of a successful answer; a SourceError naming athena's reason otherwise."""
    status = response.status_code
    if status < 400:
        try:
            return response.json()
        except ValueError:
            raise SourceError(
                f"{response.request.method} {response.request.url}: answer is not JSON",
                status=status,
            ) from None
    message = f"{response.request.method} {response.request.url.path} -> {status}: " + (
        athena_message(response)
    )
    lowered = message.lower()
    if booking and (status == 409 or any(marker in lowered for marker in _SLOT_GONE)):
        raise SlotUnavailable(message, status=status)
    raise SourceError(message, retryable=status >= 500 or status == 429, status=status)
