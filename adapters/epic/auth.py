"""SMART Backend Services: our signed client assertion buys an access token from Epic.

Epic registers a client by its public keys (a JWKS the hub serves); each token request
carries a short-lived RS384 JWT proving we hold the private key. Epic refuses an assertion
whose ``jti`` it has seen, that lives longer than five minutes or whose ``kid`` it does not
know, so every assertion is freshly made and kept short.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapters.contract import SourceError
from adapters.http import RetryingHttp, describe
from adapters.oauth import TokenCache

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHM = "RS384"
ASSERTION_LIFETIME = 300
"""Epic's ceiling for ``exp - now``; longer assertions are refused."""


def generate_key(bits: int = 2048) -> tuple[str, str]:
    """A new RSA key as (private PEM, kid); the kid is the JWK thumbprint, so it is stable."""
    key = RSAKey.generate_key(bits)
    return key.as_pem(private=True).decode(), key.thumbprint()


def public_jwks(private_key_pem: str, kid: str) -> dict[str, Any]:
    """The JWKS Epic fetches to check our assertions: the public half only."""
    key = RSAKey.import_key(private_key_pem)
    public = key.as_dict(private=False)
    public.update({"kid": kid, "alg": ALGORITHM, "use": "sig"})
    return {"keys": [public]}


def client_assertion(
    client_id: str,
    private_key_pem: str,
    kid: str,
    token_url: str,
    *,
    now: float | None = None,
) -> str:
    """A signed private_key_jwt for one token request (a fresh ``jti`` every call)."""
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "jti": uuid.uuid4().hex,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": kid}
    key = RSAKey.import_key(private_key_pem)
    return jwt.encode(header, claims, key, algorithms=[ALGORITHM])


def token_url_for(base_url: str) -> str:
    """Epic serves OAuth beside the FHIR API: ``<root>/api/FHIR/R4`` -> ``<root>/oauth2/token``."""
    root, found, _ = base_url.rstrip("/").partition("/api/FHIR/")
    return f"{root if found else base_url.rstrip('/')}/oauth2/token"


class BackendAuth:
    """Fetches tokens with client assertions; ``token`` suits ``RetryingHttp.token``."""

    def __init__(
        self,
        http: RetryingHttp,
        token_url: str,
        client_id: str,
        private_key_pem: str,
        kid: str,
        scope: str | None = None,
        *,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.token_url = token_url
        self._client_id = client_id
        self._key_pem = private_key_pem
        self._kid = kid
        self._scope = scope
        self.cache = TokenCache(self._fetch, refresh_margin=refresh_margin, clock=clock)

    def token(self, force: bool = False) -> str:
        return self.cache.get(force)

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(
                self._client_id, self._key_pem, self._kid, self.token_url
            ),
        }
        if self._scope:
            form["scope"] = self._scope
        response = self._http.request("POST", self.token_url, data=form, idempotent=True)
        if response.status_code != 200:
            raise SourceError(
                f"token request refused: {_oauth_error(response)}",
                retryable=False,
                status=response.status_code,
            )
        try:
            body = orjson.loads(response.content)
            return str(body["access_token"]), float(body.get("expires_in", 300))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"token answer unreadable: {describe(response)}") from exc


def _oauth_error(response: httpx.Response) -> str:
    """``error: error_description`` from an OAuth error body, else the raw answer."""
    try:
        body = orjson.loads(response.content)
        return f"{body['error']}: {body.get('error_description', '')}".rstrip(": ")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return describe(response)
