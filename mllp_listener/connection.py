"""One inbound MLLP connection: an asyncio.Protocol feeding a single worker task.

The protocol decodes frames as bytes arrive (so pipelining senders keep the socket busy) and
the worker stores and acknowledges them in order. There is no queue task, no per-read timer and,
at pipeline_depth 1, no task per message: a message costs one wake-up of the worker, which is
what keeps the listener's CPU per message close to a bare asyncio echo server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from typing import TYPE_CHECKING, Any

from mllp_listener.ack import ack_code_for, build_ack
from mllp_listener.framing import Frame, FrameDecoder, FrameProblem
from mllp_listener.header import (
    APPLICATION_INTERNAL_ERROR,
    HeaderError,
    MessageHeader,
    parse_header,
)
from mllp_listener.sink import Received, Rejection, StoreOutcome

if TYPE_CHECKING:
    from mllp_listener.server import MLLPServer

log = logging.getLogger("mllp_listener")

# Decoded frames held before reading pauses: bounds memory against a sender that pipelines
# faster than the sink commits (TCP flow control then slows the sender down).
PAUSE_AT = 32
RESUME_AT = 8
TLS_HANDSHAKE_TIMEOUT = 30.0
# uvloop's clock ticks in milliseconds: without slack a timer can fire a hair before its
# deadline by float arithmetic and be re-armed for ~0 s, over and over until the next tick.
_TIMER_SLACK = 0.001
_BLANK = b" \t\r\n"
_TRUNCATED = FrameProblem.TRUNCATED


class _Job:
    __slots__ = ("ack", "frame", "is_ack", "received")

    def __init__(self, frame_: Frame, received: Received, ack: bytes | None, is_ack: bool) -> None:
        self.frame = frame_
        self.received = received
        self.ack = ack
        self.is_ack = is_ack


class Connection(asyncio.Protocol):
    """Protocol plus worker for one peer; the server keeps it until the worker ends."""

    def __init__(self, server: MLLPServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None  # asyncio.Transport; Any because start_tls swaps it
        self.peer = "?"
        self.task: asyncio.Task[None] | None = None
        self.aborted = False
        self.tls = False
        self._decoder = FrameDecoder(server.max_message_bytes)
        # Decoded frames for the worker; None marks the end of input (EOF, loss or idle).
        self._frames: deque[Frame | None] = deque()
        self._input_done = False
        self._reading_paused = False
        self._waiter: asyncio.Future[None] | None = None  # set while the worker waits for frames
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost = False
        self._closed: asyncio.Future[None] = self.loop.create_future()
        self._idle_timeout = server.idle_timeout
        self._last_data = self.loop.time()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._before_tls: bytearray | None = None

    # -- protocol callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.peer = _peer_name(transport)
        if self.server.ssl_context is not None:
            # Nothing should be read before start_tls: the ClientHello belongs to the TLS
            # layer. uvloop starts reading after connection_made whatever we ask, so what it
            # reads anyway is kept and handed to the TLS protocol (see _start_tls).
            self._before_tls = bytearray()
            transport.pause_reading()  # type: ignore[attr-defined]
        self.task = task = self.loop.create_task(self._run())
        self.server._connections[self] = task
        task.add_done_callback(self._task_done)

    def data_received(self, data: bytes) -> None:
        if self._input_done:
            return
        if self._before_tls is not None:
            self._before_tls += data  # the ClientHello, read before start_tls took over
            return
        if self._idle_timeout is not None:
            self._last_data = self.loop.time()
        found = self._decoder.feed(data)
        if found:
            frames = self._frames
            frames.extend(found)
            waiter = self._waiter
            if waiter is not None:
                self._waiter = None
                if not waiter.done():
                    waiter.set_result(None)
            if len(frames) >= PAUSE_AT and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._end_input()
        # Half-close: keep the socket open to send the remaining ACKs (TLS cannot half-close).
        return not self.tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if exc is not None and not self._input_done:
            log.info("MLLP connection from %s lost: %r", self.peer, exc)
        self._end_input()
        self._wake_drain()
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    # -- input bookkeeping -------------------------------------------------------------------

    def _end_input(self) -> None:
        """No more bytes will be read: a partial frame is reported (TRUNCATED), then None."""
        if self._input_done:
            return
        self._input_done = True
        self._frames.extend(self._decoder.eof())
        self._frames.append(None)
        self._wake_worker()

    def _wake_worker(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _next_frame(self) -> Frame | None:
        frames = self._frames
        while not frames:
            self._waiter = waiter = self.loop.create_future()
            await waiter
        if self._reading_paused:
            self._maybe_resume_reading()
        return frames.popleft()

    def _maybe_resume_reading(self) -> None:
        if len(self._frames) <= RESUME_AT and not self._input_done:
            self._reading_paused = False
            self.transport.resume_reading()

    def _arm_idle(self, delay: float) -> None:
        self._idle_handle = self.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        """Watchdog re-armed from the last-read timestamp instead of a timer per read."""
        self._idle_handle = None
        timeout = self._idle_timeout
        if self._input_done or timeout is None:
            return
        remaining = timeout - (self.loop.time() - self._last_data)  # call_later's clock
        if remaining > _TIMER_SLACK:  # bytes came in since the watchdog was armed
            self._arm_idle(remaining)
        elif self._waiter is None:
            self._arm_idle(timeout)  # we are the slow side (committing or sending), not the peer
        else:
            log.info("MLLP connection from %s idle; closing", self.peer)
            self._end_input()

    # -- worker ------------------------------------------------------------------------------

    def abort(self) -> None:
        """Stop reading and processing now (server shutdown)."""
        self.aborted = True
        if self.task is not None:
            self.task.cancel()

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.server._connections.pop(self, None)
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        if not task.cancelled() and task.exception() is not None:
            log.error("MLLP connection from %s failed", self.peer, exc_info=task.exception())
        if not self.transport.is_closing():
            self.transport.abort()  # cancelled before it started: nothing else will close it

    async def _run(self) -> None:
        log.debug("MLLP connection from %s", self.peer)
        handshaking = False
        try:
            ctx = self.server.ssl_context
            if ctx is not None:
                handshaking = True
                if not await self._start_tls(ctx):
                    return
                handshaking = False
            if self.aborted:
                return
            if self._idle_timeout is not None:
                self._last_data = self.loop.time()
                self._arm_idle(self._idle_timeout)
            depth = self.server.pipeline_depth
            if depth == 1:
                await self._lockstep()
            else:
                await self._pipelined(depth)
        finally:
            self._input_done = True
            if self._idle_handle is not None:
                self._idle_handle.cancel()
                self._idle_handle = None
            if handshaking:
                # The TLS layer owns the socket now; this protocol would never hear it close.
                self.transport.abort()
            else:
                self.transport.close()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(self._closed), 5)
            log.debug("MLLP connection from %s closed", self.peer)

    async def _start_tls(self, ctx: ssl.SSLContext) -> bool:
        raw = self.transport
        early, self._before_tls = self._before_tls, None
        if early:
            # Runs before the callbacks start_tls schedules (connection_made, resume_reading),
            # i.e. after it installed its protocol and before any later bytes reach it.
            self.loop.call_soon(_replay, raw, bytes(early), self)
        try:
            async with asyncio.timeout(TLS_HANDSHAKE_TIMEOUT):
                transport = await self.loop.start_tls(raw, self, ctx, server_side=True)
        except (ssl.SSLError, ConnectionError, OSError, TimeoutError) as exc:
            log.warning("MLLP TLS handshake with %s refused: %r", self.peer, exc)
            raw.abort()
            return False
        if transport is None:  # the connection went away during the handshake
            raw.abort()
            return False
        self.transport = transport
        self.tls = True
        return True

    async def _lockstep(self) -> None:
        """pipeline_depth 1: await each commit inline, so no task is created per message."""
        frames = self._frames
        store = self.server.sink.store
        prepare = self._prepare
        while True:
            if frames and not self._reading_paused:
                frame_ = frames.popleft()
            else:
                frame_ = await self._next_frame()
            if frame_ is None:
                return
            job = prepare(frame_)
            if job is None:
                continue
            try:
                outcome: StoreOutcome | None = await store(job.received, job.ack)
            except Exception:
                log.exception(
                    "MLLP sink failed to store a message from %s (%s)",
                    self.peer,
                    frame_.describe(),
                )
                outcome = None
            ack, keep_open = self._reply(job, outcome)
            if ack is not None and not (self._write(ack) and await self._drain()):
                return
            if not keep_open:
                return

    async def _pipelined(self, depth: int) -> None:
        """Start stores in arrival order (up to `depth` at once) and answer in order."""
        frames = self._frames
        store = self.server.sink.store
        inflight: deque[tuple[_Job, asyncio.Future[StoreOutcome]]] = deque()
        eof = False
        try:
            while True:
                # Take more frames: block only when nothing is waiting on a commit.
                while not eof and len(inflight) < depth and (not inflight or frames):
                    frame_ = await self._next_frame()
                    if frame_ is None:
                        eof = True
                        break
                    job = self._prepare(frame_)
                    if job is None:
                        continue
                    inflight.append((job, asyncio.ensure_future(store(job.received, job.ack))))
                    if job.received.header is None:
                        break  # this one closes the connection: start nothing after it
                if not inflight:
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
                ack, keep_open = self._reply(job, outcome)
                if ack is not None and not (self._write(ack) and await self._drain()):
                    return
                if not keep_open:
                    return
        finally:
            if inflight:
                # Commits already started finish (a resend will be answered as a duplicate),
                # but nothing after a closing frame is acknowledged.
                await asyncio.gather(*(f for _, f in inflight), return_exceptions=True)

    def _prepare(self, frame_: Frame) -> _Job | None:
        """Read the MSH, decide the answer and build the ACK; None for a keep-alive frame."""
        raw = frame_.payload
        problem = frame_.problem
        if problem is None and raw[:1] in _BLANK and not raw.strip(_BLANK):
            # Empty frame: some engines send these as keep-alives. (The first-byte test
            # spares copying every message just to see that it is not blank.)
            return None
        server = self.server
        header: MessageHeader | None
        rejection: Rejection | None = None
        try:
            header = parse_header(raw)
        except HeaderError as exc:
            header = exc.header
            if problem is None:
                rejection = Rejection("AR", exc.hl7_error_code, exc.reason)
            else:
                rejection = server._framing_rejection(frame_, exc.reason)
        else:
            if problem is not None:
                rejection = server._framing_rejection(frame_, None)
            elif header.message_type not in server.accepted_types:
                rejection = server._type_rejection(header)

        ack: bytes | None = None
        is_ack = header is not None and header.is_ack
        if header is not None and not is_ack:
            code = ack_code_for(header, rejection.ack_code if rejection else "AA")
            if code is not None:
                if rejection is None:
                    ack = build_ack(header, code)
                else:
                    ack = build_ack(header, code, rejection.text, error_code=rejection.error_code)
        return _Job(frame_, Received(raw, header, self.peer, rejection), ack, is_ack)

    def _reply(self, job: _Job, outcome: StoreOutcome | None) -> tuple[bytes | None, bool]:
        """After the store (outcome None = it failed): the ACK to send, if any, and whether
        the connection stays open once it is sent."""
        received = job.received
        header = received.header
        rejection = received.rejection
        if outcome is None:
            ack = self._store_failure_ack(header)
            return ack, ack is not None
        if header is None:
            reason = rejection.text if rejection else "no usable MSH"
            log.warning(
                "closing MLLP connection from %s: %s; first bytes %r",
                self.peer,
                reason,
                received.raw[:40],
            )
            return None, False
        if rejection is not None:
            log.warning(
                "MLLP message from %s rejected (%s %s): %s",
                self.peer,
                rejection.ack_code,
                rejection.error_code,
                rejection.text,
            )
        if job.is_ack:
            return None, True
        ack = job.ack if outcome.duplicate_ack is None else outcome.duplicate_ack
        return ack, job.frame.problem is not _TRUNCATED

    def _store_failure_ack(self, header: MessageHeader | None) -> bytes | None:
        """Never AA: AE when MSH-15 lets us; None closes the connection so the sender resends."""
        if header is None or header.is_ack:
            return None
        code = ack_code_for(header, "AE")
        if code is None:
            return None
        return build_ack(
            header,
            code,
            "message could not be stored; resend later",
            error_code=APPLICATION_INTERNAL_ERROR,
        )

    def _write(self, ack: bytes) -> bool:
        """Queue one framed ACK; False when the connection is gone."""
        transport = self.transport
        if transport.is_closing():
            return False
        transport.write(b"\x0b" + ack + b"\x1c\r")
        if self._lost or transport.is_closing():
            self._log_lost_while_sending()
            return False
        return True

    async def _drain(self) -> bool:
        """Honour flow control: wait while the peer does not read its ACKs."""
        if not self._write_paused:
            return True
        self._drain_waiter = waiter = self.loop.create_future()
        await waiter
        if self._lost:
            self._log_lost_while_sending()
            return False
        return True

    def _log_lost_while_sending(self) -> None:
        log.info(
            "MLLP connection from %s lost while sending ACK: %r",
            self.peer,
            ConnectionResetError("Connection lost"),
        )


def _replay(transport: Any, data: bytes, previous: asyncio.BaseProtocol) -> None:
    """Feed bytes read too early to the protocol that start_tls put on `transport`."""
    protocol = transport.get_protocol()
    if protocol is previous or transport.is_closing():
        return
    get_buffer = getattr(protocol, "get_buffer", None)
    if get_buffer is None:  # a plain Protocol
        protocol.data_received(data)
        return
    view = memoryview(data)
    while view:  # a BufferedProtocol (asyncio's and uvloop's TLS protocols are)
        buffer = get_buffer(len(view))
        n = min(len(buffer), len(view))
        buffer[:n] = view[:n]
        protocol.buffer_updated(n)
        view = view[n:]


def _peer_name(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    return str(peer)
