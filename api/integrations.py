"""The integrations registry over HTTP: add, change, list, remove, sync now, JWKS.

Secrets go in and never come out: views carry ``has_credentials`` / ``has_webhook_secret``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from api.deps import IntegrationPrincipal, RuntimeDep
from hub.integrations import IntegrationError, IntegrationRegistry, UnknownIntegration
from hub.sync import AlreadyRunning

router = APIRouter(prefix="/api/integrations", tags=["integrations"])
jwks_router = APIRouter(tags=["integrations"])


class IntegrationIn(BaseModel):
    name: str
    source_type: str
    base_url: str
    owner: str | None = None
    credentials: dict[str, Any] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    sync_interval_seconds: int | None = None
    webhook_secret: str | None = None
    enabled: bool = True


class IntegrationChange(BaseModel):
    base_url: str | None = None
    owner: str | None = None
    credentials: dict[str, Any] | None = None
    options: dict[str, Any] | None = None
    sync_interval_seconds: int | None = None
    webhook_secret: str | None = None
    enabled: bool | None = None


def _registry(request: Request) -> IntegrationRegistry:
    return IntegrationRegistry(request.app.state.engine, request.app.state.settings)


def _answer_errors(exc: IntegrationError) -> HTTPException:
    return HTTPException(404 if isinstance(exc, UnknownIntegration) else 422, str(exc))


@router.get("")
def list_integrations(request: Request, _: IntegrationPrincipal) -> list[dict[str, Any]]:
    return [view.as_json() for view in _registry(request).list()]


@router.post("", status_code=201)
def add_integration(
    request: Request, body: IntegrationIn, _: IntegrationPrincipal
) -> dict[str, Any]:
    try:
        view = _registry(request).add(**body.model_dump())
    except IntegrationError as exc:
        raise _answer_errors(exc) from None
    return view.as_json()


@router.get("/{name}")
def get_integration(request: Request, name: str, _: IntegrationPrincipal) -> dict[str, Any]:
    try:
        return _registry(request).get(name).as_json()
    except IntegrationError as exc:
        raise _answer_errors(exc) from None


@router.patch("/{name}")
def change_integration(
    request: Request, name: str, body: IntegrationChange, _: IntegrationPrincipal
) -> dict[str, Any]:
    try:
        return _registry(request).update(name, **body.model_dump()).as_json()
    except IntegrationError as exc:
        raise _answer_errors(exc) from None


@router.delete("/{name}", status_code=204)
def remove_integration(request: Request, name: str, _: IntegrationPrincipal) -> None:
    try:
        _registry(request).remove(name)
    except IntegrationError as exc:
        raise _answer_errors(exc) from None


@router.post("/{name}/sync")
async def sync_now(
    request: Request, name: str, runtime: RuntimeDep, _: IntegrationPrincipal, full: bool = False
) -> dict[str, Any]:
    """Runs the sync and answers with its report (pages stored, error if any)."""
    try:
        _registry(request).get(name)
        report = await asyncio.to_thread(runtime.syncs.runner.run, name, full=full)
    except UnknownIntegration as exc:
        raise HTTPException(404, str(exc)) from None
    except AlreadyRunning as exc:
        raise HTTPException(409, str(exc)) from None
    return report.as_json()


@jwks_router.get("/.well-known/jwks/{name}.json")
def integration_jwks(request: Request, name: str) -> dict[str, Any]:
    """The public keys an Epic integration signs its client assertions with (public data)."""
    try:
        config = _registry(request).config(name)
    except UnknownIntegration as exc:
        raise HTTPException(404, str(exc)) from None
    pem = config.credentials.get("private_key_pem")
    if config.source_type != "epic" or not pem:
        raise HTTPException(404, f"integration {name!r} signs no client assertions")
    from adapters.epic.auth import public_jwks

    jwks: dict[str, Any] = public_jwks(pem, str(config.credentials.get("kid", "")))
    return jwks
