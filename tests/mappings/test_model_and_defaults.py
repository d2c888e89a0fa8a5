"""Mapping content rules and the shipped defaults, checked against real HL7 v2 fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mappings.defaults import DEFAULTS_DIR, load_default, shipped_sources
from mappings.diff import Change, diff_content
from mappings.model import (
    APPOINTMENT_STATUSES,
    Coding,
    MappingContent,
    MappingSet,
    TriggerRule,
    UnmappedCode,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
# HL7 table 0278, filler status codes: every sender may use any of these in SCH-25.
TABLE_0278 = [
    "Pending",
    "Waitlist",
    "Booked",
    "Started",
    "Complete",
    "Cancelled",
    "Dc",
    "Deleted",
    "Blocked",
    "Overbook",
    "Noshow",
]


def gmed() -> MappingSet:
    content = load_default("gmed")
    assert content is not None
    return MappingSet(source="gmed", version=1, content=content)


def hl7_fields(name: str, segment: str) -> list[list[str]]:
    raw = (FIXTURES / "hl7v2" / name).read_bytes().decode("utf-8-sig")
    lines = raw.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [line.split("|") for line in lines if line.startswith(segment + "|")]


SIU_AND_ADT = sorted(
    p.name for p in (FIXTURES / "hl7v2").glob("*.hl7") if "_siu_" in p.name or "_adt_" in p.name
)


@pytest.mark.parametrize("name", SIU_AND_ADT)
def test_gmed_defaults_read_every_fixture(name: str) -> None:
    mapping_set = gmed()
    for msh in hl7_fields(name, "MSH"):
        trigger = msh[8].split("^")[1]
        rule = mapping_set.trigger(trigger)
        assert rule.event
        if rule.status is not None:
            assert rule.status in APPOINTMENT_STATUSES
    for sch in hl7_fields(name, "SCH"):
        if len(sch) > 25 and sch[25]:
            assert mapping_set.status(sch[25].split("^")[0]) in APPOINTMENT_STATUSES


def test_gmed_defaults_cover_table_0278_in_any_case() -> None:
    mapping_set = gmed()
    for code in TABLE_0278:
        assert mapping_set.status(code) == mapping_set.status(f"  {code.upper()} ")


def test_gmed_cancel_triggers_decide_the_status() -> None:
    mapping_set = gmed()
    assert mapping_set.trigger("s15").status == "cancelled"
    assert mapping_set.trigger("S17").status == "entered-in-error"
    assert mapping_set.trigger("S12").status is None  # SCH-25 decides


def test_gmed_appointment_types_use_table_0276() -> None:
    types = gmed().content.appointment_types
    assert types
    assert all(c.system == V2_0276 for c in types.values())
    assert gmed().appointment_type("followup") == types["FOLLOWUP"]
    assert gmed().appointment_type("NOT-A-TYPE") is None


@pytest.mark.parametrize("source", shipped_sources())
def test_shipped_sets_name_no_timezone_and_no_crosswalks(source: str) -> None:
    content = load_default(source)
    assert content is not None
    assert content.timezone is None
    assert content.providers == {} and content.locations == {}
    assert MappingSet(source=source, version=1, content=content).zone("Europe/Paris").key == (
        "Europe/Paris"
    )


def test_shipped_files_are_named_like_sources() -> None:
    assert {p.stem for p in DEFAULTS_DIR.glob("*.json")} == set(shipped_sources())
    assert load_default("nosuchvendor") is None


def test_unmapped_status_says_what_to_do() -> None:
    with pytest.raises(UnmappedCode, match=r"gmed@v1.*activate") as caught:
        gmed().status("Teleported")
    assert (caught.value.table, caught.value.code) == ("status", "Teleported")


def test_content_rejects_statuses_fhir_does_not_have() -> None:
    with pytest.raises(ValidationError, match="not a FHIR R4 Appointment status"):
        MappingContent(status={"Booked": "confirmed"})
    with pytest.raises(ValidationError, match="not a FHIR R4 Appointment status"):
        MappingContent(trigger_events={"S15": TriggerRule(event="x", status="canceled")})


def test_content_rejects_unknown_timezone() -> None:
    with pytest.raises(ValidationError, match="unknown IANA timezone"):
        MappingContent(timezone="Mars/Olympus_Mons")


def test_content_rejects_status_keys_that_disagree_by_case() -> None:
    with pytest.raises(ValidationError, match="match the same code"):
        MappingContent(status={"Booked": "booked", "BOOKED": "pending"})
    assert MappingContent(status={"Booked": "booked", "BOOKED": "booked"})


def test_content_upper_cases_trigger_keys() -> None:
    content = MappingContent(trigger_events={"s12": TriggerRule(event="booked")})
    assert list(content.trigger_events) == ["S12"]


def test_content_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="statuses"):
        MappingContent.model_validate({"statuses": {}})


codes = st.text(alphabet="ABCDEFGHIJ", min_size=1, max_size=3)
contents = st.builds(
    MappingContent,
    timezone=st.sampled_from([None, "UTC", "Europe/Paris"]),
    status=st.dictionaries(codes, st.sampled_from(sorted(APPOINTMENT_STATUSES)), max_size=5),
    appointment_types=st.dictionaries(codes, st.builds(Coding, code=codes), max_size=4),
)


def apply(content: MappingContent, changes: list[Change]) -> MappingContent:
    data = content.model_dump(mode="json")
    for c in changes:
        if c.key == "":
            data[c.table] = c.after
        elif c.after is None:
            del data[c.table][c.key]
        else:
            data[c.table][c.key] = c.after
    return MappingContent.model_validate(data)


@given(contents, contents)
def test_diff_turns_one_version_into_the_other(a: MappingContent, b: MappingContent) -> None:
    changes = diff_content(a, b)
    assert apply(a, changes) == b
    assert (changes == []) == (a == b)
