"""The fast FHIR check against its oracle, fhir.resources R4B.

The fast path may only say "surely valid" of what R4B accepts; everything else goes to R4B,
which then decides and words the error. So the property checked everywhere is: fast accepts
implies R4B accepts. The shapes a sync writes must take the fast path, or it is no use.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from canonical.errors import InvalidResource
from canonical.fast_validation import surely_valid
from canonical.model import validate

FIXTURES = Path(__file__).parents[1] / "fixtures" / "fhir"


def r4b_accepts(resource_type: str, resource: Any) -> bool:
    try:
        get_fhir_model_class(resource_type).model_validate(resource)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def agrees(resource_type: str, resource: Any) -> bool:
    """Fast says yes only when R4B says yes (fast "no" just means "ask R4B")."""
    return not surely_valid(resource_type, resource) or r4b_accepts(resource_type, resource)


def epic_slot() -> dict[str, Any]:
    """A Slot as the Epic adapter hands it to the store."""
    return {
        "resourceType": "Slot",
        "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268", "value": "eSl1"}],
        "schedule": {"reference": "Schedule/eSc1"},
        "status": "free",
        "start": "2024-05-06T09:00:00Z",
        "end": "2024-05-06T09:20:00.000+02:00",
        "serviceType": [
            {
                "coding": [{"system": "urn:oid:1.2.3", "code": "1004", "display": "Office Visit"}],
                "text": "Office Visit",
            }
        ],
    }


def epic_schedule() -> dict[str, Any]:
    return {
        "resourceType": "Schedule",
        "identifier": [{"system": "urn:oid:1.2.3", "value": "eSc1", "use": "usual"}],
        "active": True,
        "serviceType": [{"text": "Office Visit"}],
        "actor": [
            {"reference": "Practitioner/abc", "display": "Dr. A"},
            {"reference": "Location/def"},
        ],
        "planningHorizon": {"start": "2024-05-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"},
        "comment": "Mornings only",
    }


def fixture(name: str) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return resource


def test_the_shapes_a_sync_writes_take_the_fast_path() -> None:
    for rtype, resource in (("Slot", epic_slot()), ("Schedule", epic_schedule())):
        assert surely_valid(rtype, resource)
        assert r4b_accepts(rtype, resource)


@pytest.mark.parametrize(
    "name",
    [
        "r4spec_slot-example.json",
        "r4spec_slot-example-busy.json",
        "r4spec_slot-example-tentative.json",
        "r4spec_schedule-example.json",
        "r4spec_schedule-provider-location1-example.json",
    ],
)
def test_spec_examples_agree_with_and_without_narrative(name: str) -> None:
    resource = fixture(name)
    rtype = resource["resourceType"]
    assert agrees(rtype, resource)
    bare = {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}
    assert agrees(rtype, bare)
    assert r4b_accepts(rtype, bare)


def _set(path: str, value: Any) -> Any:
    def change(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = resource
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _drop(key: str) -> Any:
    return lambda resource: resource.pop(key)


SLOT_VARIANTS = {
    "status not a string": _set("status", 1),
    "status with a newline": _set("status", "free\n"),
    "status with two spaces": _set("status", "a  b"),
    "status empty": _set("status", ""),
    "start without offset": _set("start", "2024-05-06T09:00:00"),
    "start a date": _set("start", "2024-05-06"),
    "start on 30 February": _set("start", "2024-02-30T09:00:00Z"),
    "start at hour 24": _set("start", "2024-05-06T24:00:00Z"),
    "start with a leap second": _set("start", "2016-12-31T23:59:60Z"),
    "start in year 0": _set("start", "0000-01-01T00:00:00Z"),
    "start with nanoseconds": _set("start", "2024-05-06T09:00:00.123456789Z"),
    "start with offset +15:00": _set("start", "2024-05-06T09:00:00+15:00"),
    "start a number": _set("start", 1714986000),
    "start null": _set("start", None),
    "no status": _drop("status"),
    "no start": _drop("start"),
    "no end": _drop("end"),
    "no schedule": _drop("schedule"),
    "schedule a string": _set("schedule", "Schedule/1"),
    "schedule empty": _set("schedule", {}),
    "schedule with an extension": _set("schedule.extension", [{"url": "x", "valueString": "y"}]),
    "reference not a string": _set("schedule.reference", 5),
    "extra key": _set("color", "blue"),
    "primitive extension": _set("_status", {"extension": [{"url": "x", "valueCode": "y"}]}),
    "contained": _set("contained", [{"resourceType": "Schedule", "actor": [{"display": "x"}]}]),
    "an id": _set("id", "abc"),
    "a bad id": _set("id", "a b"),
    "overbooked a string": _set("overbooked", "true"),
    "overbooked a number": _set("overbooked", 2),
    "comment empty": _set("comment", ""),
    "comment whitespace": _set("comment", " \n"),
    "comment a vertical tab": _set("comment", "\x0b"),
    "identifier empty list": _set("identifier", []),
    "identifier not a list": _set("identifier", {"value": "x"}),
    "identifier null item": _set("identifier", [None]),
    "identifier use a number": _set("identifier.0.use", 3),
    "identifier period": _set("identifier.0.period", {"start": "2024"}),
    "identifier system with a space": _set("identifier.0.system", "urn: x"),
    "identifier system empty": _set("identifier.0.system", ""),
    "coding code with a space at the end": _set("serviceType.0.coding.0.code", "1004 "),
    "coding userSelected a string": _set("serviceType.0.coding.0.userSelected", "yes"),
    "coding empty": _set("serviceType.0.coding.0", {}),
    "concept text a list": _set("serviceType.0.text", ["a"]),
    "serviceType a dict": _set("serviceType", {"text": "x"}),
    "resourceType wrong": _set("resourceType", "Schedule"),
}


@pytest.mark.parametrize("variant", sorted(SLOT_VARIANTS))
def test_slot_variants_agree_with_r4b(variant: str) -> None:
    resource = epic_slot()
    SLOT_VARIANTS[variant](resource)
    assert agrees("Slot", resource)


SCHEDULE_VARIANTS = {
    "no actor": _drop("actor"),
    "actor empty": _set("actor", []),
    "actor null": _set("actor", [None]),
    "active a string": _set("active", "yes"),
    "horizon a date": _set("planningHorizon.start", "2024-05-01"),
    "horizon bad": _set("planningHorizon.start", "May 1st"),
    "comment a number": _set("comment", 1),
    "extension": _set("extension", [{"url": "x", "valueString": "y"}]),
}


@pytest.mark.parametrize("variant", sorted(SCHEDULE_VARIANTS))
def test_schedule_variants_agree_with_r4b(variant: str) -> None:
    resource = epic_schedule()
    SCHEDULE_VARIANTS[variant](resource)
    assert agrees("Schedule", resource)


def test_a_rejected_resource_gets_the_r4b_message() -> None:
    resource = epic_slot()
    resource["start"] = "2024-05-06T09:00:00"
    with pytest.raises(InvalidResource, match=r"invalid Slot: start: .*Instant"):
        validate("Slot", resource)


def test_our_code_lists_still_apply_on_the_fast_path() -> None:
    resource = epic_slot()
    resource["status"] = "maybe"
    assert surely_valid("Slot", resource)
    with pytest.raises(InvalidResource, match=r"Slot.status is 'maybe'"):
        validate("Slot", resource)


def test_other_types_always_ask_r4b() -> None:
    assert not surely_valid("Appointment", {"resourceType": "Appointment", "status": "booked"})


# ------------------------------------------------------------------ property-based

_text = st.text(max_size=12)
_odd_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), _text
)
_instant_like = st.from_regex(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?)?\Z"
)
_valid_instants = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())


def _rarely(odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` 19 times in 20, else ``odd``: most examples break in one place or none."""
    return st.tuples(st.integers(0, 19), usual, odd).map(lambda t: t[2] if t[0] == 0 else t[1])


_fixed_offsets = st.sampled_from(
    [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))]
)
_common_instants = st.datetimes(min_value=datetime(1, 1, 2), timezones=_fixed_offsets).map(
    lambda d: d.isoformat().replace("+00:00", "Z")
)
_codes = _rarely(_text, st.sampled_from(["free", "busy", "a b", "1004"]))
_strings = _rarely(st.sampled_from([" ", "\t", ""]), st.sampled_from(["x", "Office Visit"]))
_strings = _rarely(_text, _strings)
_uris = _rarely(_text, st.sampled_from(["urn:oid:1.2.3", "", "http://x/y"]))
_instant = _rarely(st.one_of(_valid_instants, _instant_like, _odd_scalars), _common_instants)


def _maybe_broken(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return _rarely(_odd_scalars, valid)


def _obj(
    fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> st.SearchStrategy[dict[str, Any]]:
    """Some of ``fields`` (``required`` ones mostly there), now and then an unknown key."""
    extra = st.dictionaries(st.sampled_from(["id", "extension", "x", "_code"]), _odd_scalars)
    must = {k: v for k, v in fields.items() if k in required}
    may = {k: v for k, v in fields.items() if k not in required}
    chosen = st.fixed_dictionaries(must, optional=may).filter(bool)
    dropped = _rarely(st.sampled_from([*required, ""]), st.just(""))
    return st.builds(
        lambda picked, drop, more: {
            **{k: v for k, v in picked.items() if k != drop},
            **more,
        },
        chosen,
        dropped,
        _rarely(extra, st.just({})),
    )


def _lists(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return _maybe_broken(st.lists(_rarely(st.none(), item), max_size=3))


_coding = _obj(
    {
        "system": _maybe_broken(_uris),
        "code": _maybe_broken(_codes),
        "display": _maybe_broken(_strings),
        "userSelected": _maybe_broken(st.booleans()),
        "version": _maybe_broken(_strings),
    }
)
_concept = _maybe_broken(_obj({"coding": _lists(_coding), "text": _maybe_broken(_strings)}))
_reference = _maybe_broken(
    _obj(
        {
            "reference": _maybe_broken(st.sampled_from(["Schedule/1", "Practitioner/p"])),
            "display": _maybe_broken(_strings),
            "type": _maybe_broken(_uris),
        }
    )
)
_identifier = _obj(
    {
        "use": _maybe_broken(st.sampled_from(["usual", "official"])),
        "system": _maybe_broken(_uris),
        "value": _maybe_broken(_strings),
    }
)


def _resource(
    rtype: str, fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...]
) -> st.SearchStrategy[Any]:
    return _obj({"resourceType": st.just(rtype), **fields}, ("resourceType", *required))


slots = _resource(
    "Slot",
    {
        "identifier": _lists(_identifier),
        "serviceType": _lists(_concept),
        "specialty": _lists(_concept),
        "appointmentType": _concept,
        "schedule": _reference,
        "status": _maybe_broken(_codes),
        "start": _instant,
        "end": _instant,
        "overbooked": _maybe_broken(st.booleans()),
        "comment": _maybe_broken(_strings),
    },
    ("schedule", "status", "start", "end"),
)
schedules = _resource(
    "Schedule",
    {
        "identifier": _lists(_identifier),
        "active": _maybe_broken(st.booleans()),
        "serviceCategory": _lists(_concept),
        "actor": _lists(_reference),
        "planningHorizon": _maybe_broken(_obj({"start": _instant, "end": _instant})),
        "comment": _maybe_broken(_strings),
    },
    ("actor",),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slots)
def test_fast_slot_acceptance_implies_r4b_acceptance(resource: dict[str, Any]) -> None:
    assert agrees("Slot", copy.deepcopy(resource))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules)
def test_fast_schedule_acceptance_implies_r4b_acceptance(resource: dict[str, Any]) -> None:
    assert agrees("Schedule", copy.deepcopy(resource))


@settings(max_examples=1500, deadline=None)
@given(st.one_of(_instant_like, _valid_instants, st.text(max_size=30)))
@example("2024-05-06T09:00:00.1234567Z")
@example("1900-02-29T00:00:00Z")
@example("2024-05-06T09:00:00-00:00")
def test_fast_instants_agree_with_r4b(text: str) -> None:
    resource = epic_slot()
    resource["start"] = text
    assert agrees("Slot", resource)


@settings(max_examples=300, deadline=None)
@given(_valid_instants, st.sampled_from(["free", "busy", "busy-tentative"]))
def test_well_formed_slots_take_the_fast_path(start: str, status: str) -> None:
    resource = epic_slot()
    resource["start"], resource["status"] = start, status
    assert surely_valid("Slot", resource) == r4b_accepts("Slot", resource)
