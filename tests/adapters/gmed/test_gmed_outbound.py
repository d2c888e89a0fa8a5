"""Outbound SIU: the trigger follows the change, and what we send reads back as what we meant."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hl7apy.parser import parse_message as hl7apy_parse

from adapters.gmed.normalize import normalize_bytes
from adapters.gmed.outbound import build_siu, choose_trigger
from adapters.gmed.parser import parse_message
from mappings.model import Crosswalk, MappingSet
from tests.adapters.gmed.gmed_helpers import fixture_bytes, gmed_mapping

P = "urn:harmony:gmed"
NPI = "http://hl7.org/fhir/sid/us-npi"


def _canonical(name: str, mapping: MappingSet) -> dict[str, Any]:
    return normalize_bytes(fixture_bytes(name), mapping, "UTC").records[-1].resource


def _send(appointment: dict[str, Any], mapping: MappingSet, **kwargs: Any) -> bytes:
    return build_siu(
        appointment,
        mapping=mapping,
        default_timezone="UTC",
        receiving_application="GMED",
        receiving_facility="CLINIC",
        now=datetime(2024, 7, 4, 12, 0, tzinfo=UTC),
        **kwargs,
    )


@pytest.mark.parametrize(
    ("status", "previous", "previous_status", "trigger"),
    [
        ("booked", None, None, "S12"),
        ("booked", {"start": "2021-01-01T10:00:00Z", "end": "2021-01-01T10:30:00Z"}, None, "S13"),
        ("booked", "same", None, "S14"),
        ("booked", None, "booked", "S14"),
        ("cancelled", "same", None, "S15"),
        ("entered-in-error", None, "booked", "S17"),
        ("noshow", "same", None, "S26"),
    ],
)
def test_trigger_follows_the_change(
    status: str, previous: Any, previous_status: str | None, trigger: str
) -> None:
    appointment = {"status": status, "start": "2021-09-24T07:15:00Z", "end": "2021-09-24T08:05:00Z"}
    before = appointment if previous == "same" else previous
    assert choose_trigger(appointment, before, previous_status) == trigger


@pytest.mark.parametrize(
    ("fixture", "status", "trigger"),
    [
        ("fhirconv_siu_s12_01_v28.hl7", "booked", "S13"),
        ("fhirconv_siu_s15_01_v28.hl7", "cancelled", "S15"),
        ("fhirconv_siu_s17_01_v28.hl7", "entered-in-error", "S17"),
        ("fhirconv_siu_s26_01_v28.hl7", "noshow", "S26"),
        ("mirth_batch_siu_s14_v23.hl7", "booked", "S13"),
    ],
)
def test_sent_message_reads_back_through_both_parsers_and_normalizes_the_same(
    fixture: str, status: str, trigger: str
) -> None:
    mapping = gmed_mapping(timezone="Europe/Paris")
    appointment = _canonical(fixture, mapping)
    moved = {**appointment, "start": "2020-01-01T00:00:00Z"}
    raw = _send(appointment, mapping, previous=moved, control_id="CTRL1")
    assert raw.endswith(b"\r") and b"\n" not in raw

    ours = parse_message(raw)
    assert (ours.message_code, ours.trigger_event, ours.control_id) == ("SIU", trigger, "CTRL1")
    assert ours.msh.field(3) == ours.msh.field(4) == "Harmony"
    assert (ours.msh.field(5), ours.msh.field(6)) == ("GMED", "CLINIC")
    theirs = hl7apy_parse(raw.decode().strip("\r"), find_groups=False)
    assert theirs.msh.msh_9.to_er7() == f"SIU^{trigger}^SIU_S12"
    assert theirs.sch.sch_2.to_er7() == ours.segments("SCH")[0].raw_field(2)

    back = normalize_bytes(raw, mapping, "UTC").records[-1].resource
    assert back["status"] == status
    assert (back["start"], back["end"]) == (appointment["start"], appointment["end"])
    assert back["identifier"] == appointment["identifier"]
    refs = [p["actor"]["reference"] for p in back["participant"] if "actor" in p]
    want = [p["actor"]["reference"] for p in appointment["participant"] if "actor" in p]
    assert refs == want


def test_times_are_written_in_the_gmed_zone() -> None:
    mapping = gmed_mapping(timezone="Europe/Paris")
    raw = _send(_canonical("fhirconv_siu_s12_01_v28.hl7", mapping), mapping)
    tq1 = parse_message(raw).segments("TQ1")[0]
    assert (tq1.field(7), tq1.field(8)) == ("20210924091500+0200", "20210924100500+0200")


def test_new_booking_from_elsewhere_has_harmony_as_placer_and_crosswalked_ids() -> None:
    mapping = gmed_mapping(providers={"1210": Crosswalk(system=NPI, value="1234567893")})
    appointment = {
        "id": "abc-1",
        "status": "booked",
        "start": "2024-07-04T12:00:00Z",
        "end": "2024-07-04T12:20:00Z",
        "identifier": [{"system": "urn:epic:csn", "value": "998"}],
        "participant": [
            {"actor": {"reference": "Patient/77"}, "status": "accepted"},
            {
                "actor": {
                    "reference": "Practitioner/5",
                    "identifier": {
                        "system": "http://hl7.org/fhir/sid/us-npi",
                        "value": "1234567893",
                    },
                },
                "status": "accepted",
            },
            {"actor": {"reference": f"Location?identifier={P}:location|055^Room01^^GH Clinic"}},
        ],
    }
    raw = _send(appointment, mapping)
    message = parse_message(raw)
    assert message.trigger_event == "S12"
    sch, pid = message.segments("SCH")[0], message.segments("PID")[0]
    assert (sch.component(1, 1), sch.component(1, 2), sch.field(2)) == ("abc-1", "HARMONY", "")
    assert (sch.field(9), sch.field(10)) == ("20", "min")
    assert (pid.component(3, 1), pid.component(3, 4)) == ("77", "HARMONY")
    assert message.segments("AIP")[0].field(3) == "1210"
    assert message.segments("AIL")[0].raw_field(3) == "055^Room01^^GH Clinic"
    back = normalize_bytes(raw, mapping, "UTC").records[-1].resource
    assert back["identifier"] == [{"system": f"{P}:placer:HARMONY", "value": "abc-1"}]
    assert back["minutesDuration"] == 20


def test_values_with_separators_are_escaped() -> None:
    mapping = gmed_mapping()
    appointment = {
        "status": "booked",
        "start": "2024-07-04T12:00:00Z",
        "end": "2024-07-04T12:20:00Z",
        "identifier": [{"system": f"{P}:filler", "value": "A|B^C"}],
        "reasonCode": [{"text": "pain & swelling ~ left\\right"}],
        "participant": [{"actor": {"reference": f"Patient?identifier={P}:patient|9"}}],
    }
    sch = parse_message(_send(appointment, mapping)).segments("SCH")[0]
    assert sch.field(2) == "A|B^C"
    assert sch.field(7) == "pain & swelling ~ left\\right"
