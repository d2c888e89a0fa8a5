"""A bundle is written as a batch; records that touch one another still see each other's writes."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from canonical.errors import IdentifierConflict
from canonical.records import Identifier, SourceBundle, SourceRecord
from canonical.repository import CanonicalRepository
from canonical.tables import identifiers, provenance, resource_versions, resources, search_index
from tests.canonical.canonical_seed import (
    MRN,
    NPI,
    PROVIDER,
    patient,
    practitioner,
    schedule,
    slot,
)
from tests.canonical.canonical_seed import provenance as prov

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def apply(engine: Engine, records: list[SourceRecord], seq: int) -> list:
    with Session(engine) as session, session.begin():
        return CanonicalRepository(session).apply(SourceBundle(records=records), prov(seq), seq)


def count(engine: Engine, table) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def test_a_large_bundle_creates_then_leaves_every_record_alone(engine: Engine) -> None:
    records = [patient(f"M{i}", family=f"F{i}") for i in range(1200)]  # past one lookup chunk
    created = apply(engine, records, seq=1)
    assert all(r.created for r in created) and len({r.id for r in created}) == 1200
    again = apply(engine, [patient(f"M{i}", family=f"F{i}") for i in range(1200)], seq=2)
    assert [r.id for r in again] == [r.id for r in created]
    assert not any(r.changed for r in again)
    assert count(engine, resources) == count(engine, resource_versions) == 1200
    assert count(engine, provenance) == count(engine, identifiers) == 1200
    with Session(engine) as session:
        seqs = set(session.execute(select(resources.c.message_seq)).scalars())
    assert seqs == {2}


def test_the_same_record_twice_in_a_bundle_makes_two_versions(engine: Engine) -> None:
    first, second = apply(engine, [patient("M1", "Doe"), patient("M1", "Roe")], seq=1)
    assert first.created and second.changed and not second.created
    assert (first.id, first.version, second.version) == (second.id, 1, 2)
    assert count(engine, resources) == 1 and count(engine, resource_versions) == 2
    assert count(engine, provenance) == 2 and count(engine, identifiers) == 1
    with Session(engine) as session:
        stored = session.execute(select(resources.c.resource)).scalar_one()
    assert stored["name"] == [{"family": "Roe"}]


def test_a_later_record_finds_an_earlier_one_by_an_identifier_it_added(engine: Engine) -> None:
    apply(engine, [practitioner("P1")], seq=1)
    bare_npi = SourceRecord(
        "Practitioner",
        [Identifier(NPI, "123")],
        {"resourceType": "Practitioner", "name": [{"family": "Dr P1"}], "gender": "male"},
    )
    joined, found = apply(engine, [practitioner("P1", npi="123"), bare_npi], seq=2)
    assert joined.changed and found.id == joined.id and found.version == 3
    assert count(engine, resources) == 1 and count(engine, identifiers) == 2
    with Session(engine) as session:
        index_rows = session.execute(select(func.count()).select_from(search_index)).scalar_one()
    assert index_rows == 0  # a Practitioner has no search-index entries


def test_a_conflict_in_a_bundle_keeps_the_records_before_it(engine: Engine) -> None:
    apply(engine, [practitioner("P1"), practitioner("P2")], seq=1)
    both = SourceRecord(
        "Practitioner",
        [Identifier(PROVIDER, "P1"), Identifier(PROVIDER, "P2")],
        {"resourceType": "Practitioner"},
    )
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        with pytest.raises(IdentifierConflict):
            repo.apply(SourceBundle(records=[patient("M2"), both]), prov(2), 2)
        # As record-by-record upserts would: the patient before the conflict is written.
        assert repo.find_by_identifier("M2", MRN, "Patient")


def test_every_row_of_a_new_record_points_at_it(engine: Engine) -> None:
    apply(engine, [patient("M1")], seq=1)  # pks are taken after the stored ones
    results = apply(engine, [practitioner("P1", npi="9"), patient("M2"), patient("M3")], seq=2)
    with Session(engine) as session:
        pks = dict(session.execute(select(resources.c.id, resources.c.pk)).all())
        owners = {
            table.name: sorted(session.execute(select(table.c.resource_pk)).scalars())
            for table in (identifiers, resource_versions, provenance)
        }
        lookups = {
            r.id: CanonicalRepository(session).find_by_identifier(v, resource_type=r.resource_type)
            for r, v in zip(results, ("9", "M2", "M3"), strict=True)
        }
    assert len(set(pks.values())) == 4
    assert owners["canonical_identifiers"] == sorted([*pks.values(), pks[results[0].id]])
    assert owners["canonical_resource_versions"] == owners["canonical_provenance"]
    assert owners["canonical_provenance"] == sorted(pks.values())
    assert lookups == {r.id: [r.reference] for r in results}


def test_a_bundle_leaves_its_records_as_they_were_and_stamps_them_once(engine: Engine) -> None:
    records = [schedule("DR1"), slot("S1", "DR1", START), slot("S2", "DR1", START)]
    before = copy.deepcopy([r.resource for r in records])
    results = apply(engine, [practitioner("DR1"), *records], seq=1)
    assert [r.resource for r in records] == before  # references resolved in copies only
    with Session(engine) as session:
        stored = [CanonicalRepository(session).get(r.resource_type, r.id) for r in results]
    assert all(uuid.UUID(r.id).version == 4 for r in results)
    assert len({doc["meta"]["lastUpdated"] for doc in stored if doc}) == 1
    schedule_id = results[1].id
    assert [doc["schedule"] for doc in stored[2:] if doc] == [
        {"reference": f"Schedule/{schedule_id}"}
    ] * 2
