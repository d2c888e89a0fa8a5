"""MLLP client: asyncio.open_connection, with MLLP framing on both directions."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any

from mllp_listener.streams import MLLPReader, MLLPWriter


async def open_connection(
    host: str | None,
    port: int | None,
    *,
    ssl: ssl_module.SSLContext | bool | None = None,
    max_message_bytes: int = 1_048_576,
    **kw: Any,
) -> tuple[MLLPReader, MLLPWriter]:
    """Connect and return (reader, writer), like asyncio.open_connection.

    Extra keywords go to asyncio.open_connection (server_hostname, limit, ...).
    """
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl, **kw)
    return MLLPReader(reader, max_message_bytes=max_message_bytes), MLLPWriter(writer)
