"""Build ACK messages by hand: this runs once per inbound message, so no HL7 library on this path.

hl7apy is used only in the tests, as an oracle that parses what is built here.
"""

from __future__ import annotations

import functools
import itertools
import os
import time

from mllp_listener.header import CHARSETS, ERROR_TEXT, MessageHeader

DEFAULT_VERSION = "2.5"

# Original-mode codes and their enhanced-mode (accept acknowledgment) counterparts.
_COMMIT_CODES = {"AA": "CA", "AE": "CE", "AR": "CR"}
_ACK_WHEN = {"AL": ("AA", "AE", "AR"), "NE": (), "ER": ("AE", "AR"), "SU": ("AA",)}

_PREFIX = "H" + os.urandom(3).hex().upper()
_counter = itertools.count(1)
_clock: list[object] = [0, ""]


def _timestamp() -> str:
    """MSH-7 in UTC; formatted at most once a second since it sits on the per-message path."""
    now = int(time.time())
    if _clock[0] != now:
        _clock[0] = now
        _clock[1] = time.strftime("%Y%m%d%H%M%S+0000", time.gmtime(now))
    return str(_clock[1])


def next_control_id() -> str:
    """MSH-10 for our ACKs: unique per process run and at most 20 characters (the v2.5 limit)."""
    return f"{_PREFIX}{next(_counter)}"


def ack_code_for(header: MessageHeader, code: str) -> str | None:
    """The MSA-1 code to send for original-mode `code` (AA/AE/AR), or None if MSH-15 says no.

    MSH-15 empty means original mode (always answer with AA/AE/AR). MSH-15 valued means
    enhanced mode: what we send is an accept acknowledgment (CA/CE/CR), since the listener
    acknowledges the commit, not the application processing.
    """
    mode = header.accept_ack_type
    if mode is None:
        return code
    wanted = _ACK_WHEN.get(mode.upper(), ("AA", "AE", "AR"))
    return _COMMIT_CODES[code] if code in wanted else None


def escape(text: str, header: MessageHeader) -> str:
    """Escape free text for an HL7 field with the message's own delimiters; drop line breaks."""
    fs = header.field_sep
    enc = header.encoding_chars
    esc = enc[2]
    out = text.replace(esc, f"{esc}E{esc}")
    out = out.replace(fs, f"{esc}F{esc}").replace(enc[0], f"{esc}S{esc}")
    out = out.replace(enc[1], f"{esc}R{esc}").replace(enc[3], f"{esc}T{esc}")
    if len(enc) > 4:
        out = out.replace(enc[4], f"{esc}P{esc}")
    return out.replace("\r", " ").replace("\n", " ")


@functools.lru_cache(maxsize=64)
def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.split("."):
        if not p.isdigit():
            break
        parts.append(int(p))
    return tuple(parts)


def build_ack(
    header: MessageHeader,
    code: str,
    text: str = "",
    *,
    error_code: str | None = None,
    control_id: str | None = None,
) -> bytes:
    """Build the (unframed) ACK for `header`; `code` is the MSA-1 code as it goes on the wire.

    Sender and receiver are swapped, the version and MSH-18 charset are kept, and the bytes are
    encoded in that charset. An ERR segment (ERR-3/4/8, plus ERR-1 for versions before 2.7,
    where it is the only place older receivers look) is added whenever `error_code` is given.
    """
    fs = header.field_sep
    enc = header.encoding_chars
    comp = enc[0]
    sub = enc[3]
    version = header.version or DEFAULT_VERSION
    vt = _version_tuple(version)
    trigger = header.message_type.partition("^")[2]
    msg_type = "ACK"
    if trigger:
        msg_type += comp + trigger
        if vt >= (2, 3, 1):
            msg_type += comp + "ACK"
    charset = header.charset if header.charset and header.charset.upper() in CHARSETS else ""
    msh = [
        "MSH",
        enc,
        header.receiving_application,
        header.receiving_facility,
        header.sending_application,
        header.sending_facility,
        _timestamp(),
        "",
        msg_type,
        control_id or next_control_id(),
        header.processing_id or "P",
        version,
    ]
    if charset:
        msh += ["", "", "", "", "", charset]
    segments = [fs.join(msh)]
    msa = ["MSA", code, header.control_id]
    if text:
        msa.append(escape(text, header))
    segments.append(fs.join(msa))
    if error_code is not None:
        err_text = escape(ERROR_TEXT.get(error_code, ""), header)
        cwe = f"{error_code}{comp}{err_text}{comp}HL70357"
        eld = f"{comp}{comp}{comp}{error_code}{sub}{err_text}{sub}HL70357" if vt < (2, 7) else ""
        user = escape(text, header) if text else ""
        segments.append(fs.join(["ERR", eld, "", cwe, "E", "", "", "", user]))
    return ("\r".join(segments) + "\r").encode(header.codec, "replace")
