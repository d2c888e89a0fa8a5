"""External OpenID Connect tokens, checked against a local issuer served on a real port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.sandbox_server import serving
from api.app import create_app
from hub.oidc import InvalidExternalToken, OidcIssuer, OidcVerifier, claim_at, map_roles
from hub.settings import Settings
from hub.users import create_user

AUDIENCE = "harmony-api"
ROLE_MAP = {"scheduler": "staff", "hub-admin": "admin", "patient": "patient"}


@dataclass
class LocalIssuer:
    """A tiny identity provider: discovery + JWKS, keys swappable for rotation tests."""

    url: str = ""
    keys: list[Any] = field(default_factory=list)
    jwks_hits: int = 0

    def app(self) -> Starlette:
        def discovery(_: Request) -> JSONResponse:
            return JSONResponse({"issuer": self.url, "jwks_uri": f"{self.url}/keys"})

        def jwks(_: Request) -> JSONResponse:
            self.jwks_hits += 1
            return JSONResponse({"keys": [k.as_dict(private=False) for k in self.keys]})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/keys", jwks),
            ]
        )

    def token(self, key: Any, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.url,
            "sub": "user-42",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "preferred_username": "ada",
            "realm_access": {"roles": ["scheduler", "offline_access"]},
            **claims,
        }
        alg = "ES256" if isinstance(key, ECKey) else "RS256"
        return jwt.encode({"alg": alg, "kid": key.kid}, body, key)


def _rsa(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid})


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    local = LocalIssuer(keys=[_rsa("k1"), ECKey.generate_key("P-256", parameters={"kid": "e1"})])
    with serving(local.app()) as url:
        local.url = url
        yield local


def config(issuer: LocalIssuer, **extra: Any) -> OidcIssuer:
    return OidcIssuer(
        issuer=issuer.url,
        audience=[AUDIENCE],
        roles_claim="realm_access.roles",
        role_map=ROLE_MAP,
        **extra,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_good_tokens_rsa_and_ec_through_discovery(issuer: LocalIssuer) -> None:
    verifier = OidcVerifier([config(issuer)])
    for key in issuer.keys:
        identity = verifier.verify(issuer.token(key))
        assert identity.roles == {"staff"}  # offline_access is not mapped
        assert identity.username == "ada"
        assert identity.external_subject == f"{issuer.url}|user-42"
    assert verifier.cache(issuer.url).fetches == 1  # cached across tokens


def test_wrong_audience_expired_and_foreign_issuer_are_refused(issuer: LocalIssuer) -> None:
    verifier = OidcVerifier([config(issuer)], leeway=30)
    key = issuer.keys[0]
    with pytest.raises(InvalidExternalToken, match="aud"):
        verifier.verify(issuer.token(key, aud="someone-else"))
    past = int(time.time()) - 120
    with pytest.raises(InvalidExternalToken, match="expired"):
        verifier.verify(issuer.token(key, exp=past))
    # within the leeway a just-expired token still counts (clock skew)
    assert verifier.verify(issuer.token(key, exp=int(time.time()) - 10)).subject == "user-42"
    with pytest.raises(InvalidExternalToken, match="not trusted"):
        verifier.verify(issuer.token(key, iss="https://elsewhere.example"))
    # a token signed by a key the issuer never published
    stranger = _rsa("k1")
    with pytest.raises(InvalidExternalToken, match="signature"):
        verifier.verify(issuer.token(stranger))


def test_unknown_kid_refetches_once_then_accepts_the_rotated_key(issuer: LocalIssuer) -> None:
    clock = Clock()
    verifier = OidcVerifier(
        [config(issuer, jwks_uri=f"{issuer.url}/keys")], jwks_min_refetch=30, clock=clock
    )
    cache = verifier.cache(issuer.url)
    old = issuer.keys[0]
    assert verifier.verify(issuer.token(old)).roles == {"staff"}
    assert cache.fetches == 1
    rotated = _rsa("k2")
    with pytest.raises(InvalidExternalToken, match="no key 'k2'"):
        verifier.verify(issuer.token(rotated))
    assert cache.fetches == 1  # fetched 0 s ago: an unknown kid does not hammer the issuer
    issuer.keys.append(rotated)
    try:
        clock.now += 31
        hits = issuer.jwks_hits
        assert verifier.verify(issuer.token(rotated)).subject == "user-42"
        assert cache.fetches == 2 and issuer.jwks_hits == hits + 1
        for _ in range(3):  # forged kids within the interval: no further fetches
            with pytest.raises(InvalidExternalToken):
                verifier.verify(issuer.token(_rsa("forged")))
        assert cache.fetches == 2
    finally:
        issuer.keys.remove(rotated)


def test_role_claim_paths_and_mapping() -> None:
    cfg = OidcIssuer(
        issuer="https://idp", audience="a", roles_claim="scope", role_map={"ops": "admin"}
    )
    assert map_roles(cfg, {"scope": "openid ops"}) == {"admin"}
    assert map_roles(cfg, {"scope": ["ops", "x"]}) == {"admin"}
    assert map_roles(cfg, {}) == frozenset()
    assert claim_at({"a": {"b": {"c": 1}}}, "a.b.c") == 1 and claim_at({"a": 1}, "a.b") is None
    with pytest.raises(ValueError, match="unknown Harmony roles"):
        OidcIssuer(issuer="https://idp", audience="a", role_map={"x": "superuser"})


@pytest.fixture
def api(issuer: LocalIssuer, engine: Engine) -> Iterator[TestClient]:
    settings = Settings(
        database_url=engine.url.render_as_string(hide_password=False),
        oidc_issuers=[config(issuer)],
    )
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client


def test_api_accepts_external_tokens_and_links_users(
    api: TestClient, issuer: LocalIssuer, engine: Engine
) -> None:
    key = issuer.keys[0]
    bearer = {"Authorization": f"Bearer {issuer.token(key)}"}
    me = api.get("/api/auth/me", headers=bearer).json()
    assert me["roles"] == ["staff"] and me["subject"].endswith(":ada") and me["user_id"] is None
    # a Harmony user linked by iss|sub says which patient this is
    create_user(
        engine, "p.jones", roles={"patient"}, patient_id="pat-1",
        external_subject=f"{issuer.url}|user-9",
    )  # fmt: skip
    patient = issuer.token(key, sub="user-9", realm_access={"roles": ["patient"]})
    linked = api.get("/api/auth/me", headers={"Authorization": f"Bearer {patient}"}).json()
    assert linked["subject"] == "p.jones" and linked["patient_id"] == "pat-1"
    assert linked["roles"] == ["patient"]
    wrong_aud = issuer.token(key, aud="other")
    refused = api.get("/api/auth/me", headers={"Authorization": f"Bearer {wrong_aud}"})
    assert refused.status_code == 401 and "aud" in refused.json()["detail"]


def test_unmapped_roles_grant_nothing(api: TestClient, issuer: LocalIssuer) -> None:
    token = issuer.token(issuer.keys[0], realm_access={"roles": ["offline_access", "uma"]})
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/auth/me", headers=bearer).json()["roles"] == []
    for path in ("/api/messages", "/fhir/Slot", "/api/audit", "/api/mappings"):
        assert api.get(path, headers=bearer).status_code == 403, path
    outcome = api.get("/fhir/Appointment", headers=bearer)
    assert outcome.json()["resourceType"] == "OperationOutcome"
