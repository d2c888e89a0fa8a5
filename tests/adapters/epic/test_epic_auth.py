"""SMART Backend Services: our assertions, the sandbox's checks and the shared token cache."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from adapters.contract import SourceError
from adapters.epic.auth import (
    ASSERTION_TYPE,
    BackendAuth,
    client_assertion,
    generate_key,
    public_jwks,
    token_url_for,
)
from adapters.epic.client import make_client
from adapters.http import RetryingHttp
from tests.adapters.epic.conftest import Sandbox
from tests.adapters.epic.epic_helpers import CLIENT_ID, FAST, signing_key


def _token_url(sandbox: Sandbox) -> str:
    return f"{sandbox.url}/oauth2/token"


def _post_assertion(sandbox: Sandbox, assertion: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    return httpx.post(_token_url(sandbox), data=form)


def _signed(claims: dict[str, object], kid: str | None = None, pem: str | None = None) -> str:
    key_pem, key_kid = signing_key()
    header = {"alg": "RS384", "typ": "JWT", "kid": kid or key_kid}
    return jwt.encode(header, claims, RSAKey.import_key(pem or key_pem), algorithms=["RS384"])


def _claims(sandbox: Sandbox, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": _token_url(sandbox),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(changes)
    return claims


def test_assertion_header_and_claims_follow_epic_rules() -> None:
    pem, kid = signing_key()
    url = "https://fhir.example.org/oauth2/token"
    first = client_assertion("cid", pem, kid, url, now=1_700_000_000)
    second = client_assertion("cid", pem, kid, url, now=1_700_000_000)
    token = jwt.decode(first, KeySet.import_key_set(public_jwks(pem, kid)), algorithms=["RS384"])
    assert token.header == {"alg": "RS384", "typ": "JWT", "kid": kid}
    claims = token.claims
    assert claims["iss"] == claims["sub"] == "cid"
    assert claims["aud"] == url
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] == claims["iat"] == 1_700_000_000
    other = jwt.decode(second, KeySet.import_key_set(public_jwks(pem, kid)), algorithms=["RS384"])
    assert other.claims["jti"] != claims["jti"]


def test_public_jwks_holds_only_the_public_key() -> None:
    pem, kid = generate_key()
    (key,) = public_jwks(pem, kid)["keys"]
    assert key["kid"] == kid and key["alg"] == "RS384" and key["kty"] == "RSA"
    assert {"n", "e"} <= key.keys()
    assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


def test_token_url_is_derived_from_the_fhir_base() -> None:
    assert (
        token_url_for("https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/R4/")
        == "https://fhir.epic.com/interconnect-fhir-oauth/oauth2/token"
    )


def test_sandbox_issues_a_token_for_a_valid_assertion(sandbox: Sandbox) -> None:
    response = _post_assertion(sandbox, _signed(_claims(sandbox)))
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    fhir = httpx.get(
        f"{sandbox.url}/api/FHIR/R4/Schedule",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert fhir.status_code == 200 and fhir.json()["resourceType"] == "Bundle"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"aud": "https://elsewhere.example/oauth2/token"}, "is not this token endpoint"),
        ({"exp": int(time.time()) + 3600}, "more than 5 minutes"),
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"sub": "someone-else"}, "sub must equal iss"),
        ({"iss": "unknown-client", "sub": "unknown-client"}, "unknown client"),
        ({"jti": ""}, "jti is missing"),
    ],
)
def test_sandbox_refuses_bad_claims(sandbox: Sandbox, changes: dict[str, object], why: str) -> None:
    response = _post_assertion(sandbox, _signed(_claims(sandbox, **changes)))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert why in response.json()["error_description"]


def test_sandbox_refuses_a_reused_jti(sandbox: Sandbox) -> None:
    claims = _claims(sandbox)
    assert _post_assertion(sandbox, _signed(claims)).status_code == 200
    again = _post_assertion(sandbox, _signed(claims))
    assert again.status_code == 401
    assert "already used" in again.json()["error_description"]


def test_sandbox_refuses_an_unknown_kid_and_a_foreign_key(sandbox: Sandbox) -> None:
    unknown = _post_assertion(sandbox, _signed(_claims(sandbox), kid="not-registered"))
    assert unknown.status_code == 401
    assert "not in the JWKS" in unknown.json()["error_description"]
    other_pem, _ = generate_key()
    forged = _post_assertion(sandbox, _signed(_claims(sandbox), pem=other_pem))
    assert forged.status_code == 401
    assert "signature" in forged.json()["error_description"]


def test_sandbox_refuses_other_grants(sandbox: Sandbox) -> None:
    response = httpx.post(_token_url(sandbox), data={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_fhir_calls_without_a_valid_token_get_401_outcome(sandbox: Sandbox) -> None:
    for headers in ({}, {"Authorization": "Bearer forged"}):
        response = httpx.get(f"{sandbox.url}/api/FHIR/R4/Slot", headers=headers)
        assert response.status_code == 401
        assert response.json()["resourceType"] == "OperationOutcome"
        assert "invalid_token" in response.headers["WWW-Authenticate"]


def test_a_refused_assertion_is_a_clear_non_retryable_error(sandbox: Sandbox) -> None:
    config = sandbox.config()
    wrong_pem, wrong_kid = generate_key()
    creds = {**config.credentials, "private_key_pem": wrong_pem, "kid": wrong_kid}
    bad = type(config)(config.name, config.source_type, config.base_url, creds, config.options)
    epic = make_client(bad, policy=FAST)
    with pytest.raises(SourceError) as caught:
        epic.read_appointment("anything")
    epic.close()
    assert caught.value.retryable is False
    assert "invalid_client" in str(caught.value)
    assert "not in the JWKS" in str(caught.value)


def test_many_threads_share_one_token_request(sandbox: Sandbox) -> None:
    epic = make_client(sandbox.config(), policy=FAST)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            epic.http.request("GET", f"{epic.base_url}/Schedule")
        except BaseException as exc:  # reported below: a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    epic.close()
    assert errors == []
    assert sandbox.state.token_requests == 1
    assert sum("Schedule" in r for r in sandbox.state.requests) == 8


def test_token_is_refreshed_before_it_expires(sandbox: Sandbox) -> None:
    now = [1000.0]
    with httpx.Client() as http:
        pem, kid = signing_key()
        auth = BackendAuth(
            RetryingHttp(http, FAST),
            _token_url(sandbox),
            CLIENT_ID,
            pem,
            kid,
            scope="system/Slot.read",
            clock=lambda: now[0],
        )
        first = auth.token()
        now[0] += 3000  # 600 s left of 3600: still fresh
        assert auth.token() == first
        now[0] += 541  # 59 s left, inside the 60 s margin: fetch a new one early
        second = auth.token()
    assert second != first
    assert sandbox.state.token_requests == 2
    assert sandbox.state.tokens[second].client_id == CLIENT_ID
