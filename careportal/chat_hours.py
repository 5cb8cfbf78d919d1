"""Live chat business hours (Admin Portal → Feature Settings → Chat business hours) and the automatic reply a
patient gets outside them, saying when the team will answer (DESIGN.md: Live chat).

The hours are evaluated in the setting's own ``time_zone`` when it names a valid IANA zone, else in the
organisation's ``TIME_ZONE``; the reply gives the next opening time in the patient's own time zone.
"""

import datetime as dt
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils.text import capfirst

from adminportal.models import FeatureSetting

logger = logging.getLogger(__name__)

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
HH_MM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _parse_time(value) -> dt.time | None:
    match = HH_MM.match(value) if isinstance(value, str) else None
    return dt.time(int(match[1]), int(match[2])) if match else None


def _time_label(value: dt.time) -> str:
    return f"{value:%I:%M %p}".lstrip("0")


@dataclass(frozen=True)
class BusinessHours:
    """When the care team answers live chat: the same hours on each listed weekday (Monday = 0), in one time zone.

    Switched off in the Admin Portal, chat is treated as always answered (no automatic replies).
    """

    is_enabled: bool
    days: frozenset[int]
    start: dt.time
    end: dt.time
    time_zone: ZoneInfo

    def _at(self, day: dt.date, clock: dt.time) -> dt.datetime:
        return dt.datetime.combine(day, clock, tzinfo=self.time_zone)

    def is_open(self, at: dt.datetime) -> bool:
        if not self.is_enabled:
            return True
        local = at.astimezone(self.time_zone)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, at: dt.datetime) -> dt.datetime | None:
        """The next time the team opens after ``at`` (None when no day is listed)."""
        today = at.astimezone(self.time_zone).date()
        for offset in range(8):
            day = today + dt.timedelta(days=offset)
            if day.weekday() in self.days and self._at(day, self.start) > at:
                return self._at(day, self.start)
        return None

    def closed_since(self, at: dt.datetime) -> dt.datetime:
        """When the current closed period began: the last closing time at or before ``at`` (a week back at most)."""
        today = at.astimezone(self.time_zone).date()
        for offset in range(8):
            day = today - dt.timedelta(days=offset)
            if day.weekday() in self.days and self._at(day, self.end) <= at:
                return self._at(day, self.end)
        return at - dt.timedelta(days=7)

    @property
    def summary(self) -> str:
        """The hours as the chat page shows them: "Monday–Friday, 8:00 AM–6:00 PM (America/New_York)"."""
        if not self.is_enabled:
            return ""
        days = sorted(self.days)
        if not days:
            return "The team is not answering live chat at the moment."
        if len(days) == len(DAY_NAMES):
            day_text = "Every day"
        elif days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
            day_text = f"{DAY_NAMES[days[0]]}–{DAY_NAMES[days[-1]]}"
        else:
            day_text = ", ".join(DAY_NAMES[d] for d in days)
        return f"{day_text}, {_time_label(self.start)}–{_time_label(self.end)} ({self.time_zone.key})"


DEFAULT_HOURS = FeatureSetting.DEFAULTS[FeatureSetting.Key.CHAT_BUSINESS_HOURS][1]


def organisation_time_zone(value: dict) -> ZoneInfo:
    """The setting's own ``time_zone`` (an IANA name) when it has a valid one, else the ``TIME_ZONE`` setting."""
    for name in (value.get("time_zone"), settings.TIME_ZONE, "UTC"):
        if isinstance(name, str) and name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                logger.warning("unknown time zone in chat business hours", extra={"time_zone": name})
    return ZoneInfo("UTC")


def business_hours() -> BusinessHours:
    """Admin Portal → Feature Settings → Chat business hours, e.g. ``{"days": [0, 1, 2, 3, 4], "start": "08:00",
    "end": "18:00", "time_zone": "America/Chicago"}``. A malformed value falls back to the default hours."""
    key = FeatureSetting.Key.CHAT_BUSINESS_HOURS
    value = FeatureSetting.value_of(key)
    value = value if isinstance(value, dict) else {}
    days, start, end = value.get("days"), _parse_time(value.get("start")), _parse_time(value.get("end"))
    valid_days = isinstance(days, list) and all(_is_day(d) for d in days)
    if not (valid_days and start and end and start < end):
        logger.warning("malformed chat business hours; using the default", extra={"value": value})
        days, start, end = (
            DEFAULT_HOURS["days"],
            _parse_time(DEFAULT_HOURS["start"]),
            _parse_time(DEFAULT_HOURS["end"]),
        )
    return BusinessHours(
        is_enabled=FeatureSetting.is_on(key),
        days=frozenset(days),
        start=start,
        end=end,
        time_zone=organisation_time_zone(value),
    )


def _is_day(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6


def out_of_hours_text(hours: BusinessHours, at: dt.datetime, patient_time_zone: str) -> str:
    """The automatic reply: thanks, when the team will answer (in the patient's time zone), and what to do in an
    emergency."""
    team = capfirst(settings.CARE_TEAM_NAME)
    opening = hours.next_opening(at)
    if opening is None:
        when = "will answer as soon as they can"
    else:
        try:
            zone = ZoneInfo(patient_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = hours.time_zone
        local, today = opening.astimezone(zone), at.astimezone(zone).date()
        if local.date() == today:
            day = "today"
        elif local.date() == today + dt.timedelta(days=1):
            day = "tomorrow"
        else:
            day = f"on {local:%A, %B} {local.day}"
        when = f"will be back {day} at {_time_label(local.time())} ({local.tzname()}) to answer it"
    return (
        f"Thank you for your message. {team} is away right now and {when}. If this is an emergency, call 911."
    )
