"""athena sends ids, durations and booleans as strings in some practices and as JSON
numbers or booleans in others; every reader goes through these so both shapes pass."""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str:
    """An id or code as text: 21, "21" and 21.0 are the same id; None and "" are ''."""
    if value is None or isinstance(value, bool):
        return "" if value is None else str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def number(value: Any) -> int | None:
    """A whole number from 30, "30" or "30.0"; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(str(value).strip()))
    except ValueError:
        return None


def flag(value: Any) -> bool:
    """athena booleans: true/false, "true"/"false", "Y"/"N", 1/0."""
    if isinstance(value, bool):
        return value
    return text(value).lower() in {"true", "y", "yes", "1", "t"}
