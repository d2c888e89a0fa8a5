"""The MLLP decoder on its own: clean frames, every kind of broken framing, and chunking."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from mllp_listener import Frame, FrameDecoder, FrameProblem, MLLPFramingError, frame
from mllp_listener.streams import MLLPReader

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def decode_all(stream: bytes, chunks: list[int] | None = None, limit: int = 1 << 20) -> list[Frame]:
    dec = FrameDecoder(limit)
    out: list[Frame] = []
    pos = 0
    for size in chunks or []:
        out += dec.feed(stream[pos : pos + size])
        pos += size
    out += dec.feed(stream[pos:])
    out += dec.eof()
    return out


def test_clean_frames_give_exact_payloads() -> None:
    msgs = [b"MSH|a\rPID|1", b"MSH|b\nPID|2\n", b"MSH|c\r\nX|\xc3\xa9"]
    frames = decode_all(b"".join(frame(m) for m in msgs))
    assert [f.payload for f in frames] == msgs
    assert all(f.problem is None for f in frames)


def test_whitespace_between_frames_is_not_junk() -> None:
    stream = frame(b"one") + b"\r\n\n  " + frame(b"two") + b"\n"
    frames = decode_all(stream)
    assert [(f.payload, f.problem) for f in frames] == [(b"one", None), (b"two", None)]


def test_missing_cr_after_fs_is_tolerated() -> None:
    frames = decode_all(VT + b"one" + FS + VT + b"two" + FS)
    assert [(f.payload, f.problem) for f in frames] == [(b"one", None), (b"two", None)]


def test_junk_before_a_frame_is_reported_then_the_frame_decodes() -> None:
    frames = decode_all(b"\r\nhello junk" + frame(b"MSH|ok"))
    assert frames[0].problem is FrameProblem.OUTSIDE_FRAME
    assert frames[0].payload == b"hello junk"
    assert (frames[1].payload, frames[1].problem) == (b"MSH|ok", None)


def test_unframed_message_ending_in_fs_is_outside_frame() -> None:
    frames = decode_all(b"MSH|^~\\&|x" + FS + CR)
    assert len(frames) == 1
    assert frames[0].problem is FrameProblem.OUTSIDE_FRAME
    assert frames[0].payload == b"MSH|^~\\&|x"


def test_new_start_block_inside_a_frame() -> None:
    frames = decode_all(VT + b"first half" + VT + b"second" + FS + CR)
    assert (frames[0].payload, frames[0].problem) == (b"first half", FrameProblem.START_IN_FRAME)
    assert (frames[1].payload, frames[1].problem) == (b"second", None)


def test_eof_mid_frame_is_truncated() -> None:
    frames = decode_all(frame(b"whole") + VT + b"MSH|part")
    assert frames[-1].problem is FrameProblem.TRUNCATED
    assert frames[-1].payload == b"MSH|part"


def test_oversize_keeps_only_the_head_and_counts_every_byte() -> None:
    big = b"MSH|" + b"x" * 10_000
    dec = FrameDecoder(100)
    out: list[Frame] = []
    # Feed in small pieces: the decoder must never hold more than the limit.
    stream = frame(big) + frame(b"MSH|next")
    for i in range(0, len(stream), 7):
        out += dec.feed(stream[i : i + 7])
        assert len(dec._buf) <= 100
    assert out[0].problem is FrameProblem.OVERSIZE
    assert out[0].payload == big[:100]
    assert out[0].size == len(big)
    assert (out[1].payload, out[1].problem) == (b"MSH|next", None)


def test_limit_counts_bytes_not_characters() -> None:
    text = "é" * 60  # 60 characters, 120 bytes
    payload = text.encode("utf-8")
    assert decode_all(frame(payload), limit=100)[0].problem is FrameProblem.OVERSIZE
    exact = decode_all(frame(payload), limit=len(payload))[0]
    assert (exact.payload, exact.problem) == (payload, None)


def test_describe_names_first_bytes() -> None:
    f = decode_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + FS)[0]
    assert "GET / HTTP/1.1" in f.describe()
    assert f.problem is FrameProblem.OUTSIDE_FRAME


# A stream of clean frames, optionally separated by CR/LF, chopped at arbitrary points, must
# decode to the same messages whatever the chopping.
payloads = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(VT, b"v").replace(FS, b"f")),
    min_size=0,
    max_size=12,
)
separators = st.sampled_from([b"", b"\r", b"\n", b"\r\n"])


@settings(max_examples=300, deadline=None)
@given(payloads, st.data())
def test_property_any_chunking_yields_the_same_messages(
    msgs: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frame(m) + data.draw(separators) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    sizes = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
    frames = decode_all(stream, sizes)
    assert [f.payload for f in frames] == msgs
    assert all(f.problem is None for f in frames)


@settings(max_examples=100, deadline=None)
@given(payloads, st.data())
def test_property_stream_reader_chunking(msgs: list[bytes], data: st.DataObject) -> None:
    """Same property through MLLPReader over a real asyncio StreamReader."""
    stream = b"".join(frame(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))

    async def run() -> list[bytes]:
        raw = asyncio.StreamReader()
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=False):
            raw.feed_data(stream[a:b])
        raw.feed_eof()
        reader = MLLPReader(raw)
        got = []
        while not reader.at_eof():
            try:
                got.append(await reader.read_message())
            except asyncio.IncompleteReadError:
                break
        return got

    assert asyncio.run(run()) == msgs


async def test_read_message_raises_on_broken_frame() -> None:
    raw = asyncio.StreamReader()
    raw.feed_data(VT + b"MSH|cut")
    raw.feed_eof()
    reader = MLLPReader(raw)
    try:
        await reader.read_message()
    except MLLPFramingError as exc:
        assert exc.frame.problem is FrameProblem.TRUNCATED
        assert exc.frame.payload == b"MSH|cut"
    else:
        raise AssertionError("a truncated frame must not read as a message")
