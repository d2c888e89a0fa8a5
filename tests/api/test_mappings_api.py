"""/api/mappings over HTTP on SQLite and PostgreSQL, through FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api import mappings
from api.deps import NotAuthenticated, Principal, get_principal
from hub.db import session_factory
from hub.settings import Settings
from mappings.defaults import load_default


def build_app(settings: Settings, engine: Engine) -> FastAPI:
    """The real app when every router imports; else just this router with the same state."""
    try:
        from api.app import create_app
    except ImportError:
        pass
    else:
        return create_app(settings, engine=engine)
    app = FastAPI()
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.runtime = None

    @app.exception_handler(NotAuthenticated)
    async def _unauthenticated(_request: Request, exc: NotAuthenticated) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=401)

    app.include_router(mappings.router)
    return app


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    url = engine.url.render_as_string(hide_password=False)
    return build_app(Settings(database_url=url, env="development"), engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    token = app.state.settings.dev_token
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


def gmed_json() -> dict[str, Any]:
    content = load_default("gmed")
    assert content is not None
    return content.model_dump(mode="json")


def test_needs_a_bearer_token(app: FastAPI) -> None:
    with TestClient(app) as anonymous:
        assert anonymous.get("/api/mappings").status_code == 401
        assert anonymous.post("/api/mappings/gmed/rollback").status_code == 401


def test_lists_shipped_sources_as_version_1(client: TestClient) -> None:
    response = client.get("/api/mappings")
    assert response.status_code == 200
    by_source = {s["source"]: s for s in response.json()}
    assert {"gmed", "epic", "athena", "google"} <= set(by_source)
    assert by_source["gmed"]["active_label"] == "gmed@v1"
    assert by_source["gmed"]["versions"] == 1


def test_create_activate_diff_rollback(client: TestClient) -> None:
    body = gmed_json()
    body["status"]["Parked"] = "pending"
    created = client.post("/api/mappings/gmed/versions", params={"note": "parked"}, json=body)
    assert created.status_code == 201, created.text
    assert (created.json()["label"], created.json()["active"]) == ("gmed@v2", False)
    assert created.json()["created_by"] == "service"
    assert client.get("/api/mappings/gmed").json()["version"] == 1

    diff = client.get("/api/mappings/gmed/diff", params={"from": 1, "to": 2})
    assert diff.status_code == 200
    assert diff.json()["changes"] == [
        {"table": "status", "key": "Parked", "kind": "added", "before": None, "after": "pending"}
    ]

    activated = client.post("/api/mappings/gmed/versions/2/activate")
    assert activated.status_code == 200
    assert activated.json()["active"] is True
    assert client.get("/api/mappings/gmed").json()["content"]["status"]["Parked"] == "pending"

    versions = client.get("/api/mappings/gmed/versions").json()
    assert [(v["version"], v["active"], v["note"]) for v in versions] == [
        (1, False, "shipped defaults gmed.json"),
        (2, True, "parked"),
    ]

    rolled = client.post("/api/mappings/gmed/rollback")
    assert rolled.status_code == 200
    assert rolled.json()["label"] == "gmed@v1"
    again = client.post("/api/mappings/gmed/rollback")
    assert again.status_code == 409
    assert "cannot roll back" in again.json()["detail"]


def test_create_and_activate_in_one_call(client: TestClient) -> None:
    response = client.post(
        "/api/mappings/gmed/versions", params={"activate": "true"}, json=gmed_json()
    )
    assert response.status_code == 201
    assert response.json()["active"] is True
    assert client.get("/api/mappings/gmed").json()["label"] == "gmed@v2"


def test_get_version_returns_stored_content(client: TestClient) -> None:
    response = client.get("/api/mappings/gmed/versions/1")
    assert response.status_code == 200
    assert response.json()["content"] == gmed_json()


def test_invalid_content_is_422_with_the_reason(client: TestClient) -> None:
    body = gmed_json()
    body["status"]["Booked"] = "confirmed"
    body["timezone"] = "Nowhere/Land"
    body["colour"] = "blue"
    response = client.post("/api/mappings/gmed/versions", json=body)
    assert response.status_code == 422
    problems = {tuple(e["loc"][1:]): e["msg"] for e in response.json()["detail"]}
    assert "not a FHIR R4 Appointment status" in problems[("status", "Booked")]
    assert "Nowhere/Land" in problems[("timezone",)]
    assert ("colour",) in problems
    assert len(client.get("/api/mappings/gmed/versions").json()) == 1


def test_invalid_source_name_is_422(client: TestClient) -> None:
    response = client.post("/api/mappings/Bad%20Name/versions", json={})
    assert response.status_code == 422
    assert "invalid source name" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("get", "/api/mappings/nosuchvendor", "no mapping set for source 'nosuchvendor'"),
        ("get", "/api/mappings/nosuchvendor/versions", "no mapping set"),
        ("get", "/api/mappings/nosuchvendor/unmapped", "no mapping set"),
        ("get", "/api/mappings/gmed/versions/9", "no mapping version 9"),
        ("post", "/api/mappings/gmed/versions/9/activate", "no mapping version 9"),
        ("get", "/api/mappings/gmed/diff?from=1&to=4", "no mapping version 4"),
        ("post", "/api/mappings/nosuchvendor/rollback", "no mapping set"),
    ],
)
def test_unknown_source_or_version_is_404(
    client: TestClient, method: str, path: str, message: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert message in response.json()["detail"]


def test_diff_needs_both_versions(client: TestClient) -> None:
    assert client.get("/api/mappings/gmed/diff", params={"from": 1}).status_code == 422


def test_unmapped_report_drops_codes_once_mapped(client: TestClient, engine: Engine) -> None:
    from sqlalchemy.orm import Session

    from mappings.store import MappingStore

    with Session(engine) as s:
        store = MappingStore(s)
        store.record_unmapped("gmed", "status", "Parked", 41)
        store.record_unmapped("gmed", "status", "Parked", 42)
        store.record_unmapped("epic", "status", "on-hold", 7)
        s.commit()

    everything = client.get("/api/mappings/unmapped").json()
    assert {(e["source"], e["code"]) for e in everything} == {
        ("gmed", "Parked"),
        ("epic", "on-hold"),
    }
    [gmed] = client.get("/api/mappings/gmed/unmapped").json()
    assert (gmed["count"], gmed["last_message_id"], gmed["checked_against"]) == (2, 42, "gmed@v1")
    assert client.get("/api/mappings/unmapped", params={"source": "epic"}).json()[0]["code"] == (
        "on-hold"
    )

    body = gmed_json()
    body["status"]["parked"] = "pending"
    client.post("/api/mappings/gmed/versions", params={"activate": "true"}, json=body)
    assert client.get("/api/mappings/gmed/unmapped").json() == []


def test_mapping_sets_are_for_integration_engineers(app: FastAPI) -> None:
    app.dependency_overrides[get_principal] = lambda: Principal("nurse", frozenset({"staff"}))
    with TestClient(app) as staff:
        refused = staff.post("/api/mappings/gmed/versions", json=gmed_json())
        assert refused.status_code == 403
        assert "integration" in refused.json()["detail"]
        assert staff.get("/api/mappings/gmed").status_code == 403
        assert staff.post("/api/mappings/gmed/rollback").status_code == 403
