"""HL7 TS/DTM and duration reading, DST edges included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.gmed.errors import InvalidDuration, InvalidTime
from adapters.gmed.times import parse_duration, parse_tq_duration, parse_ts, to_hl7_ts
from canonical.errors import RejectedInput

NY = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("text", "zone", "utc"),
    [
        ("20210924093000+0215", NY, datetime(2021, 9, 24, 7, 15, tzinfo=UTC)),
        ("202109240930-0500", LONDON, datetime(2021, 9, 24, 14, 30, tzinfo=UTC)),
        ("20241106120000", LONDON, datetime(2024, 11, 6, 12, 0, tzinfo=UTC)),
        ("20240704120000", LONDON, datetime(2024, 7, 4, 11, 0, tzinfo=UTC)),
        ("2024070412", NY, datetime(2024, 7, 4, 16, 0, tzinfo=UTC)),
        ("20240704", NY, datetime(2024, 7, 4, 4, 0, tzinfo=UTC)),
        ("2024", UTC, datetime(2024, 1, 1, tzinfo=UTC)),
        ("20240704120000.25+0000", NY, datetime(2024, 7, 4, 12, 0, 0, 250000, tzinfo=UTC)),
        # spring forward: 02:30 does not exist; read with the offset before (EST, -5)
        ("20240310023000", NY, datetime(2024, 3, 10, 7, 30, tzinfo=UTC)),
        # fall back: 01:30 happens twice; fold=0 takes the first (EDT, -4)
        ("20241103013000", NY, datetime(2024, 11, 3, 5, 30, tzinfo=UTC)),
    ],
)
def test_timestamps_become_utc(text: str, zone: ZoneInfo, utc: datetime) -> None:
    parsed = parse_ts(text, zone)
    assert parsed.utc == utc
    assert parsed.utc.tzinfo is UTC
    assert parsed.original == text
    assert parsed.had_offset == ("+" in text[8:] or "-" in text[8:])


@pytest.mark.parametrize(
    "text", ["", "2024-07-04", "20241332", "20240230", "202407041", "20240704+99", "2024070412.5"]
)
def test_bad_timestamps_are_rejected(text: str) -> None:
    with pytest.raises(InvalidTime):
        parse_ts(text, UTC)
    assert issubclass(InvalidTime, RejectedInput)


def test_writing_a_time_in_a_zone_reads_back_the_same_instant() -> None:
    moment = datetime(2024, 7, 4, 12, 0, tzinfo=UTC)
    text = to_hl7_ts(moment, ZoneInfo("Europe/Paris"))
    assert text == "20240704140000+0200"
    assert parse_ts(text, NY).utc == moment


@pytest.mark.parametrize(
    ("amount", "code", "text", "expected"),
    [
        ("30", "MINUTES", "", timedelta(minutes=30)),
        ("60", "s", "", timedelta(seconds=60)),
        ("70", "Min", "", timedelta(minutes=70)),
        ("60", "m", "", timedelta(minutes=60)),
        ("60", "m", "Minutes", timedelta(minutes=60)),
        ("50", "min", "Minutes", timedelta(minutes=50)),
        ("90", "MIN", "", timedelta(minutes=90)),
        ("45", "M", "", timedelta(minutes=45)),
        ("20", "sec", "", timedelta(seconds=20)),
        ("20", "S", "", timedelta(seconds=20)),
        ("1.5", "HOURS", "", timedelta(minutes=90)),
        ("2", "h", "", timedelta(hours=2)),
        ("1", "hr", "", timedelta(hours=1)),
        ("2", "DAYS", "", timedelta(days=2)),
        ("1", "d", "", timedelta(days=1)),
        ("15", "", "Minutes", timedelta(minutes=15)),
        ("15", "", "", timedelta(seconds=15)),
    ],
)
def test_durations_in_every_unit_senders_use(
    amount: str, code: str, text: str, expected: timedelta
) -> None:
    assert parse_duration(amount, code, text) == expected


def test_no_amount_is_no_duration() -> None:
    assert parse_duration("", "MINUTES") is None


@pytest.mark.parametrize(
    ("amount", "code"), [("30", "fortnights"), ("3", "mo"), ("abc", "min"), ("-5", "min")]
)
def test_unknown_units_and_bad_amounts_are_rejected(amount: str, code: str) -> None:
    with pytest.raises(InvalidDuration, match=code if amount.isdigit() else amount):
        parse_duration(amount, code)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("M30", timedelta(minutes=30)),
        ("H2", timedelta(hours=2)),
        ("30", timedelta(minutes=30)),
        ("2 hours", timedelta(hours=2)),
        ("INDEF", None),
        ("", None),
        ("soon", None),
    ],
)
def test_tq_durations(text: str, expected: timedelta | None) -> None:
    assert parse_tq_duration(text) == expected
