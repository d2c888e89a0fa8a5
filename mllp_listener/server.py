"""The MLLP server: frames in, sink commit, ACK out, in order per connection.

Each connection has two tasks: a reader that decodes frames ahead (so pipelining senders keep
the socket busy) and a worker that stores and acknowledges them one at a time, in order.
Commits from different connections overlap, which is what lets a sink batch them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mllp_listener.ack import ack_code_for, build_ack
from mllp_listener.framing import Frame, FrameProblem
from mllp_listener.header import (
    APPLICATION_INTERNAL_ERROR,
    SEGMENT_SEQUENCE_ERROR,
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    VALUE_TOO_LONG,
    HeaderError,
    MessageHeader,
    parse_header,
)
from mllp_listener.sink import MessageSink, Received, Rejection, StoreOutcome
from mllp_listener.streams import MLLPReader, MLLPWriter

log = logging.getLogger("mllp_listener")

_QUEUE_DEPTH = 32
_TLS_HANDSHAKE_TIMEOUT = 30.0
_BLANK = b" \t\r\n"


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
        self._connections: dict[_Connection, asyncio.Task[None]] = {}

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
        # TLS is started per connection (not via start_server(ssl=...)) so that a refused
        # handshake, e.g. a client without a trusted certificate, is logged with its peer.
        self._server = await asyncio.start_server(self._on_connect, self.host, self._requested_port)
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
        for conn, task in list(self._connections.items()):
            conn.abort(task)
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> MLLPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        conn = _Connection(self, reader, writer)
        self._connections[conn] = task
        try:
            await conn.run()
        except asyncio.CancelledError:
            # Top of the connection's task: asyncio's stream callback would log a cancelled
            # handler as an error, and the connection is already closed by run().
            pass
        finally:
            del self._connections[conn]

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


@dataclass(frozen=True, slots=True)
class _Job:
    frame: Frame
    received: Received
    ack: bytes | None


class _Connection:
    __slots__ = ("aborted", "busy", "peer", "queue", "reader", "server", "tasks", "writer")

    def __init__(
        self, server: MLLPServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = MLLPReader(
            reader, max_message_bytes=server.max_message_bytes, idle_timeout=server.idle_timeout
        )
        self.writer = MLLPWriter(writer)
        self.peer = _peer_name(writer)
        self.queue: asyncio.Queue[Frame | None] = asyncio.Queue(_QUEUE_DEPTH)
        self.busy = False
        self.tasks: tuple[asyncio.Task[Any], ...] = ()
        self.aborted = False

    def abort(self, handler: asyncio.Task[None]) -> None:
        """Stop reading and processing now (server shutdown)."""
        self.aborted = True
        for task in self.tasks or (handler,):
            task.cancel()

    async def run(self) -> None:
        log.debug("MLLP connection from %s", self.peer)
        try:
            ctx = self.server.ssl_context
            # No await may come before start_tls: the ClientHello would land in the plain
            # StreamReader. A server shutdown during the handshake cancels this task instead.
            if ctx is not None and not await self._start_tls(ctx):
                return
            if self.aborted:
                return
            read_task = asyncio.create_task(self._read_loop())
            work_task = asyncio.create_task(self._work_loop())
            self.tasks = (read_task, work_task)
            done, _ = await asyncio.wait(
                {read_task, work_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if work_task in done:
                read_task.cancel()
            await asyncio.gather(read_task, work_task, return_exceptions=True)
        finally:
            for task in self.tasks:
                task.cancel()
            self.writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.writer.wait_closed(), 5)
            log.debug("MLLP connection from %s closed", self.peer)

    async def _start_tls(self, ctx: ssl.SSLContext) -> bool:
        stream = self.writer.stream
        try:
            async with asyncio.timeout(_TLS_HANDSHAKE_TIMEOUT):
                await stream.start_tls(ctx)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            log.warning("MLLP TLS handshake with %s refused: %r", self.peer, exc)
            stream.transport.abort()
            return False
        return True

    async def _read_loop(self) -> None:
        reader = self.reader
        put = self.queue.put
        while True:
            try:
                frame = await reader.read_frame()
            except TimeoutError:
                if self.busy or not self.queue.empty():
                    continue  # we are the slow side, not the peer
                log.info("MLLP connection from %s idle; closing", self.peer)
                await self._flush_partial()
                frame = None
            except (ConnectionError, ssl.SSLError, OSError) as exc:
                log.info("MLLP connection from %s lost: %r", self.peer, exc)
                await self._flush_partial()
                frame = None
            await put(frame)
            if frame is None:
                return

    async def _flush_partial(self) -> None:
        for frame in self.reader.take_partial():
            await self.queue.put(frame)

    async def _work_loop(self) -> None:
        """Start stores in arrival order (up to `pipeline_depth` at once) and answer in order."""
        queue = self.queue
        depth = self.server.pipeline_depth
        store = self.server.sink.store
        inflight: deque[tuple[_Job, asyncio.Future[StoreOutcome]]] = deque()
        eof = False
        try:
            while True:
                # Take more frames: block only when nothing is waiting on a commit.
                while not eof and len(inflight) < depth and (not inflight or not queue.empty()):
                    frame = await queue.get()
                    if frame is None:
                        eof = True
                        break
                    job = self._prepare(frame)
                    if job is None:
                        continue
                    self.busy = True
                    inflight.append((job, asyncio.ensure_future(store(job.received, job.ack))))
                    if job.received.header is None:
                        break  # this one closes the connection: start nothing after it
                if not inflight:
                    self.busy = False
                    if eof:
                        return
                    continue
                job, pending = inflight.popleft()
                try:
                    outcome: StoreOutcome | None = await pending
                except Exception:
                    log.exception(
                        "MLLP sink failed to store a message from %s (%s)",
                        self.peer,
                        job.frame.describe(),
                    )
                    outcome = None
                if not await self._finish(job, outcome):
                    return
                self.busy = bool(inflight)
        finally:
            self.busy = False
            if inflight:
                # Commits already started finish (a resend will be answered as a duplicate),
                # but nothing after a closing frame is acknowledged.
                await asyncio.gather(*(f for _, f in inflight), return_exceptions=True)

    def _prepare(self, frame: Frame) -> _Job | None:
        """Read the MSH, decide the answer and build the ACK; None for a keep-alive frame."""
        server = self.server
        raw = frame.payload
        if frame.problem is None and not raw.strip(_BLANK):
            return None  # empty frame: some engines send these as keep-alives
        header: MessageHeader | None
        rejection: Rejection | None = None
        try:
            header = parse_header(raw)
        except HeaderError as exc:
            header = exc.header
            if frame.problem is None:
                rejection = Rejection("AR", exc.hl7_error_code, exc.reason)
            else:
                rejection = server._framing_rejection(frame, exc.reason)
        else:
            if frame.problem is not None:
                rejection = server._framing_rejection(frame, None)
            else:
                rejection = server._type_rejection(header)

        ack: bytes | None = None
        if header is not None and not header.is_ack:
            code = ack_code_for(header, rejection.ack_code if rejection else "AA")
            if code is not None:
                if rejection is None:
                    ack = build_ack(header, code)
                else:
                    ack = build_ack(header, code, rejection.text, error_code=rejection.error_code)
        return _Job(frame, Received(raw, header, self.peer, rejection), ack)

    async def _finish(self, job: _Job, outcome: StoreOutcome | None) -> bool:
        """Answer one stored frame (outcome None = the store failed); False = close."""
        header = job.received.header
        rejection = job.received.rejection
        if outcome is None:
            return await self._answer_store_failure(header)
        if header is None:
            reason = rejection.text if rejection else "no usable MSH"
            log.warning(
                "closing MLLP connection from %s: %s; first bytes %r",
                self.peer,
                reason,
                job.received.raw[:40],
            )
            return False
        if rejection is not None:
            log.warning(
                "MLLP message from %s rejected (%s %s): %s",
                self.peer,
                rejection.ack_code,
                rejection.error_code,
                rejection.text,
            )
        if header.is_ack:
            return True
        ack = job.ack if outcome.duplicate_ack is None else outcome.duplicate_ack
        if ack is not None and not await self._send(ack):
            return False
        return job.frame.problem is not FrameProblem.TRUNCATED

    async def _answer_store_failure(self, header: MessageHeader | None) -> bool:
        """Never AA: answer AE when MSH-15 lets us, otherwise close so the sender resends."""
        if header is None or header.is_ack:
            return False
        code = ack_code_for(header, "AE")
        if code is None:
            return False
        ack = build_ack(
            header,
            code,
            "message could not be stored; resend later",
            error_code=APPLICATION_INTERNAL_ERROR,
        )
        return await self._send(ack)

    async def _send(self, ack: bytes) -> bool:
        writer = self.writer
        if writer.is_closing():
            return False
        try:
            writer.write_message(ack)
            await writer.drain()
        except (ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("MLLP connection from %s lost while sending ACK: %r", self.peer, exc)
            return False
        return True


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer)
