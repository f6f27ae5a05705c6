"""Dify's `time` tools: the current time in a time zone, the weekday of a date, converting a
time between zones, and local times to and from Unix timestamps."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .base import BuiltinTool, ToolContext, ToolError, ToolParameter, ToolProvider, ToolResult

PROVIDER = ToolProvider(
    id="time",
    label="CurrentTime",
    description="Current time, weekdays, time zones and timestamps.",
    icon="🕒",
)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_FORMAT_CHARS = 200


def zone(name: str) -> ZoneInfo:
    """The time zone of an IANA name (`UTC`, `Asia/Shanghai` …), or ToolError."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"“{name}” is not a time zone: give an IANA name such as UTC or Europe/Paris."
        ) from None


def parse_time(text: str, what: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), TIME_FORMAT)  # noqa: DTZ007 - zone set by caller
    except ValueError:
        raise ToolError(f"{what} must look like 2024-05-01 13:45:00, not “{text}”.") from None


def _zone_parameter(name: str, description: str, *, default: str | None = "UTC", form="llm"):
    return ToolParameter(
        name, description=description, default=default, required=default is None, form=form
    )


class CurrentTime(BuiltinTool):
    """The current time in a time zone, formatted with strftime."""

    provider = PROVIDER
    name = "current_time"
    label = "Current Time"
    description = "Get the current date and time."
    parameters = (
        ToolParameter(
            "format",
            description="strftime format of the time",
            default=TIME_FORMAT,
            form="form",
        ),
        _zone_parameter("timezone", "IANA time zone", form="form"),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        pattern = values["format"]
        if len(pattern) > MAX_FORMAT_CHARS:
            raise ToolError(f"The time format is longer than {MAX_FORMAT_CHARS} characters.")
        now = datetime.now(zone(values["timezone"]))
        try:
            return ToolResult(text=now.strftime(pattern))
        except ValueError as exc:
            raise ToolError(f"“{pattern}” is not a strftime format: {exc}") from None


class Weekday(BuiltinTool):
    """Which day of the week a date falls on."""

    provider = PROVIDER
    name = "weekday"
    label = "Weekday Calculator"
    description = "Tell the day of the week of a date (year, month and day)."
    parameters = (
        ToolParameter("year", "integer", "year, e.g. 2024", required=True, minimum=1, maximum=9999),
        ToolParameter("month", "integer", "month, 1 to 12", required=True, minimum=1, maximum=12),
        ToolParameter("day", "integer", "day of the month", required=True, minimum=1, maximum=31),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        year, month, day = values["year"], values["month"], values["day"]
        if day > calendar.monthrange(year, month)[1]:
            raise ToolError(f"{year}-{month:02d} has no day {day}.")
        weekday = calendar.day_name[calendar.weekday(year, month, day)]
        return ToolResult(text=f"{calendar.month_name[month]} {day}, {year} is {weekday}.")


class TimezoneConversion(BuiltinTool):
    """A wall-clock time in one zone as the same instant in another."""

    provider = PROVIDER
    name = "timezone_conversion"
    label = "Timezone Conversion"
    description = (
        "Convert a time (format 2024-05-01 13:45:00) from one time zone to another "
        "(IANA names such as Asia/Shanghai)."
    )
    parameters = (
        ToolParameter("current_time", description="the time to convert", required=True),
        _zone_parameter("current_timezone", "the zone the time is in", default=None),
        _zone_parameter("target_timezone", "the zone to convert to", default=None),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        source, target = zone(values["current_timezone"]), zone(values["target_timezone"])
        moment = parse_time(values["current_time"], "The time").replace(tzinfo=source)
        return ToolResult(text=moment.astimezone(target).strftime(TIME_FORMAT))


class LocaltimeToTimestamp(BuiltinTool):
    """A local time as a Unix timestamp."""

    provider = PROVIDER
    name = "localtime_to_timestamp"
    label = "Local Time to Timestamp"
    description = "Turn a local time (format 2024-05-01 13:45:00) into a Unix timestamp."
    parameters = (
        ToolParameter("localtime", description="the local time", required=True),
        _zone_parameter("timezone", "IANA time zone of the local time"),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        moment = parse_time(values["localtime"], "The local time")
        stamp = int(moment.replace(tzinfo=zone(values["timezone"])).timestamp())
        return ToolResult(text=str(stamp))


class TimestampToLocaltime(BuiltinTool):
    """A Unix timestamp as a local time."""

    provider = PROVIDER
    name = "timestamp_to_localtime"
    label = "Timestamp to Local Time"
    description = "Turn a Unix timestamp (seconds) into a local time."
    parameters = (
        ToolParameter("timestamp", "integer", "Unix timestamp in seconds", required=True),
        _zone_parameter("timezone", "IANA time zone to show the time in"),
    )

    async def run(self, context: ToolContext, values: dict[str, Any]) -> ToolResult:
        try:
            moment = datetime.fromtimestamp(values["timestamp"], UTC)
        except (OverflowError, OSError, ValueError):
            raise ToolError(f"{values['timestamp']} is not a timestamp Weft can show.") from None
        return ToolResult(text=moment.astimezone(zone(values["timezone"])).strftime(TIME_FORMAT))


TOOLS = (CurrentTime, Weekday, TimezoneConversion, LocaltimeToTimestamp, TimestampToLocaltime)
