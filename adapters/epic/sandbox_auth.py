"""The sandbox's OAuth side: checks client assertions as Epic does and issues bearer tokens.

Every check a real Epic token endpoint makes is here (RS384 signature against the client's
registered JWKS, ``kid``, ``iss``/``sub``, ``aud``, ``exp`` within five minutes, ``jti``
never reused), so a client that passes the sandbox builds assertions Epic accepts.
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from adapters.epic.auth import ALGORITHM, ASSERTION_LIFETIME, ASSERTION_TYPE
from adapters.epic.sandbox_state import EpicSandboxState, Issued

LEEWAY = 5


class OAuthError(Exception):
    """An OAuth error answer: ``{"error": ..., "error_description": ...}`` with a status."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def issue_token(state: EpicSandboxState, form_body: bytes, token_url: str) -> dict[str, Any]:
    """The token answer for a client_credentials request, or OAuthError."""
    form = {k: v[0] for k, v in parse_qs(form_body.decode("latin-1")).items()}
    with state.lock:
        state.token_requests += 1
    if form.get("grant_type") != "client_credentials":
        raise OAuthError(
            400, "unsupported_grant_type", f"grant_type {form.get('grant_type')!r} not supported"
        )
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError(400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion")
    if not assertion:
        raise OAuthError(400, "invalid_request", "client_assertion is missing")
    client_id = _check_assertion(state, assertion, token_url)
    token = secrets.token_urlsafe(24)
    now = time.time()
    with state.lock:
        state.tokens[token] = Issued(client_id, now, now + state.token_lifetime)
    answer: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": state.token_lifetime,
    }
    if form.get("scope"):
        answer["scope"] = form["scope"]
    return answer


def bearer_ok(state: EpicSandboxState, authorization: str | None) -> str | None:
    """None when the bearer token is valid, else why it is not."""
    if not authorization or not authorization.startswith("Bearer "):
        return "no bearer token"
    issued = state.tokens.get(authorization[7:])
    if issued is None:
        return "unknown access token"
    if issued.expires_at <= time.time() or issued.issued_at < state.faults.revoked_before:
        return "access token expired"
    return None


def _invalid(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


def _check_assertion(state: EpicSandboxState, assertion: str, token_url: str) -> str:
    try:
        compact = extract_compact(assertion.encode())
        header = compact.headers()
        claims = orjson.loads(compact.payload)
    except (JoseError, ValueError) as exc:
        raise _invalid(f"client_assertion is not a JWT: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise _invalid(f"client_assertion must be signed {ALGORITHM}, not {header.get('alg')}")
    client_id = claims.get("iss")
    keys = state.clients.get(client_id) if isinstance(client_id, str) else None
    if keys is None:
        raise _invalid(f"unknown client {client_id!r}")
    kid = header.get("kid")
    if not kid or kid not in {k.kid for k in keys.keys}:
        raise _invalid(f"kid {kid!r} is not in the JWKS registered for {client_id}")
    try:
        jwt.decode(assertion, keys, algorithms=[ALGORITHM])
    except JoseError as exc:
        raise _invalid(f"client_assertion signature does not verify: {exc}") from None
    _check_claims(state, claims, client_id, token_url)
    return client_id


def _check_claims(
    state: EpicSandboxState, claims: dict[str, Any], client_id: str, token_url: str
) -> None:
    now = time.time()
    if claims.get("sub") != client_id:
        raise _invalid("sub must equal iss (the client_id)")
    aud = claims.get("aud")
    if token_url not in (aud if isinstance(aud, list) else [aud]):
        raise _invalid(f"aud {aud!r} is not this token endpoint ({token_url})")
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise _invalid("exp is missing")
    if exp <= now - LEEWAY:
        raise _invalid("client_assertion has expired")
    if exp > now + ASSERTION_LIFETIME + LEEWAY:
        raise _invalid("exp is more than 5 minutes in the future")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + LEEWAY:
        raise _invalid("client_assertion is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise _invalid("jti is missing")
    with state.lock:
        for old, until in list(state.seen_jti.items()):
            if until < now - LEEWAY:
                del state.seen_jti[old]
        if jti in state.seen_jti:
            raise _invalid(f"jti {jti!r} was already used")
        state.seen_jti[jti] = float(exp)
