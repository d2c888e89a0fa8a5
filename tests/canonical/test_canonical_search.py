"""FHIR search over canonical records, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from canonical.repository import CanonicalRepository
from canonical.search import SearchError, parse_date, search
from tests.canonical.canonical_seed import (
    APPOINTMENT,
    MRN,
    PROVIDER,
    SERVICE_TYPE,
    provenance,
    siu_bundle,
)

DAY = datetime(2024, 5, 6, tzinfo=UTC)
BOOKINGS = {
    # appointment id: (start, status, patient MRN, provider, room, service code)
    "APT1": (DAY + timedelta(hours=9), "booked", "MRN1", "DR1", "ROOM1", "124"),
    "APT2": (DAY + timedelta(hours=14), "cancelled", "MRN2", "DR2", "ROOM1", "57"),
    "APT3": (DAY + timedelta(days=1, hours=9), "booked", "MRN1", "DR1", "ROOM2", "124"),
}


@dataclass
class Seeded:
    session: Session
    ids: dict[str, str]  # "APT1", "Patient:MRN1", "Slot:APT1", "Schedule:DR1" ... -> id

    def find(self, resource_type: str, **params: str | list[str]) -> list[str]:
        return [r["id"] for r in self.search(resource_type, **params).resources]

    def search(self, resource_type: str, **params: str | list[str]):  # type: ignore[no-untyped-def]
        pairs = []
        for name, value in params.items():
            name = name.replace("__", ".").replace("_dash_", "-").replace("_colon_", ":")
            for v in value if isinstance(value, list) else [value]:
                pairs.append((name, v))
        return search(self.session, resource_type, pairs)

    def appts(self, *names: str) -> list[str]:
        return [self.ids[n] for n in names]


@pytest.fixture
def seeded(engine: Engine) -> Iterator[Seeded]:
    ids: dict[str, str] = {}
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        for seq, (appt, (start, status, mrn, dr, room, code)) in enumerate(BOOKINGS.items(), 1):
            bundle = siu_bundle(
                appt, start, status=status, mrn=mrn, provider_code=dr, room=room, service_code=code
            )
            results = repo.apply(bundle, provenance(seq), seq)
            keys = [f"Patient:{mrn}", f"Practitioner:{dr}", f"Location:{room}", f"Schedule:{dr}"]
            keys += [f"Slot:{appt}", appt]
            ids.update(zip(keys, (r.id for r in results), strict=True))
    with Session(engine) as session:
        yield Seeded(session, ids)


def test_identifier_token_forms(seeded: Seeded) -> None:
    assert seeded.find("Appointment", identifier="APT2") == seeded.appts("APT2")
    assert seeded.find("Appointment", identifier=f"{APPOINTMENT}|APT2") == seeded.appts("APT2")
    assert seeded.find("Appointment", identifier="urn:other|APT2") == []
    assert seeded.find("Appointment", identifier="|APT2") == []  # it has a system
    assert seeded.find("Appointment", identifier=f"{APPOINTMENT}|") == seeded.appts(
        "APT1", "APT2", "APT3"
    )
    assert seeded.find("Appointment", identifier="APT1,APT3") == seeded.appts("APT1", "APT3")
    assert seeded.find("Patient", identifier=f"{MRN}|MRN2") == [seeded.ids["Patient:MRN2"]]
    assert seeded.find("Practitioner", identifier="9DR1") == [seeded.ids["Practitioner:DR1"]]


def test_system_less_identifier_matches_bar_value(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        saved = CanonicalRepository(session).save(
            "Patient",
            {"resourceType": "Patient", "identifier": [{"value": "LOCAL-1"}]},
            provenance(None, "api"),
        )
        found = search(session, "Patient", [("identifier", "|LOCAL-1")]).resources
        assert [r["id"] for r in found] == [saved.id]


def test_date_prefixes_on_appointment_start(seeded: Seeded) -> None:
    everything = seeded.appts("APT1", "APT2", "APT3")
    assert seeded.find("Appointment", date="2024-05-06") == seeded.appts("APT1", "APT2")
    assert seeded.find("Appointment", date="eq2024-05") == everything
    assert seeded.find("Appointment", date="ge2024-05-07") == seeded.appts("APT3")
    assert seeded.find("Appointment", date="lt2024-05-07") == seeded.appts("APT1", "APT2")
    assert seeded.find("Appointment", date="gt2024-05-06T09:00:00Z") == seeded.appts("APT2", "APT3")
    assert seeded.find("Appointment", date="le2024-05-06T09:00:00Z") == seeded.appts("APT1")
    assert seeded.find("Appointment", date="ne2024-05-06") == seeded.appts("APT3")
    # Repeated: a range, and an offset other than UTC.
    assert seeded.find(
        "Appointment", date=["ge2024-05-06T10:00:00+02:00", "lt2024-05-06T15:00:00Z"]
    ) == seeded.appts("APT1", "APT2")
    assert seeded.find("Appointment", date="2023") == []


def test_date_without_offset_uses_the_given_timezone(seeded: Seeded) -> None:
    # 2024-05-06 in New York is 04:00Z to next day 04:00Z: APT1 (09Z) and APT2 (14Z).
    lower, upper = parse_date("2024-05-06", ZoneInfo("America/New_York"))
    assert (lower, upper) == (
        datetime(2024, 5, 6, 4, tzinfo=UTC),
        datetime(2024, 5, 7, 4, tzinfo=UTC),
    )
    result = search(
        seeded.session, "Appointment", [("date", "2024-05-07")], ZoneInfo("Pacific/Kiritimati")
    )  # UTC+14: the 7th there starts at 10:00Z on the 6th
    assert [r["id"] for r in result.resources] == seeded.appts("APT2", "APT3")


@pytest.mark.parametrize("bad", ["2024-13-01", "yesterday", "ge", "2024-05-06T25:00:00Z"])
def test_bad_dates_are_search_errors(seeded: Seeded, bad: str) -> None:
    with pytest.raises(SearchError, match="date"):
        seeded.find("Appointment", date=bad)


def test_participant_references(seeded: Seeded) -> None:
    mrn1 = seeded.ids["Patient:MRN1"]
    dr2 = seeded.ids["Practitioner:DR2"]
    room1 = seeded.ids["Location:ROOM1"]
    assert seeded.find("Appointment", patient=f"Patient/{mrn1}") == seeded.appts("APT1", "APT3")
    assert seeded.find("Appointment", patient=mrn1) == seeded.appts("APT1", "APT3")
    assert seeded.find("Appointment", patient=f"http://x/fhir/Patient/{mrn1}") == seeded.appts(
        "APT1", "APT3"
    )
    assert seeded.find("Appointment", practitioner=dr2) == seeded.appts("APT2")
    assert seeded.find("Appointment", location=f"Location/{room1}") == seeded.appts("APT1", "APT2")
    assert seeded.find("Appointment", actor=f"Practitioner/{dr2}") == seeded.appts("APT2")
    assert seeded.find("Appointment", actor=dr2) == seeded.appts("APT2")
    assert seeded.find("Appointment", actor_colon_Patient=dr2) == []
    assert seeded.find("Appointment", patient=f"Practitioner/{dr2}") == []
    # AND across parameters
    assert seeded.find("Appointment", patient=mrn1, location=room1) == seeded.appts("APT1")
    slot1 = seeded.ids["Slot:APT1"]
    assert seeded.find("Appointment", slot=f"Slot/{slot1}") == seeded.appts("APT1")


def test_chained_identifier_search(seeded: Seeded) -> None:
    assert seeded.find("Appointment", patient__identifier=f"{MRN}|MRN1") == seeded.appts(
        "APT1", "APT3"
    )
    assert seeded.find("Appointment", practitioner__identifier="DR2") == seeded.appts("APT2")
    assert seeded.find("Schedule", actor_colon_Practitioner__identifier=f"{PROVIDER}|DR1") == [
        seeded.ids["Schedule:DR1"]
    ]
    with pytest.raises(SearchError, match="needs a type"):
        seeded.find("Appointment", actor__identifier="DR2")


def test_status_and_service_type(seeded: Seeded) -> None:
    assert seeded.find("Appointment", status="booked") == seeded.appts("APT1", "APT3")
    assert seeded.find("Appointment", status="cancelled,noshow") == seeded.appts("APT2")
    assert seeded.find("Appointment", service_dash_type="57") == seeded.appts("APT2")
    assert seeded.find("Appointment", service_dash_type=f"{SERVICE_TYPE}|124") == seeded.appts(
        "APT1", "APT3"
    )
    assert seeded.find("Appointment", service_dash_type="urn:x|124") == []


def test_slot_search_by_schedule_status_and_start(seeded: Seeded) -> None:
    dr1 = seeded.ids["Schedule:DR1"]
    slots = [seeded.ids[f"Slot:{a}"] for a in ("APT1", "APT3")]
    assert seeded.find("Slot", schedule=f"Schedule/{dr1}") == slots
    assert seeded.find("Slot", schedule=dr1, status="busy") == slots
    assert seeded.find("Slot", schedule=dr1, start=["ge2024-05-07", "lt2024-05-08"]) == slots[1:]
    assert seeded.find("Slot", status="free") == [seeded.ids["Slot:APT2"]]
    assert seeded.find("Slot", schedule="Practitioner/x") == []
    every_slot = [seeded.ids[f"Slot:{a}"] for a in BOOKINGS]  # in start order
    assert seeded.find("Slot", service_dash_type="124") == every_slot


def test_schedule_and_id_search(seeded: Seeded) -> None:
    dr1 = seeded.ids["Practitioner:DR1"]
    assert seeded.find("Schedule", actor=f"Practitioner/{dr1}") == [seeded.ids["Schedule:DR1"]]
    assert seeded.find("Appointment", _id=seeded.ids["APT2"]) == seeded.appts("APT2")
    assert seeded.find("Location", _id=",".join([seeded.ids["Location:ROOM1"], "nope"])) == [
        seeded.ids["Location:ROOM1"]
    ]


def test_paging_summary_and_sort(seeded: Seeded) -> None:
    first = seeded.search("Appointment", _count="2")
    assert first.total == 3 and [r["id"] for r in first.resources] == seeded.appts("APT1", "APT2")
    second = seeded.search("Appointment", _count="2", _offset="2")
    assert [r["id"] for r in second.resources] == seeded.appts("APT3")
    beyond = seeded.search("Appointment", _offset="10")
    assert beyond.total == 3 and beyond.resources == []
    counted = seeded.search("Appointment", status="booked", _summary="count")
    assert counted.total == 2 and counted.resources == []
    assert seeded.find("Appointment", _sort="-date") == seeded.appts("APT3", "APT2", "APT1")
    assert seeded.search("Appointment", _count="9999").count == 500
    assert seeded.find("Appointment", _format="json", date="2024-05-07") == seeded.appts("APT3")


@pytest.mark.parametrize(
    ("resource_type", "params", "message"),
    [
        ("Appointment", [("colour", "red")], "unknown search parameter 'colour'"),
        ("Appointment", [("_count", "-1")], "_count"),
        ("Appointment", [("_summary", "text")], "_summary"),
        ("Appointment", [("status:not", "booked")], "modifier"),
        ("Patient", [("_sort", "date")], "cannot sort"),
        ("Encounter", [], "not supported"),
        ("Appointment", [("patient", "")], "no value"),
        ("Appointment", [("patient.name", "x")], ".identifier"),
    ],
)
def test_bad_searches_explain_themselves(
    seeded: Seeded, resource_type: str, params: list[tuple[str, str]], message: str
) -> None:
    with pytest.raises(SearchError, match=message):
        search(seeded.session, resource_type, params)


def test_search_reflects_updates(engine: Engine, seeded: Seeded) -> None:
    start = BOOKINGS["APT1"][0] + timedelta(days=3)
    with Session(engine) as session, session.begin():
        CanonicalRepository(session).apply(siu_bundle("APT1", start), provenance(9), 9)
    seeded.session.rollback()  # end the read snapshot
    assert seeded.find("Appointment", date="2024-05-06") == seeded.appts("APT2")
    assert seeded.find("Appointment", date="2024-05-09") == seeded.appts("APT1")
