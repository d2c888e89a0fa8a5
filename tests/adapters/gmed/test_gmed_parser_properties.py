"""Property tests: any message we can write, we read back; any bytes fail only as HL7ParseError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.gmed.parser import HL7ParseError, Separators, parse_message

PUNCTUATION = "|^~\\&#$*!%@+/:;<=>?`{}'"

Value = str
Field = list[list[list[Value]]]  # repetitions -> components -> subcomponents


@st.composite
def separators(draw: st.DrawFn) -> Separators:
    chars = draw(st.permutations(PUNCTUATION).map(lambda p: p[:5]))
    return Separators(*chars)


values = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12
).filter(lambda v: v != '""')

fields: st.SearchStrategy[Field] = st.lists(
    st.lists(st.lists(values, min_size=1, max_size=3), min_size=1, max_size=3),
    min_size=1,
    max_size=2,
)
segment_names = st.from_regex(r"\A[A-Z][A-Z0-9]{2}\Z").filter(lambda n: n != "MSH")


def escape(value: Value, seps: Separators) -> str:
    out = []
    for char in value:
        if char == seps.escape:
            out.append(f"{seps.escape}E{seps.escape}")
        elif char == seps.field:
            out.append(f"{seps.escape}F{seps.escape}")
        elif char == seps.component:
            out.append(f"{seps.escape}S{seps.escape}")
        elif char == seps.subcomponent:
            out.append(f"{seps.escape}T{seps.escape}")
        elif char == seps.repetition:
            out.append(f"{seps.escape}R{seps.escape}")
        elif char in "\r\n":
            out.append(f"{seps.escape}X{char.encode().hex().upper()}{seps.escape}")
        else:
            out.append(char)
    return "".join(out)


def write_field(field: Field, seps: Separators) -> str:
    return seps.repetition.join(
        seps.component.join(seps.subcomponent.join(escape(v, seps) for v in comp) for comp in rep)
        for rep in field
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seps=separators(),
    body=st.lists(st.tuples(segment_names, st.lists(fields, max_size=4)), max_size=4),
    ending=st.sampled_from(["\r", "\n", "\r\n"]),
)
def test_written_values_read_back(
    seps: Separators, body: list[tuple[str, list[Field]]], ending: str
) -> None:
    enc = seps.component + seps.repetition + seps.escape + seps.subcomponent
    msh = seps.field.join(["MSH", enc, "APP", "FAC", "", "", "20240101", "", "SIU^S12", "1"])
    lines = [msh] + [
        seps.field.join([name, *(write_field(f, seps) for f in flds)]) for name, flds in body
    ]
    message = parse_message(ending.join(lines).encode("utf-8"))
    assert message.separators == seps
    assert [s.name for s in message][1:] == [name for name, _ in body]
    for segment, (_, flds) in zip(message.segments()[1:], body, strict=True):
        for n, field in enumerate(flds, start=1):
            for r, rep in enumerate(field, start=1):
                for c, comp in enumerate(rep, start=1):
                    for s, value in enumerate(comp, start=1):
                        assert segment.component(n, c, s, r) == value


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_fail_only_as_parse_errors(raw: bytes) -> None:
    _read_everything(raw)


@settings(max_examples=400, deadline=None)
@given(tail=st.binary(max_size=200), head=st.sampled_from([b"MSH|^~\\&|", b"\xef\xbb\xbfMSH|"]))
def test_bytes_after_a_valid_header_fail_only_as_parse_errors(head: bytes, tail: bytes) -> None:
    _read_everything(head + tail)


def _read_everything(raw: bytes) -> None:
    try:
        message = parse_message(raw)
    except HL7ParseError:
        return
    for segment in message:
        for n in range(1, segment.field_count + 1):
            for r, rep in enumerate(segment.repetitions(n), start=1):
                for c in range(1, rep.component_count + 1):
                    assert isinstance(segment.component(n, c, 1, r), str)
