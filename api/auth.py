"""Sign-in for Harmony's built-in users: a token pair for a password, a new pair for a
refresh token, and who the caller is. Failed sign-ins are rate-limited per username and per
client address (hub.users.LoginThrottle: per process, see there why)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from api.deps import CurrentPrincipal
from hub.audit import TrustedProxies
from hub.tokens import InvalidToken, TokenService
from hub.users import LoginThrottle, authenticate, get_user

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Login(BaseModel):
    username: str
    password: str


class Refresh(BaseModel):
    refresh_token: str


def _tokens(request: Request) -> TokenService:
    return TokenService(request.app.state.settings.secret_key)


_THROTTLE_LOCK = threading.Lock()


def _throttle(request: Request) -> LoginThrottle:
    """The app's login throttle, made on first use from the settings."""
    state = request.app.state
    with _THROTTLE_LOCK:
        throttle: LoginThrottle | None = getattr(state, "login_throttle", None)
        if throttle is None:
            settings = state.settings
            throttle = LoginThrottle(
                settings.login_max_failures, settings.login_failure_window_seconds
            )
            state.login_throttle = throttle
    return throttle


def _client_address(request: Request) -> str | None:
    proxies = getattr(request.app.state, "proxies", None) or TrustedProxies(
        request.app.state.settings.trusted_proxies
    )
    peer = request.client.host if request.client else None
    return proxies.client(peer, request.headers.get("x-forwarded-for"))[0]


@router.post("/token")
async def login(request: Request, body: Login) -> dict[str, Any]:
    """A token pair; 401 on a wrong password, 429 with Retry-After after too many."""
    throttle, address = _throttle(request), _client_address(request)
    wait = throttle.retry_after(body.username, address)
    if wait:
        raise HTTPException(
            429, "too many failed sign-ins; try again later", headers={"Retry-After": str(wait)}
        )
    user = await asyncio.to_thread(
        authenticate, request.app.state.engine, body.username, body.password
    )
    if user is None:
        throttle.failed(body.username, address)
        raise HTTPException(401, "unknown user or wrong password")
    throttle.succeeded(body.username)
    return _tokens(request).issue(user).as_json()


@router.post("/refresh")
def refresh(request: Request, body: Refresh) -> dict[str, Any]:
    try:
        claims = _tokens(request).verify(body.refresh_token, kind="refresh")
    except InvalidToken as exc:
        raise HTTPException(401, str(exc)) from None
    user = get_user(request.app.state.engine, int(claims["sub"]))
    if user is None or not user.active:
        raise HTTPException(401, "the token's user is unknown or deactivated")
    return _tokens(request).issue(user).as_json()


@router.get("/me")
def me(principal: CurrentPrincipal) -> dict[str, Any]:
    return {
        "subject": principal.subject,
        "roles": sorted(principal.roles),
        "user_id": principal.user_id,
        "physician_id": principal.physician_id,
        "patient_id": principal.patient_id,
    }
