"""Built-in users: password sign-in, refresh, deactivation, role checks."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from api.deps import AdminPrincipal
from hub.tokens import InvalidToken, TokenService
from hub.users import UserError, create_user, hash_password, users, verify_password


def test_password_hashes_are_salted_and_verified() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$")
    assert verify_password("correct horse", first) and not verify_password("wrong", first)
    assert not verify_password("anything", None)


def test_login_refresh_and_me(client: TestClient, engine: Engine) -> None:
    create_user(engine, "dr.lee", roles={"physician"}, password="s3cret!", physician_id=7)
    anonymous = {"Authorization": ""}
    refused = client.post("/api/auth/token", json={"username": "dr.lee", "password": "nope"})
    assert refused.status_code == 401
    pair = client.post(
        "/api/auth/token", json={"username": "dr.lee", "password": "s3cret!"}, headers=anonymous
    ).json()
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    me = client.get("/api/auth/me", headers=bearer).json()
    assert me["roles"] == ["physician"] and me["physician_id"] == 7
    # a refresh token is not an access token, and buys a new pair
    as_access = client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {pair['refresh_token']}"}
    )
    assert as_access.status_code == 401
    renewed = client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.status_code == 200 and renewed.json()["access_token"]
    # deactivation applies at once
    with engine.begin() as conn:
        conn.execute(update(users).values(active=0))
    assert client.get("/api/auth/me", headers=bearer).status_code == 401


def test_tokens_expire_and_are_bound_to_the_key(engine: Engine) -> None:
    user = create_user(engine, "nurse", roles={"staff"}, password="pw")
    service = TokenService("key-one")
    pair = service.issue(user, now=time.time() - 3600)
    with pytest.raises(InvalidToken, match="expired"):
        service.verify(pair.access_token)
    fresh = service.issue(user)
    with pytest.raises(InvalidToken):
        TokenService("key-two").verify(fresh.access_token)
    with pytest.raises(UserError, match="unknown roles"):
        create_user(engine, "x", roles={"superuser"})
    with pytest.raises(UserError, match="already exists"):
        create_user(engine, "nurse", roles={"staff"})


def test_require_roles_answers_403_naming_the_roles(client: TestClient, engine: Engine) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]

    @app.get("/probe")
    def probe(who: AdminPrincipal) -> dict[str, str]:
        return {"who": who.subject}

    create_user(engine, "cc", roles={"call_center"}, password="pw")
    token = client.post("/api/auth/token", json={"username": "cc", "password": "pw"}).json()
    denied = client.get("/probe", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]
    assert client.get("/probe").json() == {"who": "service"}
