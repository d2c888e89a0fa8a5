"""CanonicalRepository on SQLite and PostgreSQL: upserts, identifiers, staleness, history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from canonical.errors import (
    IdentifierConflict,
    InvalidResource,
    UnresolvedReference,
    VersionConflict,
)
from canonical.records import Identifier, SourceBundle, SourceRecord, conditional_reference
from canonical.repository import CanonicalRepository
from canonical.tables import identifiers, resource_versions, resources
from tests.canonical.canonical_seed import (
    APPOINTMENT,
    MRN,
    appointment,
    patient,
    provenance,
    siu_bundle,
)

START = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def apply(engine: Engine, bundle: SourceBundle, seq: int | None, message_id: int = 1) -> list:
    with Session(engine) as session, session.begin():
        return CanonicalRepository(session).apply(bundle, provenance(message_id), seq)


def read(engine: Engine, fn):  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return fn(CanonicalRepository(session))


def appointment_id(engine: Engine, value: str = "APT1") -> str:
    refs = read(engine, lambda r: r.find_by_identifier(value, APPOINTMENT, "Appointment"))
    assert len(refs) == 1
    return str(refs[0].split("/")[1])


def test_apply_creates_records_and_resolves_conditional_references(engine: Engine) -> None:
    results = apply(engine, siu_bundle("APT1", START), seq=1)

    assert [r.resource_type for r in results] == [
        "Patient",
        "Practitioner",
        "Location",
        "Schedule",
        "Slot",
        "Appointment",
    ]
    assert all(r.created and r.changed and not r.stale and r.version == 1 for r in results)
    ids = {r.resource_type: r.id for r in results}
    appt = read(engine, lambda r: r.get("Appointment", ids["Appointment"]))
    assert appt["id"] == ids["Appointment"]
    assert appt["meta"]["versionId"] == "1"
    assert appt["meta"]["lastUpdated"].endswith("Z")
    actors = [p["actor"]["reference"] for p in appt["participant"]]
    assert actors == [
        f"Patient/{ids['Patient']}",
        f"Practitioner/{ids['Practitioner']}",
        f"Location/{ids['Location']}",
    ]
    assert appt["slot"] == [{"reference": f"Slot/{ids['Slot']}"}]
    slot = read(engine, lambda r: r.get("Slot", ids["Slot"]))
    assert slot["schedule"]["reference"] == f"Schedule/{ids['Schedule']}"
    assert results[-1].status == "booked" and results[-1].previous_status is None


def test_same_content_again_makes_no_new_version(engine: Engine) -> None:
    first = apply(engine, siu_bundle("APT1", START), seq=1)
    again = apply(engine, siu_bundle("APT1", START), seq=2, message_id=2)

    assert [r.id for r in again] == [r.id for r in first]
    assert not any(r.changed or r.created for r in again)
    assert all(r.version == 1 for r in again)
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(resources)).scalar_one() == 6
        assert (
            session.execute(select(func.count()).select_from(resource_versions)).scalar_one() == 6
        )


def test_status_change_makes_a_version_with_history_and_provenance(engine: Engine) -> None:
    apply(engine, siu_bundle("APT1", START), seq=1, message_id=11)
    results = apply(engine, siu_bundle("APT1", START, status="cancelled"), seq=2, message_id=12)

    appt_result = results[-1]
    assert appt_result.changed and not appt_result.created
    assert appt_result.version == 2
    assert (appt_result.previous_status, appt_result.status) == ("booked", "cancelled")
    slot_result = results[-2]
    assert (slot_result.previous_status, slot_result.status) == ("busy", "free")
    assert not results[0].changed  # the patient did not change

    appt_id = appt_result.id
    history = read(engine, lambda r: r.history("Appointment", appt_id))
    assert [h["meta"]["versionId"] for h in history] == ["2", "1"]
    assert [h["status"] for h in history] == ["cancelled", "booked"]
    first = read(engine, lambda r: r.version("Appointment", appt_id, 1))
    assert first["status"] == "booked"

    prov = read(engine, lambda r: r.provenance_of("Appointment", appt_id))
    assert [(p.version, p.message_id, p.message_seq) for p in prov] == [(1, 11, 1), (2, 12, 2)]
    assert all(p.source_system == "gmed" and p.mapping_version == "gmed-v1" for p in prov)
    assert prov[0].source_id == f"{APPOINTMENT}|APT1"
    assert prov[0].original_time_text == START.strftime("%Y%m%d%H%M%S")
    assert prov[0].received_at == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def test_older_message_does_not_overwrite_newer_one(engine: Engine) -> None:
    apply(engine, siu_bundle("APT1", START, status="cancelled"), seq=10)
    late = apply(engine, siu_bundle("APT1", START, status="booked"), seq=5)

    assert late[-1].stale and not late[-1].changed
    assert late[-1].status == "cancelled"
    stored = read(engine, lambda r: r.get("Appointment", late[-1].id))
    assert stored["status"] == "cancelled"
    assert stored["meta"]["versionId"] == "1"


def test_unchanged_newer_message_still_moves_the_stale_guard(engine: Engine) -> None:
    apply(engine, siu_bundle("APT1", START), seq=5)
    apply(engine, siu_bundle("APT1", START), seq=7)
    late = apply(engine, siu_bundle("APT1", START, status="cancelled"), seq=6)

    assert late[-1].stale
    assert read(engine, lambda r: r.get("Appointment", late[-1].id))["status"] == "booked"


def test_api_writes_without_sequence_are_never_stale(engine: Engine) -> None:
    apply(engine, siu_bundle("APT1", START), seq=5)
    result = apply(engine, siu_bundle("APT1", START, status="arrived"), seq=None)[-1]
    assert result.changed and result.version == 2
    # ... and the guard stays at 5: an older message is still refused afterwards.
    assert apply(engine, siu_bundle("APT1", START, status="noshow"), seq=4)[-1].stale


def test_identifiers_of_other_sources_find_and_join_the_record(engine: Engine) -> None:
    apply(engine, siu_bundle("APT1", START), seq=1)
    appt_id = appointment_id(engine)
    record = appointment("APT1", START, comment="from epic")
    record.identifiers = [Identifier("urn:epic:csn", "E-77"), Identifier(APPOINTMENT, "APT1")]
    with Session(engine) as session, session.begin():
        result = CanonicalRepository(session).upsert(record, provenance(2, "epic"), 2)
    assert result.id == appt_id and result.version == 2

    # Only the Epic id now: still the same record, and both ids stay in the union.
    record = appointment("APT1", START, comment="from epic again")
    record.identifiers = [Identifier("urn:epic:csn", "E-77")]
    with Session(engine) as session, session.begin():
        result = CanonicalRepository(session).upsert(record, provenance(3, "epic"), 3)
    assert result.id == appt_id
    stored = read(engine, lambda r: r.get("Appointment", appt_id))
    assert {(i["system"], i["value"]) for i in stored["identifier"]} == {
        (APPOINTMENT, "APT1"),
        ("urn:epic:csn", "E-77"),
    }
    assert read(engine, lambda r: r.find_by_identifier("E-77")) == [f"Appointment/{appt_id}"]
    assert read(engine, lambda r: r.find_by_identifier("E-77", system="urn:other")) == []
    assert read(engine, lambda r: r.provenance_of("Appointment", appt_id))[-1].source_system == (
        "epic"
    )


def test_identifiers_naming_two_records_are_a_conflict(engine: Engine) -> None:
    apply(engine, SourceBundle([patient("MRN1"), patient("MRN2")]), seq=1)
    both = patient("MRN1")
    both.identifiers = [Identifier(MRN, "MRN1"), Identifier(MRN, "MRN2")]
    with Session(engine) as session, session.begin(), pytest.raises(IdentifierConflict) as err:
        CanonicalRepository(session).upsert(both, provenance(), 2)
    assert "MRN1" in str(err.value) and "MRN2" in str(err.value)


def test_unresolved_reference_names_the_missing_identifier(engine: Engine) -> None:
    bundle = SourceBundle([appointment("APT1", START)])
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        with pytest.raises(UnresolvedReference, match=r"no Slot has identifier .*\|APT1-slot"):
            repo.apply(bundle, provenance(), 1)
        assert repo.count("Appointment") == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"status": "done"}, "Appointment.status"),
        ({"start": "2024-05-06T09:00:00"}, "start"),
        ({"end": "2024-05-06T08:00:00Z"}, "before start"),
    ],
)
def test_invalid_resources_are_rejected_and_nothing_is_written(
    engine: Engine, change: dict[str, str], message: str
) -> None:
    apply(engine, SourceBundle(siu_bundle("APT1", START).records[:-1]), seq=1)
    record = appointment("APT1", START)
    record.resource.update(change)
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        with pytest.raises(InvalidResource, match=message):
            repo.upsert(record, provenance(), 2)
        assert repo.count("Appointment") == 0
        assert session.execute(select(func.count()).select_from(identifiers)).scalar_one() == 6


def test_participant_status_is_checked(engine: Engine) -> None:
    apply(engine, SourceBundle(siu_bundle("APT1", START).records[:-1]), seq=1)
    record = appointment("APT1", START)
    record.resource["participant"][0]["status"] = "maybe"
    with Session(engine) as session, session.begin(), pytest.raises(InvalidResource) as err:
        CanonicalRepository(session).upsert(record, provenance(), 2)
    assert "participant[0].status" in str(err.value)


def test_save_creates_updates_and_checks_the_expected_version(engine: Engine) -> None:
    apply(engine, siu_bundle("APT1", START), seq=1)
    appt_id = appointment_id(engine)
    current = read(engine, lambda r: r.get("Appointment", appt_id))
    changed = {**current, "status": "arrived"}
    with Session(engine) as session, session.begin():
        result = CanonicalRepository(session).save(
            "Appointment", changed, provenance(None, "api"), expected_version=1
        )
    assert (result.version, result.previous_status, result.status) == (2, "booked", "arrived")
    with Session(engine) as session, session.begin(), pytest.raises(VersionConflict):
        CanonicalRepository(session).save(
            "Appointment", changed | {"status": "fulfilled"}, provenance(None, "api"), 1
        )

    new = {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": "MRN9"}],
        "name": [{"family": "New"}],
    }
    with Session(engine) as session, session.begin():
        created = CanonicalRepository(session).save("Patient", new, provenance(None, "api"))
    assert created.created and created.version == 1
    found = read(engine, lambda r: r.find_by_identifier("MRN9", MRN, "Patient"))
    assert found == [f"Patient/{created.id}"]
    # A resource naming a conditional reference is resolved on save as on upsert.
    slot = {
        "resourceType": "Slot",
        "schedule": {
            "reference": conditional_reference("Schedule", "urn:harmony:gmed:schedule", "DR1")
        },
        "status": "free",
        "start": "2024-05-07T09:00:00Z",
        "end": "2024-05-07T09:30:00Z",
    }
    with Session(engine) as session, session.begin():
        saved = CanonicalRepository(session).save("Slot", slot, provenance(None, "api"))
    stored = read(engine, lambda r: r.get("Slot", saved.id))
    assert stored["schedule"]["reference"].startswith("Schedule/")


def test_unknown_resource_type_is_rejected(engine: Engine) -> None:
    record = SourceRecord("Encounter", [Identifier("x", "1")], {"resourceType": "Encounter"})
    with Session(engine) as session, session.begin(), pytest.raises(InvalidResource):
        CanonicalRepository(session).upsert(record, provenance(), 1)


def test_a_stand_in_record_creates_but_never_overwrites(engine: Engine) -> None:
    system = "urn:harmony:athena-a:providerid"
    full = SourceRecord(
        "Practitioner",
        [Identifier(system, "71")],
        {"resourceType": "Practitioner", "name": [{"family": "Hopper", "given": ["Grace"]}]},
    )
    bare = SourceRecord(
        "Practitioner",
        [Identifier(system, "71")],
        {"resourceType": "Practitioner"},
        if_missing=True,
    )
    created = apply(engine, SourceBundle(records=[bare]), seq=1)[0]
    assert created.created
    written = apply(engine, SourceBundle(records=[full]), seq=2)[0]
    assert written.changed and written.id == created.id
    kept = apply(engine, SourceBundle(records=[bare]), seq=3)[0]
    assert (kept.changed, kept.stale, kept.id) == (False, False, created.id)
    stored = read(engine, lambda r: r.get("Practitioner", created.id))
    assert stored["name"] == [{"family": "Hopper", "given": ["Grace"]}]


def test_practitioner_roles_are_stored_and_searchable(engine: Engine) -> None:
    from canonical.search import search

    who = Identifier("urn:harmony:roster:physician", "7")
    role = Identifier("urn:harmony:roster:role", "7/cardiology/north")
    bundle = SourceBundle(
        records=[
            SourceRecord(
                "Practitioner",
                [who],
                {"resourceType": "Practitioner", "name": [{"text": "Dr Lee"}]},
            ),
            SourceRecord(
                "PractitionerRole",
                [role],
                {
                    "resourceType": "PractitionerRole",
                    "practitioner": {"reference": conditional_reference("Practitioner", *who)},
                    "specialty": [{"text": "Cardiology"}],
                },
            ),
        ]
    )
    practitioner, practitioner_role = apply(engine, bundle, seq=1)
    with Session(engine) as session:
        found = search(
            session, "PractitionerRole", [("practitioner", f"Practitioner/{practitioner.id}")]
        )
    assert [r["id"] for r in found.resources] == [practitioner_role.id]
    with pytest.raises(InvalidResource, match="needs the practitioner"):
        apply(
            engine,
            SourceBundle(
                records=[
                    SourceRecord("PractitionerRole", [role], {"resourceType": "PractitionerRole"})
                ]
            ),
            seq=2,
        )
