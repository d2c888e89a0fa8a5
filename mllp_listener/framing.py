"""MLLP framing (<VT> payload <FS><CR>) as a sans-IO decoder.

Kept free of sockets so the same code serves the server, the client and a property test that
chops a byte stream at arbitrary points.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"

_VT = 0x0B
_FS = 0x1C
# Senders commonly put CR/LF (and sometimes spaces) between frames; that is not junk.
_BETWEEN_FRAMES = b" \t\r\n"
_HEAD_BYTES = 40


class FrameProblem(enum.StrEnum):
    """Why a frame is not a clean <VT>...<FS> block; the value is the text shown to people."""

    OUTSIDE_FRAME = "bytes outside a frame (no start block <VT>)"
    START_IN_FRAME = "new start block <VT> before end block <FS>"
    TRUNCATED = "connection closed mid-frame (no end block <FS>)"
    OVERSIZE = "message exceeds the size limit"


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded unit of the stream.

    `payload` is exactly the bytes between <VT> and <FS> for a clean frame. With a problem
    it is what was captured (for OVERSIZE only the first `max_message_bytes`), and `size` is
    the full byte count seen, so an oversize message can be reported without being buffered.
    """

    payload: bytes
    problem: FrameProblem | None = None
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.payload))

    def describe(self) -> str:
        """One line for logs and ERR-8 that names the first bytes, so the sender can be found."""
        head = repr(self.payload[:_HEAD_BYTES])
        if self.problem is None:
            return f"frame of {self.size} bytes starting {head}"
        return f"{self.problem.value}; {self.size} bytes starting {head}"


def frame(payload: bytes) -> bytes:
    """Wrap one message for the wire."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class _State(enum.Enum):
    OUTSIDE = 0
    INSIDE = 1
    JUNK = 2
    DISCARD = 3


# Module-level aliases: Enum attribute lookup is ~10x a global read, and feed() runs per chunk.
_OUTSIDE, _INSIDE, _JUNK, _DISCARD = _State.OUTSIDE, _State.INSIDE, _State.JUNK, _State.DISCARD


class FrameDecoder:
    """Incremental MLLP decoder with a hard memory bound.

    A lone <FS> ends a frame (the <CR> after it is then just whitespace between frames), which
    is lenient towards senders that omit the <CR>. Memory held is at most `max_message_bytes`
    per connection: an oversize frame keeps its head for the ACK and discards the rest.
    """

    __slots__ = ("_buf", "_max", "_size", "_state")

    def __init__(self, max_message_bytes: int = 1_048_576) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self._max = max_message_bytes
        self._buf = bytearray()
        self._size = 0  # bytes seen in the current frame / junk run, including discarded ones
        self._state = _OUTSIDE

    @property
    def in_frame(self) -> bool:
        """True while a partial frame (or junk run) is pending, i.e. EOF now would truncate."""
        return self._state is not _OUTSIDE

    def feed(self, data: bytes) -> list[Frame]:
        """Consume a chunk; return every frame it completed, in stream order."""
        out: list[Frame] = []
        pos = 0
        end = len(data)
        find = data.find
        while pos < end:
            state = self._state
            if state is _OUTSIDE:
                vt = find(START_BLOCK, pos)
                gap_end = end if vt < 0 else vt
                if gap_end > pos and data[pos:gap_end].strip(_BETWEEN_FRAMES):
                    # Junk starts at the first non-whitespace byte; it runs to the next VT/FS.
                    lead = len(data[pos:gap_end]) - len(data[pos:gap_end].lstrip(_BETWEEN_FRAMES))
                    self._state = _JUNK
                    self._buf.clear()
                    self._size = 0
                    pos += lead
                    continue
                if vt < 0:
                    return out
                pos = vt + 1
                # Fast path: a whole clean frame inside this chunk.
                fs = find(END_BLOCK, pos)
                if fs >= 0 and fs - pos <= self._max and find(START_BLOCK, pos, fs) < 0:
                    out.append(Frame(data[pos:fs], None, fs - pos))
                    pos = fs + 1
                    continue
                self._state = _INSIDE
                self._buf.clear()
                self._size = 0
                continue
            # INSIDE, JUNK or DISCARD: look for whichever of VT / FS comes first.
            fs = find(END_BLOCK, pos)
            vt = find(START_BLOCK, pos, fs if fs >= 0 else end)
            stop = vt if vt >= 0 else fs
            chunk_end = end if stop < 0 else stop
            self._take(data, pos, chunk_end)
            if stop < 0:
                return out
            out.append(self._finish(ended_by_fs=vt < 0))
            if vt >= 0:
                self._state = _INSIDE
                self._buf.clear()
                self._size = 0
            else:
                self._state = _OUTSIDE
            pos = stop + 1
        return out

    def eof(self) -> list[Frame]:
        """Flush at end of stream: a pending frame or junk run is reported, never dropped."""
        if self._state is _OUTSIDE:
            return []
        frame_ = self._finish(ended_by_fs=False, at_eof=True)
        self._state = _OUTSIDE
        return [frame_]

    def _take(self, data: bytes, start: int, stop: int) -> None:
        n = stop - start
        if n <= 0:
            return
        self._size += n
        room = self._max - len(self._buf)
        if room > 0:
            self._buf += data[start : start + min(n, room)]
        if self._size > self._max and self._state is _INSIDE:
            self._state = _DISCARD

    def _finish(self, *, ended_by_fs: bool, at_eof: bool = False) -> Frame:
        state = self._state
        payload = bytes(self._buf)
        self._buf.clear()
        size = self._size
        if state is _JUNK:
            problem = FrameProblem.OUTSIDE_FRAME
        elif state is _DISCARD:
            problem = FrameProblem.OVERSIZE
        elif at_eof:
            problem = FrameProblem.TRUNCATED
        elif ended_by_fs:
            problem = None
        else:
            problem = FrameProblem.START_IN_FRAME
        return Frame(payload, problem, size)
