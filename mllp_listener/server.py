"""The MLLP server: frames in, sink commit, ACK out, in order per connection.

Each connection (connection.py) is a protocol that decodes frames as they arrive and one
worker task that stores and acknowledges them in order. Commits from different connections
overlap, which is what lets a sink batch them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable

from mllp_listener.connection import Connection
from mllp_listener.framing import Frame, FrameProblem
from mllp_listener.header import (
    SEGMENT_SEQUENCE_ERROR,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    VALUE_TOO_LONG,
    MessageHeader,
)
from mllp_listener.sink import MessageSink, Rejection

log = logging.getLogger("mllp_listener")


class MLLPServer:
    """Accepts MLLP connections and acknowledges each message after `sink.store` committed it.

    `pipeline_depth` > 1 lets one connection have that many commits in flight (started in
    order, answered in order) for pipelining senders; the default 1 keeps strict ordering:
    a message is not stored before the previous one from the same connection is answered.
    """

    def __init__(
        self,
        sink: MessageSink,
        *,
        host: str | None,
        port: int,
        ssl_context: ssl.SSLContext | None = None,
        max_message_bytes: int = 1_048_576,
        accepted_types: Iterable[str],
        idle_timeout: float | None = 300.0,
        pipeline_depth: int = 1,
    ) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        if pipeline_depth < 1:
            raise ValueError("pipeline_depth must be at least 1")
        self.sink = sink
        self.host = host
        self._requested_port = port
        self.ssl_context = ssl_context
        self.max_message_bytes = max_message_bytes
        self.accepted_types = frozenset(accepted_types)
        self._accepted_codes = frozenset(t.partition("^")[0] for t in self.accepted_types)
        self.idle_timeout = idle_timeout
        self.pipeline_depth = pipeline_depth
        self._server: asyncio.Server | None = None
        self._connections: dict[Connection, asyncio.Task[None]] = {}

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); the requested one before start."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._requested_port

    @property
    def connection_count(self) -> int:
        """Open connections, for health checks and tests."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind and start accepting; returns once the port is open."""
        if self._server is not None:
            return
        # TLS is started per connection (not via create_server(ssl=...)) so that a refused
        # handshake, e.g. a client without a trusted certificate, is logged with its peer.
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), self.host, self._requested_port
        )
        log.info("MLLP listening on %s:%s (tls=%s)", self.host, self.port, bool(self.ssl_context))

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled or close() is called."""
        await self.start()
        assert self._server is not None
        with contextlib.suppress(asyncio.CancelledError):
            await self._server.serve_forever()

    async def close(self) -> None:
        """Stop accepting and drop open connections; unacknowledged messages will be resent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._connections.values())
        for conn in list(self._connections):
            conn.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> MLLPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _type_rejection(self, header: MessageHeader) -> Rejection | None:
        if header.is_ack or header.message_type in self.accepted_types:
            return None
        code, _, _ = header.message_type.partition("^")
        error = UNSUPPORTED_EVENT_CODE if code in self._accepted_codes else UNSUPPORTED_MESSAGE_TYPE
        return Rejection("AR", error, f"message type {header.message_type!r} is not accepted")

    def _framing_rejection(self, frame: Frame, header_reason: str | None) -> Rejection:
        assert frame.problem is not None
        if frame.problem is FrameProblem.OVERSIZE:
            text = (
                f"message of {frame.size} bytes exceeds the limit of {self.max_message_bytes} bytes"
            )
            rejection = Rejection("AR", VALUE_TOO_LONG, text)
        else:
            rejection = Rejection("AE", SEGMENT_SEQUENCE_ERROR, frame.problem.value)
        if header_reason:
            return Rejection(
                rejection.ack_code, rejection.error_code, f"{rejection.text}; {header_reason}"
            )
        return rejection
