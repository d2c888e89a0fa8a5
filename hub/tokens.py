"""Harmony's own JWTs: short-lived access tokens and longer refresh tokens (HS256, joserfc).

The key is derived from ``HARMONY_SECRET_KEY`` (refused at its default in production). A
refresh token can only be exchanged for a new pair, never used as an access token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jwt import JWTClaimsRegistry

from hub.users import User

ISSUER = "harmony"
ACCESS_SECONDS = 15 * 60
REFRESH_SECONDS = 14 * 24 * 3600


class InvalidToken(Exception):
    pass


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


class TokenService:
    def __init__(self, secret_key: str) -> None:
        material = hashlib.sha256(b"harmony-jwt:" + secret_key.encode()).digest()
        self._key = OctKey.import_key(material)

    def issue(self, user: User, now: float | None = None) -> TokenPair:
        moment = int(now if now is not None else time.time())
        base = {"iss": ISSUER, "sub": str(user.id), "iat": moment}
        access = {
            **base,
            "typ": "access",
            "exp": moment + ACCESS_SECONDS,
            "name": user.username,
            "roles": sorted(user.roles),
        }
        refresh = {**base, "typ": "refresh", "exp": moment + REFRESH_SECONDS}
        refresh["jti"] = secrets.token_urlsafe(16)
        return TokenPair(self._encode(access), self._encode(refresh), ACCESS_SECONDS)

    def verify(self, token: str, kind: str = "access", now: float | None = None) -> dict[str, Any]:
        """The claims of a valid token of ``kind``; InvalidToken says why not."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=["HS256"])
        except (JoseError, ValueError) as exc:
            raise InvalidToken(f"not a Harmony token: {exc}") from None
        claims = dict(decoded.claims)
        registry = JWTClaimsRegistry(
            now=int(now) if now is not None else None,
            iss={"essential": True, "value": ISSUER},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidToken(f"token refused: {exc.description or exc.error}") from None
        if claims.get("typ") != kind:
            raise InvalidToken(f"a {claims.get('typ')} token cannot be used as an {kind} token")
        return claims

    def _encode(self, claims: dict[str, Any]) -> str:
        return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, self._key)
