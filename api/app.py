"""The app factory: one Settings object in, a FastAPI app out."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from api import (
    appointments,
    audit,
    auth,
    availability,
    fhir,
    fhir_book,
    fhir_find,
    integrations,
    mappings,
    messages,
    notifications,
    physicians,
    roster,
    roster_jobs,
    rosters,
    scheduling_http,
    shift_requests,
    shift_types,
    shifts,
    slots,
    waitlist,
    webhooks,
)
from api.audit_middleware import install_audit
from api.deps import NotAuthenticated
from hub.db import engine_for, session_factory
from hub.settings import Settings


def create_app(settings: Settings, engine: Engine | None = None, runtime: Any = None) -> FastAPI:
    """Build the API; ``runtime`` is the hub runtime used for replays (None: API-only)."""
    app = FastAPI(title="Harmony", version="0.1.0")
    app.state.settings = settings
    app.state.engine = engine or engine_for(settings)
    app.state.sessions = session_factory(app.state.engine)
    app.state.runtime = runtime

    @app.exception_handler(NotAuthenticated)
    async def _unauthenticated(request: Request, exc: NotAuthenticated) -> Response:
        if request.url.path.startswith("/fhir"):
            return fhir.operation_outcome_response(401, "login", str(exc))
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    fhir.register_error_handlers(app)
    app.include_router(fhir_book.router)
    app.include_router(fhir_find.router)
    app.include_router(fhir.router)
    app.include_router(messages.router)
    app.include_router(mappings.router)
    app.include_router(integrations.router)
    app.include_router(integrations.jwks_router)
    app.include_router(webhooks.router)
    app.include_router(appointments.router)
    app.include_router(availability.router)
    app.include_router(slots.router)
    app.include_router(waitlist.router)
    app.include_router(auth.router)
    app.include_router(notifications.router)
    app.include_router(audit.router)
    app.include_router(roster.router)
    scheduling_http.register_error_handlers(app)
    for scheduling_router in (
        physicians.router,
        shift_types.router,
        rosters.router,
        roster_jobs.router,
        shifts.router,
        shift_requests.router,
    ):
        app.include_router(scheduling_router)
    install_audit(app)
    return app
