"""A quick "surely valid" check for the resource shapes a sync writes by the thousand.

fhir.resources builds a pydantic model per element: about 150 µs a Slot, more than the rest
of its write (measured with bench/bench_sync.py). This checks the common shapes of the hot
types directly and answers only "surely valid" or "not sure". Anything it does not fully
understand (an unknown key, an extension, ``contained``, a null, an empty list, an instant
with a leap second ...) is "not sure" and goes to the R4B model, which stays the judge and
writes every error message. Tests hold this to R4B as an oracle
(tests/canonical/test_fast_validation.py): whatever this accepts, R4B accepts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

Check = Callable[[Any], bool]

_MAX_STRING = 100_000  # longer strings are rare: leave them to R4B
_CODE = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII, single inner spaces
_URI = re.compile(r"[!-~]*")  # R4B takes any string; we vouch for no whitespace
# R4B's instant pattern with the year 0000 and leap seconds left out and at most
# microseconds; fromisoformat then rejects days that do not exist (2023-02-30).
_INSTANT = re.compile(
    r"(?!0000)[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


def _string(value: Any) -> bool:
    # R4B wants a non-whitespace character (or a space, tab, CR, LF); isspace() is wider.
    return type(value) is str and len(value) <= _MAX_STRING and not value.isspace() and value != ""


def _code(value: Any) -> bool:
    return type(value) is str and _CODE.fullmatch(value) is not None


def _uri(value: Any) -> bool:
    return type(value) is str and len(value) <= _MAX_STRING and _URI.fullmatch(value) is not None


def _boolean(value: Any) -> bool:
    return type(value) is bool


def _instant(value: Any) -> bool:
    if type(value) is not str or _INSTANT.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _list_of(item: Check) -> Check:
    def check(value: Any) -> bool:
        return type(value) is list and bool(value) and all(item(v) for v in value)

    return check


def _element(fields: dict[str, Check], required: Iterable[str] = ()) -> Check:
    """A JSON object with only ``fields``, each passing its check, and ``required`` present."""
    needed = tuple(required)

    def check(value: Any) -> bool:
        if type(value) is not dict or not value:
            return False
        for key, item in value.items():
            field = fields.get(key)
            if field is None or not field(item):
                return False
        return all(name in value for name in needed)

    return check


def _resource_type(name: str) -> Check:
    return lambda value: value == name


_CODING = _element(
    {
        "system": _uri,
        "version": _string,
        "code": _code,
        "display": _string,
        "userSelected": _boolean,
    }
)
_CODEABLE_CONCEPT = _element({"coding": _list_of(_CODING), "text": _string})
_CONCEPTS = _list_of(_CODEABLE_CONCEPT)
_REFERENCE = _element({"reference": _string, "type": _uri, "display": _string})
_IDENTIFIERS = _list_of(_element({"use": _code, "system": _uri, "value": _string}))
_PERIOD = _element({"start": _instant, "end": _instant})  # an instant is a valid dateTime

_CHECKS: dict[str, Check] = {
    "Slot": _element(
        {
            "resourceType": _resource_type("Slot"),
            "identifier": _IDENTIFIERS,
            "serviceCategory": _CONCEPTS,
            "serviceType": _CONCEPTS,
            "specialty": _CONCEPTS,
            "appointmentType": _CODEABLE_CONCEPT,
            "schedule": _REFERENCE,
            "status": _code,
            "start": _instant,
            "end": _instant,
            "overbooked": _boolean,
            "comment": _string,
        },
        required=("schedule", "status", "start", "end"),
    ),
    "Schedule": _element(
        {
            "resourceType": _resource_type("Schedule"),
            "identifier": _IDENTIFIERS,
            "active": _boolean,
            "serviceCategory": _CONCEPTS,
            "serviceType": _CONCEPTS,
            "specialty": _CONCEPTS,
            "actor": _list_of(_REFERENCE),
            "planningHorizon": _PERIOD,
            "comment": _string,
        },
        required=("actor",),
    ),
}


def surely_valid(resource_type: str, resource: Any) -> bool:
    """True only if fhir.resources R4B would accept ``resource``; False means "ask R4B"."""
    check = _CHECKS.get(resource_type)
    return check is not None and check(resource)
