"""MLLP on top of asyncio streams, shaped like python-hl7's HL7StreamReader / HL7StreamWriter.

The client side uses these. The server reads through an asyncio.Protocol instead (connection.py,
where stream and per-read timer overhead showed up in the CPU cost per message), but both decode
with the same FrameDecoder, so both sides frame and bound memory the same way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from mllp_listener.framing import Frame, FrameDecoder, frame

_READ_CHUNK = 65536


class MLLPFramingError(ValueError):
    """A frame that was not a clean <VT>...<FS> block; `frame` holds what was captured."""

    def __init__(self, frame_: Frame) -> None:
        super().__init__(frame_.describe())
        self.frame = frame_


class MLLPReader:
    """Reads MLLP frames from a StreamReader; never holds more than one message's worth.

    `idle_timeout` bounds each wait for bytes (not for a whole message), raising TimeoutError.
    """

    def __init__(
        self,
        stream: asyncio.StreamReader,
        *,
        max_message_bytes: int = 1_048_576,
        idle_timeout: float | None = None,
    ) -> None:
        self._stream = stream
        self._decoder = FrameDecoder(max_message_bytes)
        self._pending: deque[Frame] = deque()
        self._eof = False
        self.idle_timeout = idle_timeout

    @property
    def in_frame(self) -> bool:
        """True while part of a frame has arrived but not its end."""
        return self._decoder.in_frame

    async def read_frame(self) -> Frame | None:
        """Next frame, clean or with a `problem`; None at end of stream."""
        pending = self._pending
        while not pending:
            if self._eof:
                return None
            data = await self._read()
            if data:
                pending.extend(self._decoder.feed(data))
            else:
                self._eof = True
                pending.extend(self._decoder.eof())
        return pending.popleft()

    async def read_message(self) -> bytes:
        """Next message payload (bytes between <VT> and <FS>).

        Raises MLLPFramingError for a broken frame and asyncio.IncompleteReadError at EOF.
        """
        frame_ = await self.read_frame()
        if frame_ is None:
            raise asyncio.IncompleteReadError(b"", None)
        if frame_.problem is not None:
            raise MLLPFramingError(frame_)
        return frame_.payload

    def take_partial(self) -> list[Frame]:
        """Give up on the stream: decoded frames plus any partial one (as TRUNCATED)."""
        frames = list(self._pending)
        self._pending.clear()
        if not self._eof:
            self._eof = True
            frames.extend(self._decoder.eof())
        return frames

    def at_eof(self) -> bool:
        """True once the stream ended and every decoded frame was consumed."""
        return self._eof and not self._pending

    async def _read(self) -> bytes:
        if self.idle_timeout is None:
            return await self._stream.read(_READ_CHUNK)
        async with asyncio.timeout(self.idle_timeout):
            return await self._stream.read(_READ_CHUNK)


class MLLPWriter:
    """Writes framed messages to a StreamWriter."""

    def __init__(self, stream: asyncio.StreamWriter) -> None:
        self._stream = stream

    @property
    def stream(self) -> asyncio.StreamWriter:
        """The underlying StreamWriter, e.g. for get_extra_info('ssl_object')."""
        return self._stream

    def write_message(self, message: bytes) -> None:
        """Frame and queue one message; call drain() to honour flow control."""
        self._stream.write(frame(message))

    def write_raw(self, data: bytes) -> None:
        """Queue bytes unframed (tests use it to send broken framing on purpose)."""
        self._stream.write(data)

    async def drain(self) -> None:
        """Wait until the transport buffer is below its high-water mark."""
        await self._stream.drain()

    def can_write_eof(self) -> bool:
        """False on TLS, where half-close is not available."""
        return self._stream.can_write_eof()

    def write_eof(self) -> None:
        """Half-close: tell the peer no more messages follow while still reading its ACKs."""
        self._stream.write_eof()

    def is_closing(self) -> bool:
        """True once close() was called or the connection was lost."""
        return self._stream.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Transport details: 'peername', 'ssl_object', 'peercert', ..."""
        return self._stream.get_extra_info(name, default)

    def close(self) -> None:
        """Close the connection (pending writes are flushed first)."""
        self._stream.close()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed."""
        await self._stream.wait_closed()
