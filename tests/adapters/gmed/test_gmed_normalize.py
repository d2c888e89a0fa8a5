"""Every fixture normalized; expectations read off the messages by hand (see SOURCES.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from adapters.gmed.errors import IncompleteMessage, NotSchedulingMessage
from adapters.gmed.normalize import FILLER_STATUS_URL, normalize_bytes
from canonical.errors import RejectedInput
from canonical.records import SourceBundle
from mappings.defaults import load_default
from mappings.model import Coding, Crosswalk, MappingSet, UnmappedCode
from tests.adapters.gmed.gmed_helpers import HL7V2, fixture_bytes, gmed_mapping

P = "urn:harmony:gmed"


@dataclass
class Expected:
    zone: str
    event: str
    status: str
    start: str
    end: str
    minutes: int
    ids: list[tuple[str, str]]
    patient: tuple[str, str]
    actors: list[str]
    filler_status: str | None
    note_words: list[str] = field(default_factory=list)


EXPECTED = {
    "barts_tie_siu_s12_v24.hl7": Expected(
        "Europe/London",
        "booked",
        "booked",
        "2024-11-06T12:00:00Z",
        "2024-11-06T12:30:00Z",
        30,
        [(f"{P}:placer", "149549015")],
        (f"{P}:patient:RNJ%205C4%20MRN", "10769857"),
        [
            f"Device?identifier={P}:resource|Baxter, Stanley",
            f"Location?identifier={P}:location|RNJ Renal OPD^^^RNJ ROYALLONDON",
        ],
        "Confirmed",
    ),
    "barts_tie_siu_s15_v24.hl7": Expected(
        "Europe/London",
        "cancelled",
        "cancelled",
        "2024-11-13T10:00:00Z",
        "2024-11-13T11:00:00Z",
        60,
        [(f"{P}:placer", "149549027")],
        (f"{P}:patient:Dover", "10769859"),
        [
            f"Device?identifier={P}:resource|RNJ Chester, Dr Brook - Nurse 2",
            f"Location?identifier={P}:location|RNJ Renal SBH^^^RNJ BARTS",
        ],
        "Cancelled",
    ),
    "clicrdv_siu_s13_v251_utf8.hl7": Expected(
        "Europe/Paris",
        "rescheduled",
        "booked",
        "2016-12-31T10:00:00Z",
        "2016-12-31T10:30:00Z",
        30,
        [(f"{P}:filler:DimSolution", "49849903800")],
        (f"{P}:patient:ODS", "123456"),
        [],
        "Booked",
        ["AIG-3 is empty"],
    ),
    "mirth_batch_siu_s14_v23.hl7": Expected(
        "America/New_York",
        "modified",
        "booked",
        "2011-06-17T12:45:00Z",
        "2011-06-17T13:30:00Z",
        45,
        [(f"{P}:filler:2196178", "2196178"), (f"{P}:placer:10345", "10345")],
        (f"{P}:patient", "42"),
        [
            f"Device?identifier={P}:resource|1",
            f"Location?identifier={P}:location|OFFICE^^^OFFICE",
            f"Practitioner?identifier={P}:provider|1",
        ],
        "Scheduled",
        ["SCH-9/10 says 60 min", "AIL (OFFICE) starts 20110614084500"],
    ),
    "mirth_batch_siu_s15_v23.hl7": Expected(
        "America/New_York",
        "cancelled",
        "cancelled",
        "2011-06-17T12:45:00Z",
        "2011-06-17T13:30:00Z",
        45,
        [(f"{P}:filler:2196178", "2196178"), (f"{P}:placer:10345", "10345")],
        (f"{P}:patient", "42"),
        [
            f"Device?identifier={P}:resource|1",
            f"Location?identifier={P}:location|OFFICE^^^OFFICE",
            f"Practitioner?identifier={P}:provider|1",
        ],
        "Cancelled",
    ),
    "edge_siu_s12_custom_seps_latin1_crlf.hl7": Expected(
        "Europe/Paris",
        "booked",
        "booked",
        "2024-07-04T12:00:00Z",
        "2024-07-04T12:30:00Z",
        30,
        [(f"{P}:filler:GMED", "F-88"), (f"{P}:placer:GMED", "P-77")],
        (f"{P}:patient:HOSP", "PAT-9"),
        [f"Practitioner?identifier={P}:provider|DR7"],
        "Booked",
    ),
    "edge_siu_s14_aix_only_dst_gap_lf.hl7": Expected(
        "America/New_York",
        "modified",
        "pending",
        "2024-03-10T07:30:00Z",
        "2024-03-10T09:00:00Z",
        90,
        [(f"{P}:filler:GMED", "F-99")],
        (f"{P}:patient:GMED", "555"),
        [
            f"Location?identifier={P}:location|ROOM5^^^MAIN",
            f"Practitioner?identifier={P}:provider|DR8",
        ],
        None,
    ),
}
_FHIRCONV_ACTORS = [
    f"Device?identifier={P}:resource|5001",
    f"Location?identifier={P}:location|055^Room01^^GH Clinic",
    f"Practitioner?identifier={P}:provider|1210",
]
for _name, _event, _status, _raw in [
    ("s12_01", "booked", "booked", "Booked"),
    ("s13_01", "rescheduled", "booked", "Booked"),
    ("s14_01", "modified", "booked", "Booked"),
    ("s15_01", "cancelled", "cancelled", "Cancelled"),
    ("s16_01", "discontinued", "cancelled", "Dc"),
    ("s17_01", "deleted", "entered-in-error", "Deleted"),
    ("s26_01", "noshow", "noshow", "Noshow"),
]:
    EXPECTED[f"fhirconv_siu_{_name}_v28.hl7"] = Expected(
        "UTC",
        _event,
        _status,
        "2021-09-24T07:15:00Z",
        "2021-09-24T08:05:00Z",
        50,
        [(f"{P}:filler", "36996"), (f"{P}:placer", "12345")],
        (f"{P}:patient:test1", "PATID1234"),
        [a.replace("Room01", "Room02") if _name == "s14_01" else a for a in _FHIRCONV_ACTORS],
        _raw,
        ["SCH-9/10 says 1 min but TQ1 says 50 min; TQ1 wins", "SCH-11 window"],
    )
EXPECTED["fhirconv_siu_s12_02_v28.hl7"] = Expected(
    "UTC", "booked", "booked", "2021-08-18T09:15:00Z", "2021-08-18T10:15:00Z", 60,
    [(f"{P}:filler", "36996"), (f"{P}:placer", "12345")], (f"{P}:patient:test1", "PATID1234"),
    [f"Device?identifier={P}:resource|123",
     f"Location?identifier={P}:location|LabUnit101^Lab Room 01^^GHH Hospital",
     f"Practitioner?identifier={P}:provider|400",
     f"Device?identifier={P}:resource|1001",
     f"Location?identifier={P}:location|DiagnosticUnit201^Imaging Room 01^^GHH Hospital",
     f"Practitioner?identifier={P}:provider|500",
     f"Location?identifier={P}:location|OPD12^Room 55^^GHH Hospital",
     f"Practitioner?identifier={P}:provider|600"],
    "Booked", ["SCH-9/10 says 70 min but TQ1 says 60 min"],
)  # fmt: skip


def _bundle(name: str, mapping: MappingSet | None = None) -> SourceBundle:
    zone = EXPECTED[name].zone if name in EXPECTED else "UTC"
    return normalize_bytes(fixture_bytes(name), mapping or gmed_mapping(), zone)


def _appointment(bundle: SourceBundle) -> dict[str, Any]:
    assert bundle.records[-1].resource_type == "Appointment"
    return bundle.records[-1].resource


def test_every_siu_fixture_has_expectations() -> None:
    sius = {p.name for p in HL7V2 if "_siu_" in p.name}
    assert sius <= EXPECTED.keys()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_appointment_status_times_ids_and_participants(name: str) -> None:
    want = EXPECTED[name]
    bundle = _bundle(name)
    appt = _appointment(bundle)
    assert bundle.event == want.event
    assert appt["status"] == want.status
    assert (appt["start"], appt["end"], appt["minutesDuration"]) == (
        want.start,
        want.end,
        want.minutes,
    )
    assert [(i["system"], i["value"]) for i in appt["identifier"]] == want.ids
    assert [(i.system, i.value) for i in bundle.records[-1].identifiers] == want.ids
    refs = [
        p["actor"]["reference"] for p in appt["participant"] if "reference" in p.get("actor", {})
    ]
    patient_ref = f"Patient?identifier={want.patient[0]}|{want.patient[1]}"
    assert refs == [patient_ref, *want.actors]
    statuses = {ext["valueString"] for ext in appt["extension"] if ext["url"] == FILLER_STATUS_URL}
    assert statuses == ({want.filler_status} if want.filler_status else set())
    for words in want.note_words:
        assert any(words in note for note in bundle.notes), (words, bundle.notes)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_slots_are_busy_until_cancelled_and_records_come_before_their_users(name: str) -> None:
    bundle = _bundle(name)
    appt = _appointment(bundle)
    slots = [r.resource for r in bundle.records if r.resource_type == "Slot"]
    schedules = [r for r in bundle.records if r.resource_type == "Schedule"]
    assert len(slots) == len(schedules) == len(EXPECTED[name].actors)
    free = appt["status"] in ("cancelled", "entered-in-error")
    for slot in slots:
        assert slot["status"] == ("free" if free else "busy")
        assert (slot["start"], slot["end"]) == (appt["start"], appt["end"])
    known: set[str] = set()
    for record in bundle.records:
        for ref in re.findall(r'"reference": "([^"]+)"', repr(record.resource).replace("'", '"')):
            assert ref in known, f"{record.resource_type} points at {ref} before it exists"
        for ident in record.identifiers:
            known.add(f"{record.resource_type}?identifier={ident.system}|{ident.value}")


@pytest.mark.parametrize(
    "name", [*sorted(EXPECTED), "fhirconv_adt_a08_01_v28.hl7", "vinah_adt_a04_v25.hl7"]
)
def test_every_record_is_valid_fhir_r4(name: str) -> None:
    for record in _bundle(name).records:
        model = get_fhir_model_class(record.resource_type)
        assert model.model_validate(record.resource).get_resource_type() == record.resource_type


def test_fhirconv_details_service_type_comment_and_participant_roles() -> None:
    appt = _appointment(_bundle("fhirconv_siu_s12_01_v28.hl7"))
    assert appt["serviceType"][0]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "76164006",
        "display": "Biopsy of colon (procedure)",
    }
    assert appt["comment"] == "Appointment booked for emergency procedure"
    practitioner = appt["participant"][3]
    assert practitioner["type"][0]["text"] == "Gastroenterologist"
    assert all(p["status"] == "accepted" for p in appt["participant"])


def test_cancel_and_noshow_participants_decline() -> None:
    for name in ("fhirconv_siu_s15_01_v28.hl7", "fhirconv_siu_s26_01_v28.hl7"):
        appt = _appointment(_bundle(name))
        assert {p["status"] for p in appt["participant"]} == {"declined"}
    cancelled = _appointment(_bundle("barts_tie_siu_s15_v24.hl7"))
    assert cancelled["cancelationReason"]["text"] == "6080524"


def test_resource_times_that_differ_are_kept_on_the_participant() -> None:
    appt = _appointment(_bundle("mirth_batch_siu_s14_v23.hl7"))
    periods = [p.get("period") for p in appt["participant"]]
    aix_period = {"start": "2011-06-14T12:45:00Z", "end": "2011-06-14T13:45:00Z"}
    assert periods == [None, None, aix_period, aix_period]


def test_status_from_aix_filler_status_when_sch25_is_empty() -> None:
    appt = _appointment(_bundle("edge_siu_s14_aix_only_dst_gap_lf.hl7"))
    assert appt["status"] == "pending"
    assert {p["status"] for p in appt["participant"][1:]} == {"tentative"}


def test_escapes_nulls_and_z_segments_in_the_edge_message() -> None:
    bundle = _bundle("edge_siu_s12_custom_seps_latin1_crlf.hl7")
    patient = bundle.records[0].resource
    assert patient["name"] == [{"family": "Dupré", "given": ["Zoé"]}]
    assert "birthDate" not in patient and patient["gender"] == "female"
    assert [i["value"] for i in patient["identifier"]] == ["PAT-9", "OLD-1"]
    appt = _appointment(bundle)
    assert appt["comment"] == "Patient asked for \na morning slot"
    assert appt["reasonCode"][0]["text"] == "Contrôle#annuel été"
    assert "type" not in appt["participant"][1]
    assert '""' not in repr([r.resource for r in bundle.records])
    assert bundle.unmapped == [("appointment_types", "CONSULT")]
    assert appt["appointmentType"] == {"text": "Consultation"}


def test_mapped_appointment_type_and_crosswalks_are_used() -> None:
    mapping = gmed_mapping(
        appointment_types={"CONSULT": Coding(system="urn:x:types", code="consult")},
        providers={"DR7": Crosswalk(system="http://hl7.org/fhir/sid/us-npi", value="1234567893")},
    )
    bundle = _bundle("edge_siu_s12_custom_seps_latin1_crlf.hl7", mapping)
    appt = _appointment(bundle)
    assert bundle.unmapped == []
    assert appt["appointmentType"]["coding"] == [{"system": "urn:x:types", "code": "consult"}]
    npi_ref = "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|1234567893"
    assert appt["participant"][1]["actor"]["reference"] == npi_ref
    practitioner = next(r for r in bundle.records if r.resource_type == "Practitioner")
    assert [i.value for i in practitioner.identifiers] == ["DR7", "1234567893"]


def test_aig_with_a_provider_crosswalk_is_a_practitioner() -> None:
    mapping = gmed_mapping(
        providers={"Baxter, Stanley": Crosswalk(system="urn:nhs:gmc", value="G999")}
    )
    bundle = _bundle("barts_tie_siu_s12_v24.hl7", mapping)
    kinds = [r.resource_type for r in bundle.records]
    assert "Device" not in kinds and "Practitioner" in kinds


def test_unmapped_status_parks_and_replays_after_the_mapping_is_fixed() -> None:
    raw = fixture_bytes("mirth_batch_siu_s14_v23.hl7").replace(b"|Scheduled", b"|Tentative")
    with pytest.raises(UnmappedCode, match="Tentative"):
        normalize_bytes(raw, gmed_mapping(), "UTC")
    fixed = gmed_mapping()
    fixed = fixed.model_copy(
        update={
            "version": 2,
            "content": fixed.content.model_copy(
                update={"status": {**fixed.content.status, "Tentative": "pending"}}
            ),
        }
    )
    assert _appointment(normalize_bytes(raw, fixed, "UTC"))["status"] == "pending"


def test_patient_events() -> None:
    a08 = _bundle("fhirconv_adt_a08_01_v28.hl7")
    assert a08.event == "patient-updated" and [r.resource_type for r in a08.records] == ["Patient"]
    patient = a08.records[0].resource
    assert patient["birthDate"] == "1988-08-18" and patient["gender"] == "male"
    assert [(i.system, i.value) for i in a08.records[0].identifiers] == [
        (f"{P}:patient:test1", "PATID1234"),
        (f"{P}:patient:USSSA", "123456789"),
    ]
    redox = _bundle("redox_adt_a04_v23_bom.hl7")
    assert redox.event == "patient-registered"
    assert redox.records[0].resource["name"] == [{"family": "Doe", "given": ["Jane"]}]
    assert redox.records[0].identifiers[0].system == f"{P}:patient"
    vinah = _bundle("vinah_adt_a04_v25.hl7")
    assert "birthDate" not in vinah.records[0].resource
    assert any("10131113" in note for note in vinah.notes)


@pytest.mark.parametrize(
    ("raw", "error", "reason"),
    [
        (fixture_bytes("mirth_ack_aa_v22.hl7"), NotSchedulingMessage, "ACK"),
        (fixture_bytes("python_hl7_ack_a01_aa_v231.hl7"), NotSchedulingMessage, "ACK"),
        (b"MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\r", NotSchedulingMessage, "ORU"),
        (b"MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rPID|1||9\r", NotSchedulingMessage, "A01"),
        (b"MSH|^~\\&|A|B|C|D|1||SIU^S18|1|P|2.5\rSCH|1\r", UnmappedCode, "S18"),
        (b"MSH|^~\\&|A|B|C|D|1||SIU^S12|1|P|2.5\rSCH||||\r", IncompleteMessage, "SCH-1"),
        (b"MSH|^~\\&|A|B|C|D|1||SIU^S12|1|P|2.5\rPID|1||9\r", IncompleteMessage, "no SCH"),
        (
            b"MSH|^~\\&|A|B|C|D|1||SIU^S12|1|P|2.5\rSCH|1\rPID|1||9\r",
            IncompleteMessage,
            "no start and end",
        ),
        (
            b"MSH|^~\\&|A|B|C|D|1||SIU^S12|1|P|2.5\rSCH|1||||||||30|fortnights|^^^20240101\r",
            RejectedInput,
            "fortnights",
        ),
    ],
)
def test_messages_we_cannot_use_say_why(raw: bytes, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        normalize_bytes(raw, gmed_mapping(), "UTC")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_default_mapping_gives_the_same_statuses(name: str) -> None:
    content = load_default("gmed")
    if content is None:
        pytest.skip("mappings/defaults/gmed.json is not there yet")
    shipped = MappingSet(source="gmed", version=1, content=content)
    assert _appointment(_bundle(name, shipped))["status"] == EXPECTED[name].status
