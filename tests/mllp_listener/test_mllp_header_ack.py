"""MSH parsing and hand-built ACKs, both checked against hl7apy as the reference parser."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hl7apy.parser import parse_message, parse_segment

from mllp_listener import HeaderError, MessageHeader, build_ack, parse_header
from mllp_listener.ack import ack_code_for
from tests.mllp_listener.mllp_support import FIXTURES, make_message

FIXTURE_FILES = sorted(FIXTURES.glob("*.hl7"))


def _hl7apy(raw: bytes, encoding: str = "utf-8"):  # type: ignore[no-untyped-def]
    text = raw.decode(encoding).lstrip("\ufeff").replace("\r\n", "\r").replace("\n", "\r")
    return parse_message(text, find_groups=False)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
def test_header_of_every_fixture_agrees_with_hl7apy(path: Path) -> None:
    raw = path.read_bytes()
    header = parse_header(raw)
    ref = _hl7apy(raw).msh
    assert header.control_id == ref.msh_10.value
    assert header.sending_application == ref.msh_3.value
    assert header.receiving_facility == ref.msh_6.value
    components = ref.msh_9.value.split("^")
    assert header.message_type == "^".join(c for c in components[:2] if c)
    assert header.version == (ref.msh_12.value or None)
    assert header.is_ack == components[0].startswith("ACK")


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("code", ["AA", "AE", "AR"])
def test_ack_for_every_fixture_parses_with_hl7apy(path: Path, code: str) -> None:
    header = parse_header(path.read_bytes())
    text = "" if code == "AA" else "bad | thing ^ with ~ separators \\ & newline\nhere"
    ack = build_ack(header, code, text, error_code=None if code == "AA" else "207")
    assert b"\n" not in ack and ack.endswith(b"\r")
    msg = _hl7apy(ack, header.codec)
    assert msg.msh.msh_3.value == header.receiving_application
    assert msg.msh.msh_4.value == header.receiving_facility
    assert msg.msh.msh_5.value == header.sending_application
    assert msg.msh.msh_6.value == header.sending_facility
    assert msg.msh.msh_12.value == (header.version or "2.5")
    assert msg.msh.msh_10.value and msg.msh.msh_10.value != header.control_id
    assert msg.msh.msh_9.value.startswith("ACK")
    assert msg.msa.msa_1.value == code
    assert msg.msa.msa_2.value == header.control_id
    if header.charset:
        assert msg.msh.msh_18.value == header.charset
    if code == "AA":
        assert [s.name for s in msg.children] == ["MSH", "MSA"]
        return
    assert msg.msa.msa_3.value == (
        "bad \\F\\ thing \\S\\ with \\R\\ separators \\E\\ \\T\\ newline here"
    )
    err_line = next(s for s in ack.decode(header.codec).split("\r") if s.startswith("ERR"))
    # hl7apy only knows ERR-3..8 from v2.5 on; read older versions' ERR with the 2.5 layout.
    err = parse_segment(err_line, version="2.5")
    assert err.err_3.err_3_1.value == "207"
    assert err.err_3.err_3_3.value == "HL70357"
    assert err.err_4.value == "E"
    assert err.err_8.value.startswith("bad \\F\\ thing")


def test_fresh_control_ids() -> None:
    header = parse_header(make_message("C1"))
    ids = {
        parse_segment(build_ack(header, "AA").decode().split("\r")[0]).msh_10.value
        for _ in range(50)
    }
    assert len(ids) == 50
    assert all(len(i) <= 20 for i in ids)


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
def test_segment_endings(sep: bytes) -> None:
    header = parse_header(make_message("X1", sep=sep))
    assert (header.control_id, header.message_type, header.version) == ("X1", "SIU^S12", "2.5")


def test_bom_and_missing_version() -> None:
    header = parse_header(b"\xef\xbb\xbf" + make_message("B1", version=None))
    assert header.version is None
    ack = build_ack(header, "AA")
    assert parse_message(ack.decode()).msh.msh_12.value == "2.5"


@pytest.mark.parametrize(
    ("charset", "encoding"),
    [("UNICODE UTF-8", "utf-8"), ("UTF-8", "utf-8"), ("8859/1", "latin-1"), ("ASCII", "ascii")],
)
def test_msh18_charset_decodes_and_ack_is_encoded_in_it(charset: str, encoding: str) -> None:
    name = "Clinique Élysée" if encoding != "ascii" else "Clinique Elysee"
    raw = make_message("U1", charset=charset, sender=f"GMED|{name}", encoding=encoding)
    header = parse_header(raw)
    assert header.sending_facility == name
    assert header.charset == charset
    ack = build_ack(header, "AA")
    assert name.encode(encoding) in ack
    assert _hl7apy(ack, encoding).msh.msh_5.value == "GMED"
    assert _hl7apy(ack, encoding).msh.msh_18.value == charset


def test_unknown_charset_is_an_error_that_still_addresses_an_ack() -> None:
    with pytest.raises(HeaderError) as info:
        parse_header(make_message("K1", charset="KLINGON"))
    assert info.value.hl7_error_code == "103"
    assert "KLINGON" in info.value.reason
    assert info.value.header is not None
    ack = build_ack(info.value.header, "AR", info.value.reason, error_code="103")
    msg = _hl7apy(ack, "ascii")
    assert (msg.msa.msa_1.value, msg.msa.msa_2.value) == ("AR", "K1")
    assert msg.msh.msh_18.value == ""  # we cannot speak KLINGON, so the ACK is plain ASCII


def test_msh_not_valid_in_declared_charset() -> None:
    raw = make_message("D1", charset="UTF-8", sender="GMED|Caf\xe9", encoding="latin-1")
    with pytest.raises(HeaderError) as info:
        parse_header(raw)
    assert info.value.hl7_error_code == "102"
    assert info.value.header is not None and info.value.header.control_id == "D1"


@pytest.mark.parametrize(
    ("raw", "code", "addressable"),
    [
        (b"PID|1||123\r", "100", False),
        (b"", "100", False),
        (b"MSH^~\\&|A|B|C|D|2024||SIU^S12|1|P|2.5\r", "102", False),
        (b"MSH|^~|A|B|C|D|2024||SIU^S12|1|P|2.5\r", "102", False),
        (b"MSHX^~\\&X\r", "102", False),
        (b"MSH|^~\\&|A|B|C|D|2024||SIU^S12||P|2.5\r", "101", True),
        (b"MSH|^~\\&|A|B|C|D|2024|||1|P|2.5\r", "101", True),
        (b"garbage\rMSH|^~\\&|A|B|C|D|2024||SIU^S12|J1|P|2.5\r", "100", True),
        (b"\x00\x00\x00MSH|^~\\&|A|B|C|D|2024||SIU^S12|J2|P|2.5\r", "100", False),
    ],
)
def test_unusable_headers(raw: bytes, code: str, addressable: bool) -> None:
    with pytest.raises(HeaderError) as info:
        parse_header(raw)
    assert info.value.hl7_error_code == code
    assert (info.value.header is not None) == addressable


def test_alternative_delimiters_are_honoured() -> None:
    raw = b"MSH#$%\\*#APP#FAC#HUB#H#2024##SIU$S12$SIU_S12#A1#P#2.5\rSCH#1\r"
    header = parse_header(raw)
    assert header.message_type == "SIU^S12"
    assert header.message_structure == "SIU_S12"
    ack = build_ack(header, "AE", "a#b", error_code="207")
    assert ack.startswith(b"MSH#$%\\*#HUB#H#APP#FAC#")
    assert b"MSA#AE#A1#a\\F\\b" in ack


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (None, {"AA": "AA", "AE": "AE", "AR": "AR"}),
        ("AL", {"AA": "CA", "AE": "CE", "AR": "CR"}),
        ("NE", {"AA": None, "AE": None, "AR": None}),
        ("ER", {"AA": None, "AE": "CE", "AR": "CR"}),
        ("SU", {"AA": "CA", "AE": None, "AR": None}),
    ],
)
def test_msh15_decides_whether_and_how_to_answer(
    mode: str | None, expected: dict[str, str | None]
) -> None:
    header = parse_header(make_message("M1", accept_ack=mode or ""))
    assert header.accept_ack_type == mode
    assert {code: ack_code_for(header, code) for code in expected} == expected


def test_header_is_a_regular_message_header() -> None:
    """parse_header fills the frozen dataclass by slot; it must equal the constructor's."""
    raw = b"MSH|^~\\&|SA|SF|RA|RF|2024||SIU^S12^SIU_S12|C9|T|2.5^X|||NE|AL||8859/1\rSCH|1\r"
    header = parse_header(raw)
    expected = MessageHeader(
        field_sep="|",
        encoding_chars="^~\\&",
        sending_application="SA",
        sending_facility="SF",
        receiving_application="RA",
        receiving_facility="RF",
        message_type="SIU^S12",
        message_structure="SIU_S12",
        control_id="C9",
        processing_id="T",
        version="2.5",
        accept_ack_type="NE",
        application_ack_type="AL",
        charset="8859/1",
        codec="latin-1",
    )
    assert header == expected and hash(header) == hash(expected)
    assert dataclasses.replace(header) == header
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.control_id = "other"  # type: ignore[misc]


def test_bad_delimiters_are_refused_after_good_ones_were_seen() -> None:
    parse_header(b"MSH|^~\\&|A|B|C|D|2024||SIU^S12|1|P|2.5\r")
    for raw in (b"MSH|^~\\^|A|B\r", b"MSH|^~\\a|A|B\r", b"MSH|^~\\||A|B\r"):
        with pytest.raises(HeaderError) as info:
            parse_header(raw)
        assert info.value.hl7_error_code == "102"
