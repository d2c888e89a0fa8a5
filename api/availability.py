"""``POST /api/availability/{label}``: a clinic's availability as an iCalendar or CSV file.

The file is stored in the message store like any inbound message (so it can be replayed
after a fix) and normalized by a worker into free Slots.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from adapters.contract import Envelope
from api.deps import RuntimeDep, UploadPrincipal
from hub import message_store
from hub.integrations import NAME
from hub.message_store import INBOUND, NewMessage

router = APIRouter(prefix="/api/availability", tags=["availability"])
KINDS = {"text/csv": "csv", "text/calendar": "ics"}


@router.post("/{label}", status_code=202)
async def upload(
    request: Request,
    label: str,
    runtime: RuntimeDep,
    _: UploadPrincipal,
    timezone: str | None = None,
    slot_minutes: int = 0,
    practitioner: str | None = None,
) -> dict[str, Any]:
    """Accepted for processing; the answer names the stored message to follow."""
    if not NAME.match(label):
        raise HTTPException(422, "label: lowercase letters, digits and '-' (max 63)")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    kind = KINDS.get(media)
    if kind is None:
        raise HTTPException(415, "send text/csv or text/calendar")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the file is not UTF-8: {exc}") from None
    context = {"timezone": timezone, "slot_minutes": slot_minutes, "practitioner": practitioner}
    env = Envelope(
        integration=label,
        source_type="upload",
        kind=kind,
        request=f"upload {label}",
        body=text,
        context={k: v for k, v in context.items() if v},
        fetched_at=datetime.now(UTC).isoformat(),
    )
    with request.app.state.engine.begin() as conn:
        stored = message_store.store_in(
            conn,
            NewMessage(
                channel="upload",
                direction=INBOUND,
                raw=env.to_bytes(),
                message_type=kind,
                control_id=f"upload {label}",
                sender=label,
            ),
        )
    if not stored.duplicate:
        runtime.publish(INBOUND, [stored.id])
    return {"message_id": stored.id, "duplicate": stored.duplicate}
