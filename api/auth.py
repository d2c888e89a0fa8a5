"""Sign-in for Harmony's built-in users: a token pair for a password, a new pair for a
refresh token, and who the caller is."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from api.deps import CurrentPrincipal
from hub.tokens import InvalidToken, TokenService
from hub.users import authenticate, get_user

router = APIRouter(prefix="/api/auth", tags=["auth"])


class Login(BaseModel):
    username: str
    password: str


class Refresh(BaseModel):
    refresh_token: str


def _tokens(request: Request) -> TokenService:
    return TokenService(request.app.state.settings.secret_key)


@router.post("/token")
async def login(request: Request, body: Login) -> dict[str, Any]:
    user = await asyncio.to_thread(
        authenticate, request.app.state.engine, body.username, body.password
    )
    if user is None:
        raise HTTPException(401, "unknown user or wrong password")
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
