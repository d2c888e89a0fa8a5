"""JWTs from external OpenID Connect issuers (Keycloak, Entra ID, Okta, ...), checked
against each issuer's JWKS, with the issuer's roles mapped to Harmony's.

Only issuers named in ``HARMONY_OIDC_ISSUERS`` are trusted. Their keys are fetched once and
cached; a token signed with a key id the cache does not know triggers one refetch (key
rotation), but at most once per ``min_refetch_seconds`` per issuer, so a stream of forged
key ids cannot make Harmony hammer the issuer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from joserfc.util import urlsafe_b64decode
from pydantic import BaseModel, Field, field_validator

from hub.users import ROLES


class OidcIssuer(BaseModel):
    """One trusted issuer, as written in ``HARMONY_OIDC_ISSUERS`` (a JSON list of these)."""

    issuer: str
    jwks_uri: str | None = None
    """None: found through ``{issuer}/.well-known/openid-configuration``."""
    audience: list[str] | str
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    roles_claim: str = "roles"
    """Dotted path to the claim holding the issuer's roles, e.g. ``realm_access.roles``."""
    role_map: dict[str, str] = Field(default_factory=dict)
    """External role -> Harmony role; roles not listed here grant nothing."""
    username_claim: str = "preferred_username"
    label: str | None = None
    """Prefix of the subject shown in the audit log; default: the issuer's host."""

    @field_validator("role_map")
    @classmethod
    def _harmony_roles_only(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value.values()) - ROLES
        if unknown:
            raise ValueError(f"role_map names unknown Harmony roles {sorted(unknown)}")
        return value

    @property
    def audiences(self) -> list[str]:
        return [self.audience] if isinstance(self.audience, str) else list(self.audience)

    @property
    def display(self) -> str:
        return self.label or urlsplit(self.issuer).netloc or self.issuer


class InvalidExternalToken(Exception):
    """The token names a trusted issuer but is not acceptable (signature, claims, keys)."""


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who an accepted external token says the caller is."""

    issuer: OidcIssuer
    subject: str
    username: str
    roles: frozenset[str]
    claims: dict[str, Any]

    @property
    def external_subject(self) -> str:
        """How an app_user row is linked to this identity (``iss|sub``)."""
        return f"{self.issuer.issuer}|{self.subject}"


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a compact JWT claims, read without checking anything (to pick the verifier)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(urlsafe_b64decode(parts[1].encode()))
    except (ValueError, TypeError):
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``realm_access.roles``), None when any step is missing."""
    value: Any = claims
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def map_roles(issuer: OidcIssuer, claims: dict[str, Any]) -> frozenset[str]:
    """Harmony roles for the issuer's roles; a space-separated string counts as a list."""
    raw = claim_at(claims, issuer.roles_claim)
    external = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    return frozenset(issuer.role_map[r] for r in external if r in issuer.role_map)


class JwksCache:
    """One issuer's keys: fetched on first use, kept for ``max_age``, refetched on an unknown
    key id no more than once per ``min_refetch``."""

    def __init__(
        self,
        issuer: OidcIssuer,
        *,
        max_age: float,
        min_refetch: float,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuer = issuer
        self._max_age, self._min_refetch, self._timeout = max_age, min_refetch, timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self.fetches = 0

    def key_for(self, kid: str | None) -> Any:
        """The key with this id, refetching the JWKS once when it is unknown."""
        with self._lock:
            if self._keys is None or self._clock() - self._fetched_at > self._max_age:
                self._refresh()
            found = self._find(kid)
            if found is None and self._clock() - self._fetched_at >= self._min_refetch:
                self._refresh()
                found = self._find(kid)
        if found is None:
            raise InvalidExternalToken(f"no key {kid!r} in the JWKS of {self._issuer.issuer}")
        return found

    def _find(self, kid: str | None) -> Any:
        assert self._keys is not None
        try:
            return self._keys.get_by_kid(kid)
        except (JoseError, ValueError):
            return None

    def _refresh(self) -> None:
        self._fetched_at = self._clock()
        self.fetches += 1
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as http:
                uri = self._issuer.jwks_uri or self._discover(http)
                answer = http.get(uri)
                answer.raise_for_status()
                self._keys = KeySet.import_key_set(answer.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            if self._keys is None:
                self._keys = KeySet([])
            raise InvalidExternalToken(
                f"cannot fetch the keys of {self._issuer.issuer}: {exc}"
            ) from None

    def _discover(self, http: httpx.Client) -> str:
        url = self._issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
        answer = http.get(url)
        answer.raise_for_status()
        uri = answer.json().get("jwks_uri")
        if not isinstance(uri, str):
            raise ValueError(f"{url} names no jwks_uri")
        return uri


class OidcVerifier:
    """Checks tokens of the configured issuers; one per process, shared by every request."""

    def __init__(
        self,
        issuers: list[OidcIssuer],
        *,
        leeway: int = 60,
        jwks_max_age: float = 3600.0,
        jwks_min_refetch: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leeway = leeway
        self._issuers = {i.issuer: i for i in issuers}
        self._caches = {
            i.issuer: JwksCache(i, max_age=jwks_max_age, min_refetch=jwks_min_refetch, clock=clock)
            for i in issuers
        }

    def trusts(self, token: str) -> bool:
        """Whether the token claims to come from a configured issuer (nothing verified yet)."""
        return unverified_issuer(token) in self._issuers

    def cache(self, issuer: str) -> JwksCache:
        return self._caches[issuer]

    def verify(self, token: str, now: int | None = None) -> ExternalIdentity:
        """The identity in a valid token; InvalidExternalToken says why not."""
        issuer = self._issuers.get(unverified_issuer(token) or "")
        if issuer is None:
            raise InvalidExternalToken("the token's issuer is not trusted here")
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise InvalidExternalToken(f"not a signed JWT: {exc}") from None
        if header.get("alg") not in issuer.algorithms:
            raise InvalidExternalToken(f"algorithm {header.get('alg')!r} is not accepted")
        key = self._caches[issuer.issuer].key_for(header.get("kid"))
        try:
            claims = dict(jwt.decode(token, key, algorithms=issuer.algorithms).claims)
            JWTClaimsRegistry(
                now=now,
                leeway=self.leeway,
                iss={"essential": True, "value": issuer.issuer},
                aud={"essential": True, "values": issuer.audiences},
                exp={"essential": True},
                sub={"essential": True},
            ).validate(claims)
        except JoseError as exc:
            raise InvalidExternalToken(f"token refused: {exc.description or exc.error}") from None
        username = claim_at(claims, issuer.username_claim)
        return ExternalIdentity(
            issuer=issuer,
            subject=str(claims["sub"]),
            username=str(username) if isinstance(username, str | int) else str(claims["sub"]),
            roles=map_roles(issuer, claims),
            claims=claims,
        )
