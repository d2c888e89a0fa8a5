"""Typed dependencies shared by every router: settings, a database session, the caller."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from hub.settings import Settings

if TYPE_CHECKING:
    from hub.runtime import HubRuntime


class NotAuthenticated(Exception):
    """Raised when a request carries no acceptable bearer token; rendered as 401."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. Roles are coarse today; the user model adds real ones later."""

    subject: str
    roles: frozenset[str]


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def get_principal(request: Request, settings: SettingsDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("missing bearer token")
    for accepted in settings.accepted_tokens():
        if secrets.compare_digest(token.encode(), accepted.encode()):
            return Principal(subject="service", roles=frozenset({"admin", "integration"}))
    raise NotAuthenticated("invalid bearer token")


def get_runtime(request: Request) -> HubRuntime:
    runtime: HubRuntime = request.app.state.runtime
    if runtime is None:
        from fastapi import HTTPException

        raise HTTPException(503, "this process has no hub runtime (bus, syncs, booking)")
    return runtime


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
RuntimeDep = Annotated["HubRuntime", Depends(get_runtime)]
