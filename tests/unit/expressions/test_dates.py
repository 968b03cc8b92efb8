"""Date parsing and .NET format strings behind CDate, FormatDateTime and the AD conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncctl.expressions.dates import (
    format_entra,
    format_with,
    from_filetime,
    parse_datetime,
    parse_formatted,
    to_filetime,
)

_moments = st.datetimes(
    min_value=datetime(1601, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 10 * 10))


@given(_moments)
@settings(max_examples=200, deadline=None)
def test_filetime_round_trip(moment: datetime) -> None:
    assert from_filetime(to_filetime(moment)) == moment


@given(_moments.map(lambda d: d.replace(microsecond=0)))
@settings(max_examples=200, deadline=None)
def test_entra_format_parses_back(moment: datetime) -> None:
    assert parse_datetime(format_entra(moment)) == moment


@pytest.mark.parametrize(
    "fmt",
    ["yyyy-MM-ddTHH:mm:ss", "yyyyMMddHHmmss.fffZ", "M/d/yyyy h:mm:ss tt", "dd MMM yyyy HH:mm"],
)
@given(moment=_moments.map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)))
@settings(max_examples=50, deadline=None)
def test_formats_round_trip(fmt: str, moment: datetime) -> None:
    text = format_with(moment, fmt)
    parsed = parse_formatted(text, fmt)
    assert format_with(parsed, fmt) == text


def test_offsets_convert_to_utc() -> None:
    assert parse_datetime("2021-01-01T00:30:00+01:00") == datetime(2020, 12, 31, 23, 30, tzinfo=UTC)
    assert parse_datetime("2021-01-01T00:30:00.1234567Z").microsecond == 123456
    assert parse_formatted("2020-12-31-08:00", "yyyy-MM-ddzzz") == datetime(
        2020, 12, 31, 8, tzinfo=UTC
    )
    assert format_entra(datetime(2021, 1, 1, 0, 5, tzinfo=UTC)) == "1/1/2021 12:05:00 AM"
    assert format_entra(datetime(2021, 1, 1, 12, 5, tzinfo=UTC)) == "1/1/2021 12:05:00 PM"
    shifted = datetime(2021, 1, 1, 12, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    assert format_entra(shifted) == "1/1/2021 12:00:00 PM"


@pytest.mark.parametrize("text", ["", "2021-13-01", "31/12/2021", "13/1/2021 1:00:00 PM", "x"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_format_escapes_and_quotes() -> None:
    moment = datetime(2021, 8, 24, 9, 7, 3, tzinfo=UTC)
    assert format_with(moment, "'Day' d \\a\\t H\"h\"") == "Day 24 at 9h"
    assert format_with(moment, "hh:mm t") == "09:07 A"
