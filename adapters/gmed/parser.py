"""A small, fast HL7 v2 reader for the ingest path.

hl7apy reads about 50 SIU messages a second and drops Z-segments, so ingest uses this reader
and hl7apy stays its test oracle. Parsing only decodes the bytes and cuts segments; fields are
split when first touched and escape sequences are resolved only when a value is read, so a
message costs little more than its ``str.split`` calls.

Positions are 1-based as in the HL7 specification (``PID-3.4.1`` is ``value(3, 4, 1)``), and
``MSH-1`` is the field separator itself, as the standard counts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import compress, count, islice
from operator import itemgetter

from adapters.gmed.errors import HL7ParseError

__all__ = [
    "NULL",
    "HL7ParseError",
    "Message",
    "Repetition",
    "ResourceGroup",
    "ResourceItem",
    "Segment",
    "Separators",
    "notes_after",
    "parse_message",
    "python_codec",
    "siu_resource_groups",
    "siu_resource_segments",
    "unescape",
]

NULL = '""'
"""HL7's explicit null: the sender says "clear this value", unlike an empty field."""

_BOM_UTF8 = b"\xef\xbb\xbf"
_BOM_UTF16 = (b"\xff\xfe", b"\xfe\xff")
_LEADING = b"\r\n\t "  # blank lines before MSH
_TRAILING = b"\r\n"  # never strip blanks: a last value may end in one

# MSH-18 (HL7 table 0211) to Python codecs. Names are matched case-insensitively with spaces,
# '-' and '_' ignored, so 'UNICODE UTF-8', 'UTF-8' and 'utf8' all land on utf-8.
_CHARSETS = {
    "ASCII": "ascii",
    "USASCII": "ascii",
    "ISOIR6": "ascii",
    "8859/1": "latin-1",
    "ISOIR100": "latin-1",
    "LATIN1": "latin-1",
    "ISO88591": "latin-1",
    "8859/2": "iso8859-2",
    "ISOIR101": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "ISOIR144": "iso8859-5",
    "8859/6": "iso8859-6",
    "ISOIR127": "iso8859-6",
    "8859/7": "iso8859-7",
    "ISOIR126": "iso8859-7",
    "8859/8": "iso8859-8",
    "ISOIR138": "iso8859-8",
    "8859/9": "iso8859-9",
    "ISOIR148": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODEUTF8": "utf-8",
    "UTF8": "utf-8",
    "UNICODE": "utf-8",
    "UNICODEUTF16": "utf-16",
    "UTF16": "utf-16",
    "WINDOWS1252": "cp1252",
    "CP1252": "cp1252",
    "GB180302000": "gb18030",
    "GB18030": "gb18030",
    "KSX1001": "euc-kr",
    "BIG5": "big5",
    "ISOIR87": "iso2022-jp",
    "ISOIR159": "iso2022-jp-2",
    "JAS2020": "shift-jis",
    "JISX0202": "iso2022-jp",
}


@lru_cache(maxsize=256)
def python_codec(charset: str) -> str:
    """The Python codec for an MSH-18 name; unknown names are rejected, never guessed."""
    key = charset.strip().upper().replace(" ", "").replace("-", "").replace("_", "")
    codec = _CHARSETS.get(key)
    if codec is None:
        raise HL7ParseError(
            f"MSH-18 character set {charset!r} is not supported (HL7 table 0211 names such as "
            "'UNICODE UTF-8', '8859/1' or 'ASCII' are)"
        )
    return codec


@dataclass(frozen=True, slots=True)
class Separators:
    """The delimiters MSH-1 and MSH-2 declare for this message."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None


def unescape(text: str, seps: Separators, codec: str = "utf-8") -> str:
    """Resolve HL7 escape sequences; unknown or malformed ones are kept as sent."""
    esc = seps.escape
    if esc not in text:
        return text
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        j = text.find(esc, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(esc, j + 1)
        if k < 0:
            out.append(text[j:])
            break
        replacement = _escape_value(text[j + 1 : k], seps, codec)
        out.append(text[j : k + 1] if replacement is None else replacement)
        i = k + 1
    return "".join(out)


def _escape_value(seq: str, seps: Separators, codec: str) -> str | None:
    simple = {
        "F": seps.field,
        "S": seps.component,
        "T": seps.subcomponent,
        "R": seps.repetition,
        "E": seps.escape,
        "H": "",
        "N": "",
    }
    if seq in simple:
        return simple[seq]
    if seq == "P" and seps.truncation:
        return seps.truncation
    if not seq:
        return None
    head = seq[0]
    if head == "X":
        hexdigits = seq[1:]
        if not hexdigits or len(hexdigits) % 2:
            return None
        try:
            return bytes.fromhex(hexdigits).decode(codec)
        except ValueError:
            return None
    if head in "CM" and len(seq) in (5, 7) and _is_hex(seq[1:]):
        return ""  # character-set switch markers: text around them is already decoded
    if head == ".":
        return _formatting(seq[1:])
    return None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _formatting(cmd: str) -> str | None:
    """FT formatting commands: line breaks matter to readers, layout hints do not."""
    if cmd == "br":
        return "\n"
    name, arg = cmd[:2], cmd[2:]
    if name in ("sp", "sk"):
        count = 1
        if arg:
            if not arg.lstrip("+").isdigit():
                return None
            count = int(arg.lstrip("+"))
        return ("\n" if name == "sp" else " ") * count
    if name in ("in", "ti") and (not arg or arg.lstrip("+-").isdigit()):
        return ""
    if cmd in ("fi", "nf", "ce"):
        return ""
    return None


def _value(text: str, seps: Separators, codec: str) -> str:
    """A component's value: its first subcomponent, unescaped; '' for the explicit null."""
    if seps.subcomponent in text:
        text = text.split(seps.subcomponent, 1)[0]
    if not text or text == NULL:
        return ""
    if seps.escape in text:
        return unescape(text, seps, codec)
    return text


def _leaf(text: str, sub: int, seps: Separators, codec: str) -> str:
    """Subcomponent ``sub`` of a component's text, unescaped; '' when empty or null."""
    if seps.subcomponent in text:
        parts = text.split(seps.subcomponent)
        text = parts[sub - 1] if 1 <= sub <= len(parts) else ""
    elif sub != 1:
        return ""
    if text == NULL:
        return ""
    if seps.escape in text:
        return unescape(text, seps, codec)
    return text


class Repetition:
    """One repetition of a field: components split on first use."""

    __slots__ = ("_codec", "_components", "_seps", "raw")

    def __init__(self, raw: str, seps: Separators, codec: str) -> None:
        self.raw = raw
        self._seps = seps
        self._codec = codec
        self._components: list[str] | None = None

    def _raw_components(self) -> list[str]:
        if self._components is None:
            self._components = self.raw.split(self._seps.component)
        return self._components

    def raw_component(self, comp: int, sub: int | None = None) -> str:
        """Escaped text of a component (or of one subcomponent when ``sub`` is given)."""
        comps = self._components
        if comps is None:
            comps = self._components = self.raw.split(self._seps.component)
        if comp < 1 or comp > len(comps):
            return ""
        text = comps[comp - 1]
        if sub is None:
            return text
        if self._seps.subcomponent not in text:
            return text if sub == 1 else ""
        subs = text.split(self._seps.subcomponent)
        return subs[sub - 1] if 1 <= sub <= len(subs) else ""

    def component(self, comp: int = 1, sub: int = 1) -> str:
        """Unescaped value; '' when empty or the explicit null."""
        comps = self._components
        if comps is None:
            comps = self._components = self.raw.split(self._seps.component)
        if comp < 1 or comp > len(comps):
            return ""
        text = comps[comp - 1]
        if not text:
            return ""
        return _leaf(text, sub, self._seps, self._codec)

    def values(self) -> list[str]:
        """Every component's unescaped value (first subcomponent), in one pass."""
        comps = self._components
        if comps is None:
            comps = self._components = self.raw.split(self._seps.component)
        seps = self._seps
        raw = self.raw
        if seps.escape in raw or NULL in raw:
            return [_value(c, seps, self._codec) for c in comps]
        ss = seps.subcomponent
        if ss in raw:
            return [c.partition(ss)[0] if ss in c else c for c in comps]
        return list(comps)

    def is_null(self, comp: int | None = None, sub: int | None = None) -> bool:
        """True when the sender wrote ``""`` here: the value is to be cleared."""
        if comp is None:
            return self.raw == NULL
        return self.raw_component(comp, sub) == NULL

    @property
    def component_count(self) -> int:
        return len(self._raw_components()) if self.raw else 0

    def __repr__(self) -> str:
        return f"Repetition({self.raw!r})"


class Segment:
    """One segment; ``fields`` are split from ``raw`` the first time any is read.

    ``component`` reads straight from the field text (a split of a few short strings is
    cheaper than building and caching Repetition objects); ``repetitions`` builds and caches
    them for callers that walk a field.
    """

    __slots__ = ("_codec", "_fields", "_plain", "_reps", "_seps", "name", "position", "raw")

    def __init__(self, raw: str, seps: Separators, codec: str, position: int) -> None:
        self.raw = raw
        self.name = raw[:3]
        self.position = position
        self._seps = seps
        self._codec = codec
        self._fields: list[str] | None = None
        self._reps: dict[int, list[Repetition]] | None = None

    def _split(self) -> list[str]:
        raw, seps = self.raw, self._seps
        fields = raw.split(seps.field)
        if self.name == "MSH":
            fields.insert(1, seps.field)
            self._plain = False
        else:
            # Most segments hold no repetition, escape, subcomponent or null: their values
            # are then their component texts, which the accessors read without checks.
            self._plain = not (
                seps.repetition in raw
                or seps.escape in raw
                or seps.subcomponent in raw
                or NULL in raw
            )
        self._fields = fields
        return fields

    @property
    def fields(self) -> list[str]:
        """Escaped field texts; index n is field n (index 0 is the segment name)."""
        fields = self._fields
        return self._split() if fields is None else fields

    @property
    def separators(self) -> Separators:
        return self._seps

    def plain_fields(self) -> list[str] | None:
        """The field texts when none needs resolving (no repetition, escape, subcomponent or
        null: see ``_split``), so a value is its component text; None otherwise."""
        fields = self._fields
        if fields is None:
            fields = self._split()
        return fields if self._plain else None

    @property
    def field_count(self) -> int:
        """The highest field number present (trailing empty fields included)."""
        return len(self.fields) - 1

    def raw_field(self, n: int) -> str:
        """Escaped text of field n with all its repetitions; '' when absent."""
        fields = self._fields
        if fields is None:
            fields = self._split()
        return fields[n] if 0 < n < len(fields) else ""

    def repetitions(self, n: int) -> list[Repetition]:
        """Every repetition of field n; [] when the field is empty."""
        cache = self._reps
        if cache is None:
            cache = self._reps = {}
        else:
            cached = cache.get(n)
            if cached is not None:
                return cached
        text = self.raw_field(n)
        if not text:
            reps: list[Repetition] = []
        elif n <= 2 and self.name == "MSH":
            reps = [Repetition(text, _LITERAL, self._codec)]
        else:
            seps, codec = self._seps, self._codec
            if seps.repetition in text:
                reps = [Repetition(r, seps, codec) for r in text.split(seps.repetition)]
            else:
                reps = [Repetition(text, seps, codec)]
        cache[n] = reps
        return reps

    def repetition(self, n: int, rep: int = 1) -> Repetition:
        """Repetition ``rep`` of field n (an empty one when absent)."""
        reps = self.repetitions(n)
        if 1 <= rep <= len(reps):
            return reps[rep - 1]
        return Repetition("", self._seps, self._codec)

    def component(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        """Unescaped value at field n, component, subcomponent, repetition."""
        fields = self._fields
        if fields is None:
            fields = self._split()
        if n <= 0 or n >= len(fields):
            return ""
        text = fields[n]
        if not text:
            return ""
        if self._plain and sub == 1 and rep == 1:
            sep = self._seps.component
            if sep in text:
                parts = text.split(sep)
                return parts[comp - 1] if 0 < comp <= len(parts) else ""
            return text if comp == 1 else ""
        if n <= 2 and self.name == "MSH":
            return text
        seps = self._seps
        sep = seps.repetition
        if sep in text:
            parts = text.split(sep)
            if rep < 1 or rep > len(parts):
                return ""
            text = parts[rep - 1]
        elif rep != 1:
            return ""
        sep = seps.component
        if sep in text:
            parts = text.split(sep)
            if comp < 1 or comp > len(parts):
                return ""
            text = parts[comp - 1]
            if not text:
                return ""
        elif comp != 1:
            return ""
        return _leaf(text, sub, seps, self._codec)

    def components(self, n: int, width: int = 0, rep: int = 1) -> list[str]:
        """Every component of field n as ``component(n, c)`` gives it, padded to ``width``.

        One call per composite (a CE, an XCN ...) instead of one per component.
        """
        fields = self._fields
        if fields is None:
            fields = self._split()
        text = fields[n] if 0 < n < len(fields) else ""
        if self._plain and rep == 1:
            if not text:
                return [""] * width
            values = text.split(self._seps.component)
            if len(values) < width:
                values += [""] * (width - len(values))
            return values
        if n <= 2 and self.name == "MSH":
            values = [text]
        elif not text:
            values = []
        else:
            seps = self._seps
            if seps.repetition in text:
                parts = text.split(seps.repetition)
                text = parts[rep - 1] if 1 <= rep <= len(parts) else ""
            elif rep != 1:
                text = ""
            ss, esc = seps.subcomponent, seps.escape
            if not text:
                values = []
            elif esc in text or NULL in text:
                values = [_value(c, seps, self._codec) for c in text.split(seps.component)]
            elif ss in text:
                values = [c.partition(ss)[0] for c in text.split(seps.component)]
            else:
                values = text.split(seps.component)  # nothing to resolve: the usual case
        if len(values) < width:
            values += [""] * (width - len(values))
        return values

    def field(self, n: int, rep: int = 1) -> str:
        """The value of a primitive field (for a composite: its first component)."""
        return self.component(n, 1, 1, rep)

    def is_null(self, n: int, comp: int | None = None, sub: int | None = None) -> bool:
        """True when field n (or one of its parts) is HL7's explicit null ``""``."""
        return self.repetition(n).is_null(comp, sub)

    def __repr__(self) -> str:
        return f"Segment({self.raw[:40]!r})"


_LITERAL = Separators("\x00", "\x01", "\x02", "\x03", "\x04")


class Message:
    """A parsed message: its segments in order, indexed by name.

    Segment objects are made the first time a segment is asked for: the normalizer reads
    about half of an SIU's segments, and the rest (PV1, OBX, Z-segments ...) cost only a line.
    """

    __slots__ = ("_lines", "_names", "_segs", "charset", "codec", "separators")

    def __init__(
        self, lines: list[str], names: list[str], separators: Separators, charset: str, codec: str
    ) -> None:
        self._lines = lines
        self._names = names
        """Segment ids, parallel to the lines."""
        self._segs: list[Segment | None] = [None] * len(lines)
        self.separators = separators
        self.charset = charset
        """MSH-18 as sent ('' when absent)."""
        self.codec = codec
        """The Python codec the bytes were decoded with."""

    def at(self, position: int) -> Segment:
        """The segment at a 0-based position (``Segment.position``)."""
        seg = self._segs[position]
        if seg is None:
            seg = self._segs[position] = Segment(
                self._lines[position], self.separators, self.codec, position
            )
        return seg

    def positions(self, name: str) -> list[int]:
        """The positions of the segments called ``name``, in message order."""
        names = self._names
        if name not in names:
            return []
        return list(compress(count(), map(name.__eq__, names)))

    def segments(self, name: str | None = None) -> list[Segment]:
        """All segments called ``name`` in message order (every segment when None)."""
        at = self.at
        if name is None:
            return [at(i) for i in range(len(self._lines))]
        return list(map(at, self.positions(name)))

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, if any."""
        names = self._names
        if name not in names:
            return None
        return self.at(names.index(name))

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments())

    def __len__(self) -> int:
        return len(self._lines)

    @property
    def names(self) -> list[str]:
        """Every segment id in message order (index = position)."""
        return self._names

    @property
    def msh(self) -> Segment:
        return self.at(0)

    @property
    def message_code(self) -> str:
        """MSH-9.1, e.g. 'SIU', 'ADT', 'ACK'."""
        return self.msh.component(9, 1).strip().upper()

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, e.g. 'S12'; '' for a bare 'ACK'."""
        return self.msh.component(9, 2).strip().upper()

    @property
    def control_id(self) -> str:
        return self.msh.field(10)

    @property
    def version(self) -> str:
        return self.msh.field(12)


def parse_message(raw: bytes) -> Message:
    """Decode and segment one HL7 v2 message; raise HL7ParseError saying what is wrong."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise HL7ParseError(f"expected bytes, got {type(raw).__name__}")
    data = raw if type(raw) is bytes else bytes(raw)
    forced_codec = None
    if data.startswith(_BOM_UTF8):
        data = data[3:]
        forced_codec = "utf-8"
    elif data[:2] in _BOM_UTF16:
        try:
            data = data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise HL7ParseError(f"bad UTF-16 after byte-order mark: {exc.reason}") from None
        forced_codec = "utf-8"
    if data.startswith(b"\x0b"):  # still in its MLLP frame: take the frame off
        data = data[1:].removesuffix(b"\r").removesuffix(b"\x1c")
    data = data.lstrip(_LEADING).rstrip(_TRAILING)
    if not data.startswith(b"MSH"):
        what = "empty message" if not data else f"starts with {data[:12]!r}"
        raise HL7ParseError(f"no MSH segment at the start: {what}")
    seps = _separators(data)
    charset = _declared_charset(data, seps)
    codec = forced_codec or (python_codec(charset) if charset else "utf-8")
    if codec == "utf-16" and not forced_codec:
        raise HL7ParseError("MSH-18 says UTF-16 but the bytes carry no UTF-16 byte-order mark")
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        declared = f"declared MSH-18 {charset!r}" if charset else "UTF-8 (no MSH-18)"
        raise HL7ParseError(
            f"bytes {exc.start}-{exc.end} are not valid {codec} ({declared}): {exc.reason}"
        ) from None
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    fs = seps.field
    lines = text.split("\r")
    names = list(map(_SEGMENT_ID, lines))
    # Fast path, checked in C: every line has a segment id seen before (MSH only first) and
    # the field separator after it, as the loop below would find line by line.
    if _NAMES_SEEN.issuperset(islice(names, 1, None)) and set(map(_AFTER_ID, lines)) == {fs}:
        return Message(lines, names, seps, charset, codec)
    lines = []
    names = []
    for line in text.split("\r"):
        name = line[:3]
        # Fast path: a segment id seen before (never MSH, which is checked every time).
        if line[3:4] == fs and name in _NAMES_SEEN:
            lines.append(line)
            names.append(name)
            continue
        if not line or line.isspace():
            continue
        if not _valid_name(name) or (len(line) > 3 and line[3] != fs):
            raise HL7ParseError(f"segment {len(lines) + 1} has no valid segment id: {line[:20]!r}")
        if name == "MSH" and lines:
            raise HL7ParseError(
                f"a second MSH at segment {len(lines) + 1}: batches must be split first"
            )
        lines.append(line)
        names.append(name)
    return Message(lines, names, seps, charset, codec)


_SEGMENT_ID = itemgetter(slice(0, 3))
_AFTER_ID = itemgetter(slice(3, 4))
_NAMES_SEEN: set[str] = set()
"""Segment ids already found valid: a feed uses a few dozen, so each is checked once."""


def _valid_name(name: str) -> bool:
    if (
        len(name) == 3
        and name.isascii()
        and name.isalnum()
        and name[0].isalpha()
        and name.upper() == name
    ):
        if name != "MSH" and len(_NAMES_SEEN) < 4096:
            _NAMES_SEEN.add(name)
        return True
    return False


def _separators(data: bytes) -> Separators:
    if len(data) < 8:
        raise HL7ParseError(f"MSH too short to declare separators: {data[:20]!r}")
    end = data.find(data[3:4], 4)
    return _declared_separators(data[3], data[4:end] if end >= 0 else data[4:])


@lru_cache(maxsize=64)
def _declared_separators(fs_byte: int, enc_bytes: bytes) -> Separators:
    """Checked once per delimiter set: a feed declares the same one in every MSH."""
    fs = chr(fs_byte)
    enc = enc_bytes.decode("latin-1")
    if fs_byte >= 0x80 or fs.isalnum() or fs in "\r\n ":
        raise HL7ParseError(f"MSH-1 field separator {fs!r} is not a usable separator")
    if len(enc) not in (4, 5):
        raise HL7ParseError(
            f"MSH-2 encoding characters {enc!r} must be 4 (or 5 with truncation) characters"
        )
    if len(set(enc + fs)) != len(enc) + 1 or any(
        c.isalnum() or c in "\r\n " or ord(c) >= 0x80 for c in enc
    ):
        raise HL7ParseError(
            f"MSH-2 encoding characters {enc!r} repeat, clash with MSH-1 {fs!r} or are not "
            "punctuation"
        )
    return Separators(fs, enc[0], enc[1], enc[2], enc[3], enc[4] if len(enc) == 5 else None)


def _declared_charset(data: bytes, seps: Separators) -> str:
    """MSH-18, read from the raw bytes before we know how to decode the rest."""
    cut = data.find(b"\r")
    if cut < 0:
        cut = len(data)
    newline = data.find(b"\n", 0, cut)
    if newline >= 0:
        cut = newline
    # MSH-18 is at index 17 because MSH-1 is the separator itself: split no further
    msh = data[:cut].split(seps.field.encode("latin-1"), 18)
    if len(msh) < 18:
        return ""
    first = msh[17].decode("latin-1")
    first = first.partition(seps.repetition)[0].partition(seps.component)[0]
    return first.strip()


@dataclass(slots=True)
class ResourceItem:
    """An AIS, AIG, AIL or AIP segment and the NTE segments that follow it."""

    segment: Segment
    notes: list[Segment] = field(default_factory=list)


@dataclass(slots=True)
class ResourceGroup:
    """One RGS group of an SIU message (``rgs`` is None for AIx sent without an RGS)."""

    rgs: Segment | None
    items: list[ResourceItem] = field(default_factory=list)

    def of(self, name: str) -> list[ResourceItem]:
        """The items whose segment is called ``name`` ('AIS', 'AIG', 'AIL', 'AIP')."""
        return [item for item in self.items if item.segment.name == name]


_RESOURCE_SEGMENTS = frozenset({"AIS", "AIG", "AIL", "AIP"})


def siu_resource_groups(message: Message) -> list[ResourceGroup]:
    """The RGS groups in order, each with its resource segments and their notes."""
    groups: list[ResourceGroup] = []
    current: ResourceGroup | None = None
    last: ResourceItem | None = None
    for seg in message:
        name = seg.name
        if name == "RGS":
            current = ResourceGroup(seg)
            groups.append(current)
            last = None
        elif name in _RESOURCE_SEGMENTS:
            if current is None:
                current = ResourceGroup(None)
                groups.append(current)
            last = ResourceItem(seg)
            current.items.append(last)
        elif name == "NTE":
            if last is not None:
                last.notes.append(seg)
        else:
            last = None
    return groups


def notes_after(message: Message, segment: Segment) -> list[Segment]:
    """The NTE segments directly after ``segment`` (and after a TQ1 that follows an SCH)."""
    found: list[Segment] = []
    names = message._names
    for i in range(segment.position + 1, len(names)):
        name = names[i]
        if name == "NTE":
            found.append(message.at(i))
        elif not found and segment.name == "SCH" and name in ("TQ1", "TQ2"):
            continue
        else:
            break
    return found


def siu_resource_segments(message: Message) -> list[Segment]:
    """The AIS, AIG, AIL and AIP segments in message order: every RGS group's items, flat.

    The normalizer needs no grouping, so it skips siu_resource_groups' group objects and the
    Segment objects for the segments around them.
    """
    wanted = map(_RESOURCE_SEGMENTS.__contains__, message._names)
    at = message.at
    return list(map(at, compress(count(), wanted)))  # the scan itself runs in C
