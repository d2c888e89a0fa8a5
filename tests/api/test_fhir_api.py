"""The FHIR R4 API over a seeded canonical store, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from api.app import create_app
from canonical.repository import CanonicalRepository
from canonical.search import SEARCH_PARAMS
from hub.settings import Settings
from tests.canonical.canonical_seed import APPOINTMENT, MRN, provenance, siu_bundle

FHIR_JSON = "application/fhir+json"
DAY = datetime(2024, 5, 6, tzinfo=UTC)
STARTS = {f"APT{i}": DAY + timedelta(hours=8 + i) for i in range(1, 6)}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    settings = Settings(database_url=engine.url.render_as_string(hide_password=False))
    app = create_app(settings, engine=engine)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {settings.dev_token}"
        yield test_client


@pytest.fixture
def ids(engine: Engine) -> dict[str, str]:
    """Five appointments for MRN1 on one day, APT5 rescheduled once (version 2)."""
    found: dict[str, str] = {}
    with Session(engine) as session, session.begin():
        repo = CanonicalRepository(session)
        for seq, (appt, start) in enumerate(STARTS.items(), 1):
            results = repo.apply(siu_bundle(appt, start), provenance(seq), seq)
            found[appt] = results[-1].id
            found["Patient"] = results[0].id
            found["Practitioner"] = results[1].id
        moved = repo.apply(siu_bundle("APT5", STARTS["APT5"], status="cancelled"), provenance(9), 9)
        assert moved[-1].version == 2
    return found


def outcome(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = OperationOutcome.model_validate(response.json())
    return str(body.issue[0].diagnostics)


def test_metadata_lists_supported_types_and_params_without_a_token(client: TestClient) -> None:
    response = client.get("/fhir/metadata", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    statement = response.json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    served = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(served) == set(SEARCH_PARAMS)
    for resource_type, params in SEARCH_PARAMS.items():
        assert [p["name"] for p in served[resource_type]["searchParam"]] == [p.name for p in params]


def test_read_returns_the_resource_with_etag(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get(f"/fhir/Appointment/{ids['APT5']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert response.headers["etag"] == 'W/"2"'
    assert "GMT" in response.headers["last-modified"]
    body = response.json()
    assert (body["id"], body["status"], body["meta"]["versionId"]) == (
        ids["APT5"],
        "cancelled",
        "2",
    )


def test_history_and_vread(client: TestClient, ids: dict[str, str]) -> None:
    response = client.get(f"/fhir/Appointment/{ids['APT5']}/_history")
    assert response.status_code == 200
    bundle = response.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history" and bundle["total"] == 2
    assert [e["resource"]["status"] for e in bundle["entry"]] == ["cancelled", "booked"]
    assert [e["request"]["method"] for e in bundle["entry"]] == ["PUT", "POST"]
    old = client.get(f"/fhir/Appointment/{ids['APT5']}/_history/1")
    assert old.status_code == 200 and old.json()["status"] == "booked"
    assert "no version 7" in outcome(client.get(f"/fhir/Appointment/{ids['APT5']}/_history/7"), 404)


def test_search_returns_a_searchset_with_paging_links(
    client: TestClient, ids: dict[str, str]
) -> None:
    response = client.get(
        "/fhir/Appointment", params={"patient": ids["Patient"], "date": "2024-05-06", "_count": 2}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    bundle = response.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == len(STARTS)
    assert [e["resource"]["id"] for e in bundle["entry"]] == [ids["APT1"], ids["APT2"]]
    entry = bundle["entry"][0]
    assert entry["fullUrl"] == f"http://testserver/fhir/Appointment/{ids['APT1']}"
    assert entry["search"] == {"mode": "match"}
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    assert set(links) == {"self", "next"}

    # Follow next links to the end: every appointment exactly once, in start order.
    seen = [e["resource"]["id"] for e in bundle["entry"]]
    while "next" in links:
        query = parse_qs(urlsplit(links["next"]).query)
        assert query["patient"] == [ids["Patient"]] and query["date"] == ["2024-05-06"]
        page = client.get(links["next"]).json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "previous" in links
    assert seen == [ids[a] for a in STARTS]


def test_search_variants(client: TestClient, ids: dict[str, str]) -> None:
    def found(path: str, **params: str) -> list[str]:
        response = client.get(path, params=params)
        assert response.status_code == 200, response.text
        return [e["resource"]["id"] for e in response.json().get("entry", [])]

    assert found("/fhir/Appointment", identifier=f"{APPOINTMENT}|APT3") == [ids["APT3"]]
    assert found("/fhir/Appointment", status="cancelled") == [ids["APT5"]]
    assert found("/fhir/Appointment", **{"patient.identifier": f"{MRN}|MRN1"}) == [
        ids[a] for a in STARTS
    ]
    assert found("/fhir/Patient", identifier="MRN1") == [ids["Patient"]]
    assert found("/fhir/Schedule", actor=f"Practitioner/{ids['Practitioner']}") != []
    counted = client.get("/fhir/Appointment", params={"_summary": "count"}).json()
    assert (counted["total"] == len(STARTS) and "entry" not in counted) or counted["entry"] == []


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/fhir/Appointment", {"colour": "red"}, "unknown search parameter 'colour'"),
        ("/fhir/Appointment", {"date": "ge2024-99-01"}, "not a valid date"),
        ("/fhir/Slot", {"start": "soon"}, "not a FHIR date"),
        ("/fhir/Appointment", {"_count": "many"}, "_count"),
    ],
)
def test_bad_searches_are_400_operation_outcomes(
    client: TestClient, path: str, params: dict[str, str], message: str
) -> None:
    assert message in outcome(client.get(path, params=params), 400)


def test_unknown_ids_and_types_are_404(client: TestClient, ids: dict[str, str]) -> None:
    assert "Appointment/nope is not known" in outcome(client.get("/fhir/Appointment/nope"), 404)
    assert "not served" in outcome(client.get("/fhir/Encounter/1"), 404)
    assert "not served" in outcome(client.get("/fhir/Encounter"), 404)
    assert outcome(client.get("/fhir/Appointment/nope/_history"), 404)
    assert outcome(client.get(f"/fhir/Appointment/{ids['APT1']}/bogus/path"), 404)


def test_missing_or_wrong_token_is_401(client: TestClient, ids: dict[str, str]) -> None:
    no_token = client.get(f"/fhir/Appointment/{ids['APT1']}", headers={"Authorization": ""})
    assert "missing bearer token" in outcome(no_token, 401)
    wrong = client.get("/fhir/Appointment", headers={"Authorization": "Bearer nope"})
    assert "invalid bearer token" in outcome(wrong, 401)


def test_server_errors_are_500_operation_outcomes(client: TestClient, engine: Engine) -> None:
    from canonical.tables import search_index

    search_index.drop(engine)  # a real database failure, not a mock
    response = client.get("/fhir/Appointment", params={"actor": "Practitioner/1"})
    assert "internal server error" in outcome(response, 500)
