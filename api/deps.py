"""Typed dependencies shared by every router: settings, a database session, the caller."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker

from hub.oidc import InvalidExternalToken, OidcVerifier
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.runtime import HubRuntime


class NotAuthenticated(Exception):
    """Raised when a request carries no acceptable bearer token; rendered as 401."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a service token, a Harmony user, or a user of an OpenID issuer."""

    subject: str
    roles: frozenset[str]
    user_id: int | None = None
    physician_id: int | None = None
    patient_id: str | None = None

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def get_principal(request: Request, settings: SettingsDep) -> Principal:
    """The caller: a service token, an external issuer's JWT or a Harmony JWT (in that
    order). Kept on ``request.state`` for the audit log."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("missing bearer token")
    principal = _principal_for(request, settings, token.strip())
    request.state.principal = principal
    return principal


def _principal_for(request: Request, settings: Settings, token: str) -> Principal:
    for accepted in settings.accepted_tokens():
        if secrets.compare_digest(token.encode(), accepted.encode()):
            return Principal(subject="service", roles=frozenset({"admin", "integration"}))
    verifier = oidc_verifier(request)
    if verifier is not None and verifier.trusts(token):
        return principal_from_oidc(request, verifier, token)
    return principal_from_jwt(request, token)


def principal_from_jwt(request: Request, token: str) -> Principal:
    """A Harmony access token names a user; the user's current row decides (deactivation and
    role changes apply at once, not when the token expires)."""
    from hub.tokens import InvalidToken, TokenService
    from hub.users import get_user

    try:
        claims = TokenService(request.app.state.settings.secret_key).verify(token)
    except InvalidToken as exc:
        raise NotAuthenticated(f"invalid bearer token: {exc}") from None
    user = get_user(request.app.state.engine, int(claims["sub"]))
    if user is None or not user.active:
        raise NotAuthenticated("the token's user is unknown or deactivated")
    return Principal(
        subject=user.username,
        roles=user.roles,
        user_id=user.id,
        physician_id=user.physician_id,
        patient_id=user.patient_id,
    )


_OIDC_LOCK = threading.Lock()


def oidc_verifier(request: Request) -> OidcVerifier | None:
    """The app's verifier of external tokens (one per app, so the JWKS cache is shared)."""
    state = request.app.state
    settings: Settings = state.settings
    if not settings.oidc_issuers:
        return None
    with _OIDC_LOCK:
        verifier: OidcVerifier | None = getattr(state, "oidc_verifier", None)
        if verifier is None:
            verifier = OidcVerifier(
                settings.oidc_issuers,
                leeway=settings.oidc_leeway_seconds,
                jwks_max_age=settings.oidc_jwks_max_age_seconds,
                jwks_min_refetch=settings.oidc_jwks_min_refetch_seconds,
            )
            state.oidc_verifier = verifier
    return verifier


def principal_from_oidc(request: Request, verifier: OidcVerifier, token: str) -> Principal:
    """Roles come from the issuer's claims through the configured map; a Harmony user linked
    by ``iss|sub`` adds its own roles and says which physician or patient this is."""
    from hub.users import user_by_subject

    try:
        identity = verifier.verify(token)
    except InvalidExternalToken as exc:
        raise NotAuthenticated(f"invalid bearer token: {exc}") from None
    user = user_by_subject(request.app.state.engine, identity.external_subject)
    if user is None:
        return Principal(
            subject=f"{identity.issuer.display}:{identity.username}", roles=identity.roles
        )
    if not user.active:
        raise NotAuthenticated("the token's user is deactivated")
    return Principal(
        subject=user.username,
        roles=identity.roles | user.roles,
        user_id=user.id,
        physician_id=user.physician_id,
        patient_id=user.patient_id,
    )


def require_roles(*roles: str) -> Callable[[Principal], Principal]:
    """A dependency that lets through callers with any of ``roles`` (403 otherwise)."""
    wanted = frozenset(roles)

    def check(principal: CurrentPrincipal) -> Principal:
        if not principal.roles & wanted:
            raise HTTPException(403, f"this needs one of the roles: {', '.join(sorted(wanted))}")
        return principal

    return check


def get_runtime(request: Request) -> HubRuntime:
    runtime: HubRuntime = request.app.state.runtime
    if runtime is None:
        raise HTTPException(503, "this process has no hub runtime (bus, syncs, booking)")
    return runtime


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
RuntimeDep = Annotated["HubRuntime", Depends(get_runtime)]
AdminPrincipal = Annotated[Principal, Depends(require_roles("admin"))]
IntegrationPrincipal = Annotated[Principal, Depends(require_roles("admin", "integration"))]
"""The integration engine: messages, replays, mappings, integrations."""
UploadPrincipal = Annotated[Principal, Depends(require_roles("admin", "staff", "integration"))]
"""Availability uploads."""
BookingPrincipal = Annotated[
    Principal, Depends(require_roles("admin", "staff", "integration", "patient"))
]
"""Booking; a patient only for themselves (api.access.own_booking)."""
STAFF_READERS = frozenset({"admin", "staff", "physician", "call_center", "integration"})
ReaderPrincipal = Annotated[Principal, Depends(require_roles(*STAFF_READERS, "patient"))]
"""FHIR reads; a patient only what api.access lets them see."""
