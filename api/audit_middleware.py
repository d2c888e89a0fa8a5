"""Records every request that touches patient or schedule data in the audit log.

A plain ASGI middleware (not BaseHTTPMiddleware), so streams such as SSE pass through
untouched: the event is recorded when the response starts (status known), or as 500 when
the app fails before it answers. Writing is the AuditWriter's job, off the request path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from canonical.model import SUPPORTED_TYPES
from hub.audit import AuditEvent, AuditWriter, TrustedProxies, action_for

AUDITED_PREFIXES = (
    "/fhir/",
    "/api/appointments",
    "/api/availability",
    "/api/shifts",
    "/api/shift-requests",
    "/api/shift-types",
    "/api/rosters",
    "/api/roster",
    "/api/physicians",
    "/api/me/shifts",
    "/api/notifications",
    "/roster",
)
NOT_AUDITED = frozenset({"/fhir/metadata"})
"""The CapabilityStatement is public and names no patient or schedule data."""


def audited(path: str) -> bool:
    return path not in NOT_AUDITED and path.startswith(AUDITED_PREFIXES)


def resource_of(path: str) -> tuple[str | None, str | None]:
    """(type, id) named by the path, when it names them: FHIR types, or the app route's
    collection and the segment after it (``/api/shifts/12`` -> ``shifts``, ``12``)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["fhir"] and len(parts) >= 2 and parts[1] in SUPPORTED_TYPES:
        return parts[1], parts[2] if len(parts) >= 3 and not parts[2].startswith("$") else None
    if parts[:1] == ["api"] and len(parts) >= 2:
        return parts[1], parts[2] if len(parts) >= 3 else None
    return (parts[0] if parts else None), None


class AuditMiddleware:
    """Queues one AuditEvent per audited request; flushes the writer on app shutdown."""

    def __init__(self, app: ASGIApp, writer: AuditWriter, proxies: TrustedProxies) -> None:
        self.app, self.writer, self.proxies = app, writer, proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing_on_shutdown(send))
            return
        if scope["type"] != "http" or not audited(scope["path"]):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        recorded = False

        async def send_and_record(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                self._record(scope, state, int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        except Exception:
            if not recorded:
                self._record(scope, state, 500)
            raise

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self.writer.close()
            await send(message)

        return wrapped

    def _record(self, scope: Scope, state: dict[str, Any], status: int) -> None:
        principal = state.get("principal")
        headers = dict(scope.get("headers") or [])
        forwarded = headers.get(b"x-forwarded-for")
        peer = (scope.get("client") or (None,))[0]
        client, via = self.proxies.client(peer, forwarded.decode("latin-1") if forwarded else None)
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope["path"] + (f"?{query}" if query else "")
        resource_type, resource_id = resource_of(scope["path"])
        self.writer.record(
            AuditEvent(
                at=datetime.now(UTC),
                subject=getattr(principal, "subject", None),
                roles=sorted(getattr(principal, "roles", ())),
                method=scope["method"],
                path=path[:2048],
                resource_type=resource_type[:64] if resource_type else None,
                resource_id=resource_id[:128] if resource_id else None,
                action=action_for(scope["method"]),
                status=status,
                client=client[:64] if client else None,
                via=via[:64] if via else None,
            )
        )


def install_audit(app: FastAPI) -> AuditWriter:
    """Adds the audit middleware with its writer (``app.state.audit``) to an app."""
    settings = app.state.settings
    writer = AuditWriter(app.state.engine, interval=settings.audit_flush_seconds)
    app.state.audit = writer
    app.state.proxies = TrustedProxies(settings.trusted_proxies)
    app.add_middleware(AuditMiddleware, writer=writer, proxies=app.state.proxies)
    return writer
