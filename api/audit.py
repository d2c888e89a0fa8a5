"""``GET /api/audit``: the audit log of patient and schedule data, for admins."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api.deps import AdminPrincipal
from hub.audit import AuditQuery, AuditWriter, query_audit

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
async def list_events(
    request: Request,
    _: AdminPrincipal,
    subject: str | None = None,
    path_prefix: str | None = None,
    since: datetime | None = None,
    until: Annotated[datetime | None, Query(description="exclusive")] = None,
    action: Literal["read", "write"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Newest first. What is still buffered is written first, so the answer is current."""
    writer: AuditWriter | None = getattr(request.app.state, "audit", None)
    if writer is not None:
        await asyncio.to_thread(writer.flush)
    query = AuditQuery(subject, path_prefix, since, until, action, limit, offset)
    rows, total = await asyncio.to_thread(query_audit, request.app.state.engine, query)
    following = offset + len(rows)
    return {
        "total": total,
        "offset": offset,
        "next_offset": following if following < total else None,
        "items": [{**r, "at": r["at"].isoformat()} for r in rows],
    }
