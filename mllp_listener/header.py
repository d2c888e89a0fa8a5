"""Just enough HL7 v2 to route and acknowledge a message: the MSH segment, nothing beyond it.

Field values are kept as they appear on the wire (escape sequences unresolved), so they can be
echoed into the ACK unchanged and compared byte for byte when deduplicating.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields as dataclass_fields

UTF8_BOM = b"\xef\xbb\xbf"

# HL7 table 0211 (MSH-18) -> Python codec. Only ASCII-compatible encodings: anything else could
# contain the MLLP framing bytes and cannot travel inside a frame.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "ISO IR101": "iso8859-2",
    "8859/3": "iso8859-3",
    "ISO IR109": "iso8859-3",
    "8859/4": "iso8859-4",
    "ISO IR110": "iso8859-4",
    "8859/5": "iso8859-5",
    "ISO IR144": "iso8859-5",
    "8859/6": "iso8859-6",
    "ISO IR127": "iso8859-6",
    "8859/7": "iso8859-7",
    "ISO IR126": "iso8859-7",
    "8859/8": "iso8859-8",
    "ISO IR138": "iso8859-8",
    "8859/9": "iso8859-9",
    "ISO IR148": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "ISO IR192": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc-kr",
    "BIG-5": "big5",
    "ISO IR87": "iso2022_jp",
}

# HL7 table 0357 codes used here.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
VALUE_TOO_LONG = "104"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
APPLICATION_INTERNAL_ERROR = "207"

ERROR_TEXT: dict[str, str] = {
    "0": "Message accepted",
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    VALUE_TOO_LONG: "Value too long",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

_SEARCH_MSH_BYTES = 4096
# MSH-1 + MSH-2 byte strings already validated; few distinct values occur, the bound is for
# hostile input.
_GOOD_DELIMITERS: set[bytes] = set()
_MAX_CACHED_DELIMITERS = 64


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """The MSH fields the listener needs. `codec` is the Python codec the MSH was decoded with
    (from MSH-18, or UTF-8/Latin-1 when absent) and the one the ACK is encoded with."""

    field_sep: str
    encoding_chars: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # first two components of MSH-9, joined with "^" whatever the separator
    message_structure: str | None
    control_id: str
    processing_id: str
    version: str | None
    accept_ack_type: str | None
    application_ack_type: str | None
    charset: str | None
    codec: str = "utf-8"

    @property
    def sender(self) -> str:
        """Dedupe scope for MSH-10: control ids are unique only per sending app and facility."""
        return f"{self.sending_application}|{self.sending_facility}"

    @property
    def is_ack(self) -> bool:
        """Acknowledgments are never acknowledged (that would loop between engines)."""
        return self.message_type == "ACK" or self.message_type.startswith("ACK^")


class HeaderError(ValueError):
    """The MSH cannot be accepted. `header` is set when it was still readable enough to
    address an ACK (e.g. unknown charset, junk before MSH); None means no ACK is possible."""

    def __init__(
        self, reason: str, hl7_error_code: str, header: MessageHeader | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hl7_error_code = hl7_error_code
        self.header = header


def parse_header(raw: bytes) -> MessageHeader:
    """Parse the MSH at the very start of `raw` (after an optional UTF-8 BOM).

    Raises HeaderError. When the MSH is not at the start but a later segment is an MSH (junk
    or another segment first), the error carries that header so the sender still gets an AR.
    """
    start = 3 if raw.startswith(UTF8_BOM) else 0
    if raw.startswith(b"MSH", start):
        return _parse_msh(raw, start)
    found = _find_msh(raw, start)
    if found < 0:
        if not raw[start:].strip():
            raise HeaderError("empty message", SEGMENT_SEQUENCE_ERROR)
        raise HeaderError(
            f"message does not start with an MSH segment: {raw[:40]!r}", SEGMENT_SEQUENCE_ERROR
        )
    header: MessageHeader | None
    try:
        header = _parse_msh(raw, found)
    except HeaderError as exc:
        header = exc.header
    raise HeaderError(
        f"{found - start} bytes before the MSH segment: {raw[start:found][:40]!r}",
        SEGMENT_SEQUENCE_ERROR,
        header,
    )


def _find_msh(raw: bytes, start: int) -> int:
    """Offset of an MSH that begins a segment somewhere after junk, or -1."""
    limit = min(len(raw), start + _SEARCH_MSH_BYTES)
    pos = raw.find(b"MSH", start, limit)
    while pos >= 0:
        if pos > start and raw[pos - 1] in b"\r\n" and pos + 4 <= len(raw):
            return pos
        pos = raw.find(b"MSH", pos + 1, limit)
    return -1


def _segment_end(raw: bytes, start: int) -> int:
    cr = raw.find(b"\r", start)
    lf = raw.find(b"\n", start)
    if cr < 0:
        return len(raw) if lf < 0 else lf
    return cr if lf < 0 or cr < lf else lf


def _delimiters_ok(fs: bytes, enc: bytes) -> bool:
    return not (
        len(enc) not in (4, 5)
        or len(set(enc)) != len(enc)
        or fs[0] in enc
        or any(c < 0x21 or c > 0x7E or chr(c).isalnum() for c in enc)
    )


def _parse_msh(raw: bytes, start: int) -> MessageHeader:
    end = _segment_end(raw, start)
    seg = raw[start:end]
    if len(seg) < 8:
        raise HeaderError(f"MSH segment too short: {seg[:40]!r}", REQUIRED_FIELD_MISSING)
    fs = seg[3:4]
    enc_end = seg.find(fs, 4)
    enc = seg[4:] if enc_end < 0 else seg[4:enc_end]
    delimiters = seg[3:enc_end] if enc_end >= 0 else None
    if delimiters is None or delimiters not in _GOOD_DELIMITERS:
        if fs.isalnum() or fs in b" \t\x0b\x1c" or fs[0] > 0x7E or fs[0] < 0x21:
            raise HeaderError(f"invalid field separator {fs!r} in MSH-1", DATA_TYPE_ERROR)
        if not _delimiters_ok(fs, enc):
            raise HeaderError(f"invalid encoding characters {enc[:8]!r} in MSH-2", DATA_TYPE_ERROR)
        if delimiters is not None and len(_GOOD_DELIMITERS) < _MAX_CACHED_DELIMITERS:
            _GOOD_DELIMITERS.add(delimiters)

    # Byte-level split only to read MSH-18; the segment is then decoded with that charset and
    # split again, which stays correct for multi-byte charsets whose trail bytes include '|'.
    charset: str | None = None
    if seg.count(fs) >= 17:
        charset_raw = seg.split(fs, 18)[17]
        if charset_raw:
            rep = enc[1:2]
            charset_raw = charset_raw.split(rep, 1)[0] if rep else charset_raw
            charset = charset_raw.decode("ascii", "replace").strip() or None
    problem: HeaderError | None = None
    if charset is None:
        try:
            text, codec = seg.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, codec = seg.decode("latin-1"), "latin-1"
    else:
        codec_name = CHARSETS.get(charset.upper())
        if codec_name is None:
            text, codec = seg.decode("latin-1"), "ascii"
            problem = HeaderError(
                f"unsupported character set {charset!r} in MSH-18", TABLE_VALUE_NOT_FOUND
            )
        else:
            try:
                text, codec = seg.decode(codec_name), codec_name
            except UnicodeDecodeError as exc:
                text, codec = seg.decode(codec_name, "replace"), codec_name
                problem = HeaderError(
                    f"MSH is not valid {charset} as declared in MSH-18 (byte {exc.start})",
                    DATA_TYPE_ERROR,
                )

    header = _fields_to_header(text, codec, charset)
    if problem is not None:
        raise HeaderError(problem.reason, problem.hl7_error_code, header)
    if not header.message_type:
        raise HeaderError("MSH-9 (message type) is empty", REQUIRED_FIELD_MISSING, header)
    if not header.control_id:
        raise HeaderError("MSH-10 (message control id) is empty", REQUIRED_FIELD_MISSING, header)
    return header


def _fields_to_header(text: str, codec: str, charset: str | None) -> MessageHeader:
    fs = text[3]
    fields = text.split(fs)
    if len(fields) < 16:
        fields += [""] * (16 - len(fields))
    # fields[0] is "MSH" and MSH-1 is the separator itself, so MSH-n is fields[n - 1].
    enc = fields[1]
    comp = enc[0]
    msg_type = fields[8].split(enc[1], 1)[0].split(comp)
    event = msg_type[1] if len(msg_type) > 1 else ""
    type_code = f"{msg_type[0]}^{event}" if msg_type[0] and event else msg_type[0]
    return _new_header(
        fs,
        enc,
        fields[2],
        fields[3],
        fields[4],
        fields[5],
        type_code,
        (msg_type[2] or None) if len(msg_type) > 2 else None,
        fields[9],
        fields[10],
        fields[11].split(comp, 1)[0] or None,
        fields[14] or None,
        fields[15] or None,
        charset,
        codec,
    )


(_S0, _S1, _S2, _S3, _S4, _S5, _S6, _S7, _S8, _S9, _S10, _S11, _S12, _S13, _S14) = tuple(
    MessageHeader.__dict__[f.name].__set__ for f in dataclass_fields(MessageHeader)
)
_new_object = object.__new__


def _new_header(
    v0: str, v1: str, v2: str, v3: str, v4: str, v5: str, v6: str, v7: str | None, v8: str,
    v9: str, v10: str | None, v11: str | None, v12: str | None, v13: str | None, v14: str,
) -> MessageHeader:  # fmt: skip
    """MessageHeader(v0, ..., v14) minus the frozen dataclass's object.__setattr__ per field,
    which made up half of the parse; runs once per inbound message."""
    h = _new_object(MessageHeader)
    _S0(h, v0)
    _S1(h, v1)
    _S2(h, v2)
    _S3(h, v3)
    _S4(h, v4)
    _S5(h, v5)
    _S6(h, v6)
    _S7(h, v7)
    _S8(h, v8)
    _S9(h, v9)
    _S10(h, v10)
    _S11(h, v11)
    _S12(h, v12)
    _S13(h, v13)
    _S14(h, v14)
    return h
