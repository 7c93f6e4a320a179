"""Duration strings of the configuration: `30d`, `2w`, `1y`, `24h`, `90m`, `0d`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdwy])\s*$")


def parse_duration(text: str | int | timedelta, *, units: str = "smhdwy") -> timedelta:
    """Parse `<n><unit>`; `units` restricts which units are accepted. Raises ValueError."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int):
        raise ValueError(f"{text!r} has no unit: write for example {text}d")
    match = _PATTERN.match(str(text))
    if not match or match.group(2) not in units:
        allowed = ", ".join(f"<n>{u}" for u in units)
        raise ValueError(f"{text!r} is not a duration: use {allowed} (for example 30d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in "ywdhm":
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 / ISO 8601 time (`2026-11-24T02:00:00Z`, or a date); naive means UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use RFC 3339, for example 2026-11-24T02:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_option(text: str | None, option: str) -> datetime | None:
    """A time given as a command option or flow parameter, or None when not given; a bad one
    is a UsageError naming the option (exit status 2)."""
    from spectron_backup.errors import UsageError

    if not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
