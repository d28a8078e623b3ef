"""Clock tools: the current time in a timezone, and a time converted between timezones.

Timezones are IANA names read with `zoneinfo` (e.g. 'Europe/Paris', 'America/New_York', 'UTC'); an
unknown name is an error that suggests close spellings. Limits: names of at most MAX_TIMEZONE_CHARS
characters, times of at most MAX_TIME_CHARS characters in ISO 8601. Daylight saving time is handled:
a local time that does not exist (clocks jump forward) is refused, and one that happens twice
(clocks fall back) is converted as its first occurrence, with a note saying so.

Example:
    >>> from agentkit.tools.clock import convert_time
    >>> convert_time(time="2024-07-01T09:00", from_timezone="America/New_York", to_timezone="Europe/Paris")
    '2024-07-01T15:00:00+02:00 (Monday, Europe/Paris, CEST)'
    >>> convert_time(time="2024-01-15T09:00", from_timezone="America/New_York", to_timezone="UTC")
    '2024-01-15T14:00:00+00:00 (Monday, UTC)'
"""

from __future__ import annotations

import difflib
import zoneinfo
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from agentkit.tool import tool

MAX_TIMEZONE_CHARS = 64
MAX_TIME_CHARS = 64
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")  # not locale-dependent
# Abbreviations models often send: suggested in the error (an abbreviation is not a timezone).
_ABBREVIATIONS = {
    "PST": "America/Los_Angeles", "PDT": "America/Los_Angeles", "MDT": "America/Denver",
    "CST": "America/Chicago", "CDT": "America/Chicago", "EDT": "America/New_York",
    "BST": "Europe/London", "CEST": "Europe/Paris", "JST": "Asia/Tokyo", "IST": "Asia/Kolkata",
    "AEST": "Australia/Sydney", "AEDT": "Australia/Sydney",
}


class ClockError(ValueError):
    """An unknown timezone or an unreadable time; the message says how to write it."""


def load_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The timezone called `name` (an IANA name; 'utc' and 'z' in any case mean UTC).

    Example:
        >>> load_timezone("Europe/Paris").key
        'Europe/Paris'
        >>> load_timezone("Paris")  # doctest: +NORMALIZE_WHITESPACE
        Traceback (most recent call last):
        ...
        agentkit.tools.clock.ClockError: Unknown timezone 'Paris'. Use an IANA name such as 'Europe/Paris', 'America/New_York' or 'UTC'.
        Did you mean 'Europe/Paris'?
    """
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        text = "UTC"
    try:
        if not text or len(text) > MAX_TIMEZONE_CHARS:
            raise ValueError(text)
        return zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        shown = name if len(name) <= MAX_TIMEZONE_CHARS else name[:MAX_TIMEZONE_CHARS] + "..."
        hint = _suggest(text[:MAX_TIMEZONE_CHARS])
        raise ClockError(
            f"Unknown timezone {shown!r}. Use an IANA name such as 'Europe/Paris', 'America/New_York' or 'UTC'."
            + (f" Did you mean {hint!r}?" if hint else "")
        ) from None


def _suggest(text: str) -> str | None:
    if text.upper() in _ABBREVIATIONS:
        return _ABBREVIATIONS[text.upper()]
    names = sorted(zoneinfo.available_timezones())
    by_city = {zone.rsplit("/", 1)[-1].lower(): zone for zone in names}
    key = text.replace(" ", "_").lower()
    if key in by_city:
        return by_city[key]
    close = difflib.get_close_matches(key, list(by_city), n=1, cutoff=0.8)
    if close:
        return by_city[close[0]]
    close = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    return close[0] if close else None


def _describe(moment: datetime) -> str:
    """'2024-07-01T14:00:00+02:00 (Monday, Europe/Paris, CEST)'."""
    zone, abbreviation = getattr(moment.tzinfo, "key", None), moment.tzname()
    names = abbreviation if zone in (None, abbreviation) else f"{zone}, {abbreviation}"
    return f"{moment.isoformat(timespec='seconds')} ({_WEEKDAYS[moment.weekday()]}, {names})"


@tool(examples=[{"timezone": "Europe/Paris"}])
def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time in a timezone, in ISO 8601 with the UTC offset.

    Args:
        timezone: an IANA timezone name such as 'Europe/Paris', 'America/New_York' or 'UTC'.
    """
    return _describe(datetime.now(load_timezone(timezone)))


@tool(examples=[{"time": "2024-07-01T09:00", "from_timezone": "America/New_York", "to_timezone": "Europe/Paris"}])
def convert_time(time: str, from_timezone: str = "UTC", to_timezone: str = "UTC") -> str:
    """Convert a date and time from one timezone to another (daylight saving time included).

    Args:
        time: ISO 8601 date and time, e.g. "2024-07-01T09:00" or "2024-07-01 09:00". An explicit
            offset (e.g. "+02:00" or "Z") takes precedence over from_timezone.
        from_timezone: the IANA timezone `time` is in, e.g. 'America/New_York'.
        to_timezone: the IANA timezone to convert to, e.g. 'Europe/Paris'.
    """
    source, target = load_timezone(from_timezone), load_timezone(to_timezone)
    moment, note = _parse(time, source)
    return _describe(moment.astimezone(target)) + note


def _parse(text: str, zone: zoneinfo.ZoneInfo) -> tuple[datetime, str]:
    """`text` as an aware datetime (in `zone` unless it has an offset) and a note about DST, if any."""
    cleaned = text.strip()
    if cleaned[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat does not read "Z"
        cleaned = cleaned[:-1] + "+00:00"
    try:
        if len(cleaned) > MAX_TIME_CHARS:
            raise ValueError(cleaned)
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ClockError(
            f"Cannot read the time {text[:MAX_TIME_CHARS]!r}. Write it in ISO 8601, e.g. '2024-07-01T09:00' "
            "or '2024-07-01T09:00:00+02:00'."
        ) from None
    if moment.tzinfo is not None:
        return moment, ""
    local = moment.replace(tzinfo=zone)
    round_trip = local.astimezone(dt_timezone.utc).astimezone(zone)
    if round_trip.replace(tzinfo=None) != moment:
        raise ClockError(
            f"{moment.isoformat(timespec='minutes')} does not exist in {zone.key}: the clocks jump forward "
            "then (daylight saving time). Use a time before or after the gap."
        )
    later = moment.replace(tzinfo=zone, fold=1)
    if later.utcoffset() != local.utcoffset():
        return local, (
            f" [note: {moment.isoformat(timespec='minutes')} happens twice in {zone.key} (clocks fall back); "
            f"converted the first, {_offset(local)}; the second is {_offset(later)}]"
        )
    return local, ""


def _offset(moment: datetime) -> str:
    minutes = int((moment.utcoffset() or timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d} ({moment.tzname()})"


clock_tools = [current_time, convert_time]
