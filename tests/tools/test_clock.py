"""The clock tools: current time and conversions, daylight saving time, and errors that say how to fix."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agentkit import ToolCall, ToolRegistry
from agentkit.tools.clock import ClockError, clock_tools, convert_time, current_time


def test_current_time_is_now_in_the_timezone():
    before = datetime.now(timezone.utc).replace(microsecond=0)
    text = current_time(timezone="Asia/Tokyo")
    after = datetime.now(timezone.utc)
    moment = datetime.fromisoformat(text.split(" ")[0])
    assert moment.utcoffset() == timedelta(hours=9)  # Japan has no daylight saving time
    assert before <= moment <= after
    assert text.endswith(", Asia/Tokyo, JST)")
    assert current_time().split(" ")[0].endswith("+00:00")


@pytest.mark.parametrize(
    ("time", "source", "target", "expected"),
    [
        pytest.param("2024-01-15T12:00", "Europe/Paris", "UTC", "2024-01-15T11:00:00+00:00 (Monday, UTC)", id="winter-cet"),
        pytest.param("2024-07-15T12:00", "Europe/Paris", "UTC", "2024-07-15T10:00:00+00:00 (Monday, UTC)", id="summer-cest"),
        # 10-31 March 2024: New York is on summer time, London not yet: 4 hours apart instead of 5.
        pytest.param(
            "2024-03-20T09:00", "America/New_York", "Europe/London", "2024-03-20T13:00:00+00:00 (Wednesday, Europe/London, GMT)",
            id="us-dst-before-europe",
        ),
        pytest.param("2024-04-02T09:00", "America/New_York", "Europe/London", "2024-04-02T14:00:00+01:00 (Tuesday, Europe/London, BST)", id="both-on-dst"),
        pytest.param("2024-12-31T23:30", "UTC", "Asia/Kolkata", "2025-01-01T05:00:00+05:30 (Wednesday, Asia/Kolkata, IST)", id="half-hour-offset-next-year"),
        pytest.param(
            "2024-06-01T10:00Z", "Asia/Tokyo", "America/Los_Angeles", "2024-06-01T03:00:00-07:00 (Saturday, America/Los_Angeles, PDT)",
            id="z-suffix-wins",
        ),
        pytest.param("2024-06-01 10:00:00+02:00", "UTC", "utc", "2024-06-01T08:00:00+00:00 (Saturday, UTC)", id="offset-wins-and-lowercase-utc"),
    ],
)
def test_conversions(time, source, target, expected):
    assert convert_time(time=time, from_timezone=source, to_timezone=target) == expected


def test_time_skipped_by_spring_forward_is_refused():
    with pytest.raises(ClockError, match="2024-03-31T02:30 does not exist in Europe/Paris: the clocks jump forward"):
        convert_time(time="2024-03-31T02:30", from_timezone="Europe/Paris")


def test_time_repeated_by_fall_back_is_converted_with_a_note():
    result = convert_time(time="2024-10-27T02:30", from_timezone="Europe/Paris")
    assert result.startswith("2024-10-27T00:30:00+00:00")  # the first 02:30, still on summer time
    assert "happens twice in Europe/Paris" in result and "the second is UTC+01:00 (CET)" in result


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        pytest.param("Paris", "Europe/Paris", id="city-only"),
        pytest.param("new york", "America/New_York", id="city-with-space"),
        pytest.param("Europe/Pariss", "Europe/Paris", id="typo"),
        pytest.param("PST", "America/Los_Angeles", id="abbreviation"),
    ],
)
def test_unknown_timezone_says_how_to_spell_one(name, suggestion):
    with pytest.raises(ClockError) as caught:
        current_time(timezone=name)
    message = str(caught.value)
    assert message.startswith(f"Unknown timezone {name!r}. Use an IANA name such as 'Europe/Paris'")
    assert message.endswith(f"Did you mean {suggestion!r}?")


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "/etc/localtime", "x" * 500, "Mars/Olympus_Mons"])
def test_malformed_or_hostile_timezones_are_refused(name):
    with pytest.raises(ClockError, match="Unknown timezone"):
        convert_time(time="2024-01-01T00:00", to_timezone=name)


def test_unreadable_time_asks_for_iso_8601():
    with pytest.raises(ClockError, match="Cannot read the time 'next Tuesday'. Write it in ISO 8601"):
        convert_time(time="next Tuesday", from_timezone="UTC", to_timezone="Europe/Paris")


def test_errors_come_back_as_error_observations():
    registry = ToolRegistry(clock_tools)
    assert registry.names == ["current_time", "convert_time"]
    refused = registry.run(ToolCall(id="1", name="current_time", arguments={"timezone": "Paris"}))
    assert refused.is_error and "Did you mean 'Europe/Paris'?" in refused.content
    ok = registry.run(ToolCall(id="2", name="convert_time", arguments={"time": "2024-07-01T09:00", "to_timezone": "Asia/Tokyo"}))
    assert not ok.is_error and ok.content.startswith("2024-07-01T18:00:00+09:00")

