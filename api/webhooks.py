"""``POST /webhooks/{integration}``: the sources' push channel into the hub (no bearer
token; the signature or the channel token is the credential)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from api.deps import RuntimeDep
from hub.integrations import UnknownIntegration
from hub.webhooks import WebhookReceiver, WebhookRefused

router = APIRouter(tags=["webhooks"])


@router.post("/webhooks/{name}")
async def receive_webhook(request: Request, name: str, runtime: RuntimeDep) -> dict[str, Any]:
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    receiver = WebhookReceiver(
        request.app.state.engine,
        request.app.state.settings,
        runtime.publish,
        lambda integration: runtime.syncs.trigger(integration),
    )
    try:
        outcome = await asyncio.to_thread(receiver.receive, name, headers, body)
    except UnknownIntegration as exc:
        raise HTTPException(404, str(exc)) from None
    except WebhookRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return {"status": outcome.status, "message_id": outcome.message_id, "resync": outcome.resync}
