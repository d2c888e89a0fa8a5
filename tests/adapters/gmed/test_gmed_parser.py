"""The ingest parser against hl7apy and python-hl7 as oracles, plus its own error reasons."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import hl7
import pytest
from hl7apy.parser import parse_message as hl7apy_parse

from adapters.gmed.parser import (
    HL7ParseError,
    Separators,
    notes_after,
    parse_message,
    siu_resource_groups,
    unescape,
)
from tests.adapters.gmed.gmed_helpers import EDGE, HL7V2, fixture_bytes

ALL = HL7V2 + EDGE


def _text(path: Path) -> str:
    message = parse_message(path.read_bytes())
    return path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode(message.codec)


def _same(ours: str, theirs: str, esc: str = "\\") -> bool:
    """hl7apy trims trailing blanks, writes numbers back canonically ('001' as '1') and
    escapes the escape character of hex and formatting sequences when the escape is not '\\'."""
    e = re.escape(esc)
    theirs = re.sub(f"{e}E{e}([X.][0-9A-Za-z]+){e}E{e}", lambda m: f"{esc}{m[1]}{esc}", theirs)
    if ours.strip() == theirs.strip():
        return True
    try:
        return Decimal(ours) == Decimal(theirs)
    except InvalidOperation:
        return False


def _cr(text: str) -> str:
    return text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_fixture_parses_with_msh_first(path: Path) -> None:
    message = parse_message(path.read_bytes())
    assert message.msh.name == "MSH"
    assert message.message_code in {"SIU", "ADT", "ACK"}
    names = [seg.name for seg in message]
    expected = [line[:3] for line in _cr(_text(path)).split("\r") if line]
    assert names == expected


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_fields_and_components_match_hl7apy(path: Path) -> None:
    ours = parse_message(path.read_bytes())
    theirs = hl7apy_parse(_cr(_text(path)), find_groups=False)
    seen: dict[str, int] = defaultdict(int)
    compared = 0
    for their_seg in theirs.children:
        name = their_seg.name
        our_seg = ours.segments(name)[seen[name]]
        seen[name] += 1
        reps: dict[int, list[Any]] = defaultdict(list)
        for field in their_seg.children:
            if field.name is not None:  # hl7apy leaves fields past its definition unnamed
                reps[int(field.name.split("_")[1])].append(field)
        for n, fields in reps.items():
            if name == "MSH" and n <= 2:
                assert our_seg.raw_field(n) == fields[0].to_er7()
                continue
            our_reps = our_seg.repetitions(n)
            # hl7apy writes a repetition back without its trailing empty components
            trim = ours.separators.component + ours.separators.subcomponent
            esc = ours.separators.escape
            assert len(our_reps) == len(fields)
            for our_rep, field in zip(our_reps, fields, strict=True):
                assert _same(our_rep.raw.rstrip(trim), field.to_er7().rstrip(trim), esc)
            for our_rep, field in zip(our_reps, fields, strict=True):
                for c, comp in enumerate(field.children, start=1):
                    if "_" not in comp.name:  # a primitive: hl7apy names it by its datatype
                        continue
                    index = int(comp.name.rsplit("_", 1)[1])
                    theirs_text = comp.to_er7().rstrip(trim)
                    ours_text = our_rep.raw_component(index).rstrip(trim)
                    assert _same(ours_text, theirs_text, esc), (name, n, c)
                    compared += 1
    assert sum(seen.values()) == len(theirs.children)
    assert compared > 0 or len(ours) <= 3


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_fields_match_python_hl7(path: Path) -> None:
    text = _cr(_text(path))
    ours = parse_message(path.read_bytes())
    theirs = hl7.parse(text)
    assert len(theirs) == len(ours)
    for our_seg, their_seg in zip(ours, theirs, strict=True):
        assert str(their_seg[0]) == our_seg.name
        first = 3 if our_seg.name == "MSH" else 1
        for n in range(first, len(their_seg)):
            assert our_seg.raw_field(n) == str(their_seg[n]), (our_seg.name, n)


def test_unescape_matches_python_hl7_for_delimiters_and_hex() -> None:
    seps = Separators()
    container = hl7.parse("MSH|^~\\&|A\r")
    for text in [r"a\F\b", r"\S\\T\\R\\E\x", r"caf\X6C\e", r"no escapes", r"\F\\F\ end"]:
        assert unescape(text, seps) == container.unescape(text)


def test_unescape_formatting_and_unknown_sequences() -> None:
    seps = Separators()
    assert unescape(r"line1\.br\line2", seps) == "line1\nline2"
    assert unescape(r"a\.sp2\b", seps) == "a\n\nb"
    assert unescape(r"\H\bold\N\ text", seps) == "bold text"
    assert unescape("\\XC3A9\\t\\XC3A9\\", seps) == "été"
    assert unescape(r"keep \Zlocal\ and \Q\ as sent", seps) == r"keep \Zlocal\ and \Q\ as sent"
    assert unescape("dangling \\ escape", seps) == "dangling \\ escape"


def test_values_are_unescaped_lazily_and_nulls_recognised() -> None:
    raw = b'MSH|^~\\&|A|B|C|D|20240101||SIU^S12|1|P|2.5\rPID|1||""|X\\F\\Y^""^Z\\S\\W~R2\r'
    pid = parse_message(raw).segment("PID")
    assert pid is not None
    assert pid.raw_field(4) == 'X\\F\\Y^""^Z\\S\\W~R2'
    assert pid.field(3) == "" and pid.is_null(3)
    assert pid.field(4) == "X|Y"
    assert pid.component(4, 2) == "" and pid.repetition(4).is_null(2)
    assert pid.component(4, 3) == "Z^W"
    assert pid.field(4, rep=2) == "R2"
    assert not pid.is_null(5) and pid.field(5) == ""


@pytest.mark.parametrize(
    ("ending", "bom", "trailing"),
    [
        ("\r", b"", True),
        ("\n", b"", False),
        ("\r\n", b"\xef\xbb\xbf", True),
        ("\n", b"\xef\xbb\xbf", False),
    ],
)
def test_line_endings_bom_and_trailing_separator_give_the_same_message(
    ending: str, bom: bytes, trailing: bool
) -> None:
    base = _cr(fixture_bytes("fhirconv_siu_s12_01_v28.hl7").decode()).split("\r")
    raw = bom + (ending.join(base) + (ending if trailing else "")).encode()
    message = parse_message(raw)
    assert [s.raw for s in message] == base


def test_custom_separators_latin1_and_z_segments_are_read() -> None:
    message = parse_message(fixture_bytes("edge_siu_s12_custom_seps_latin1_crlf.hl7"))
    assert message.separators == Separators("#", "$", "*", "!", "%")
    assert message.charset == "8859/1" and message.codec == "latin-1"
    sch = message.segment("SCH")
    pid = message.segment("PID")
    assert sch is not None and pid is not None
    assert sch.component(7, 2) == "Contrôle#annuel été"
    assert pid.component(5, 1) == "Dupré" and pid.component(5, 2) == "Zoé"
    assert [r.component(1) for r in pid.repetitions(3)] == ["PAT-9", "OLD-1"]
    assert pid.is_null(7)
    assert [s.raw for s in message.segments("ZAP")] == ["ZAP#custom#data!F!x"]
    assert message.segments("ZSH")[0].field(1) == "more"
    assert [n.field(3) for n in notes_after(message, sch)] == ["Patient asked for \na morning slot"]


def test_resource_groups_keep_repeats_and_their_notes() -> None:
    message = parse_message(fixture_bytes("fhirconv_siu_s12_02_v28.hl7"))
    groups = siu_resource_groups(message)
    assert [g.rgs.field(1) if g.rgs else None for g in groups] == ["1", "2", "3"]
    assert [[i.segment.name for i in g.items] for g in groups] == [
        ["AIS", "AIG", "AIL", "AIP"],
        ["AIS", "AIG", "AIL", "AIP"],
        ["AIL", "AIP"],
    ]
    assert groups[2].of("AIP")[0].notes[0].field(3) == "GP available for checkup"
    single = siu_resource_groups(parse_message(fixture_bytes("fhirconv_siu_s12_01_v28.hl7")))
    assert [len(i.notes) for i in single[0].items] == [2, 1, 1, 0]


def test_declared_charsets_decode_the_bytes() -> None:
    head = "MSH|^~\\&|A|B|C|D|20240101||ADT^A04|1|P|2.5||||||{cs}\rPID|1||1||{name}\r"
    for charset, codec in [("UNICODE UTF-8", "utf-8"), ("UTF-8", "utf-8"), ("8859/1", "latin-1")]:
        raw = head.format(cs=charset, name="Müller").encode(codec)
        message = parse_message(raw)
        assert message.codec == codec
        assert message.segments("PID")[0].field(5) == "Müller"
    ascii_msg = parse_message(head.format(cs="ASCII", name="Muller").encode())
    assert ascii_msg.codec == "ascii"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "no MSH segment"),
        (b"PID|1||x\r", "no MSH segment"),
        (b"MSH|^~\r", "too short"),
        (b"MSH|^~\\|A|B\r", "must be 4"),
        (b"MSH|^^\\&|A|B\r", "repeat"),
        (b"MSHA^~\\&|A|B\r", "MSH-1"),
        (b"MSH|^~\\&|A|B|C|D|1||ADT^A04|1|P|2.5||||||KOI8\r", "not supported"),
        (b"MSH|^~\\&|A|B|C|D|1||ADT^A04|1|P|2.5||||||ASCII\rPID|\xc3\xa9\r", "not valid ascii"),
        (b"MSH|^~\\&|A|B\rPID|1\rMSH|^~\\&|A|B\r", "second MSH"),
        (b"MSH|^~\\&|A|B\r  PID|1\r", "no valid segment id"),
        (b"MSH|^~\\&|A|B\rpid|1\r", "no valid segment id"),
    ],
)
def test_unreadable_input_is_rejected_with_a_precise_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(HL7ParseError, match=reason):
        parse_message(raw)
