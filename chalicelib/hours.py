"""Business hours: a site's weekly opening ranges and closure dates in its own time zone.

Pure functions of a schedule and an instant, so they are tested with any clock. Ranges are
wall-clock times in the site's IANA zone; ``zoneinfo`` turns them into instants, which is
what makes a "09:00" opening correct on both sides of a daylight-saving change. A range may
end at "24:00" (midnight at the end of the day).

JSON form (REST and admin command)::

    {"timezone": "Europe/Paris",
     "week": {"mon": [["09:00", "12:30"], ["13:30", "18:00"]], "sat": [["09:00", "12:30"]]},
     "closures": [{"date": "2026-12-25", "note": "Christmas"}]}

Days missing from ``week`` are closed. A site with no schedule is always open, so hours
only restrict a team that has set them.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")
MAX_RANGES_PER_DAY = 6
MAX_CLOSURES = 400
LOOKAHEAD_DAYS = 800  # closures are at most MAX_CLOSURES days, so an opening is always found


class ScheduleError(ValueError):
    """A schedule that cannot be accepted; the message says which part and why."""


def _minutes(text: str, where: str) -> int:
    if not isinstance(text, str) or not _CLOCK.match(text):
        raise ScheduleError(f"{where}: {text!r} is not a time like 09:00 (00:00 to 24:00).")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Schedule:
    """Opening hours of one site. ``week[d]`` holds (start, end) minutes after midnight."""

    tz: str = "UTC"
    week: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    closures: dict[date, str] = field(default_factory=dict)
    always_open: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @classmethod
    def open_always(cls) -> Schedule:
        return cls(always_open=True)

    @classmethod
    def from_dict(cls, doc: Any) -> Schedule:
        """Validate and build; every refusal names the offending field."""
        if not isinstance(doc, dict):
            raise ScheduleError("A schedule is a JSON object with timezone, week and closures.")
        tz = doc.get("timezone")
        try:
            if not isinstance(tz, str) or not tz:
                raise ZoneInfoNotFoundError
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"timezone: {tz!r} is not an IANA time zone like Europe/Paris.") from None
        week_doc = doc.get("week", {})
        if not isinstance(week_doc, dict) or set(week_doc) - set(DAYS):
            raise ScheduleError(f"week: an object with keys among {', '.join(DAYS)}.")
        week: dict[int, tuple[tuple[int, int], ...]] = {}
        for day, ranges in week_doc.items():
            if not isinstance(ranges, list) or len(ranges) > MAX_RANGES_PER_DAY:
                raise ScheduleError(f"week.{day}: a list of at most {MAX_RANGES_PER_DAY} [start, end].")
            parsed = []
            for item in ranges:
                if not isinstance(item, list) or len(item) != 2:
                    raise ScheduleError(f"week.{day}: each range is [\"HH:MM\", \"HH:MM\"].")
                start, end = _minutes(item[0], f"week.{day}"), _minutes(item[1], f"week.{day}")
                if start >= end:
                    raise ScheduleError(f"week.{day}: {item[0]} to {item[1]} ends before it starts.")
                parsed.append((start, end))
            parsed.sort()
            for (_, end), (start, _) in itertools.pairwise(parsed):
                if start < end:
                    raise ScheduleError(f"week.{day}: ranges overlap.")
            if parsed:
                week[DAYS.index(day)] = tuple(parsed)
        closures_doc = doc.get("closures", [])
        if not isinstance(closures_doc, list) or len(closures_doc) > MAX_CLOSURES:
            raise ScheduleError(f"closures: a list of at most {MAX_CLOSURES} dates.")
        closures: dict[date, str] = {}
        for item in closures_doc:
            try:
                day = date.fromisoformat(item["date"])
            except (TypeError, KeyError, ValueError):
                raise ScheduleError('closures: each is {"date": "YYYY-MM-DD", "note": "..."}.') from None
            note = item.get("note") or ""
            if not isinstance(note, str) or len(note) > 200:
                raise ScheduleError("closures: a note is text of at most 200 characters.")
            closures[day] = note
        return cls(tz=tz, week=week, closures=closures)

    def to_dict(self) -> dict[str, Any]:
        if self.always_open:
            return {"timezone": None, "week": None, "closures": [], "always_open": True}
        return {
            "timezone": self.tz,
            "week": {DAYS[d]: [[_clock(s), _clock(e)] for s, e in r] for d, r in sorted(self.week.items())},
            "closures": [{"date": d.isoformat(), "note": n} for d, n in sorted(self.closures.items())],
        }

    def _ranges_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The day's opening ranges as aware instants (empty on a closure date)."""
        if day in self.closures:
            return []
        zone = self.zone
        out = []
        for start, end in self.week.get(day.weekday(), ()):
            begin = _wall(day, start, zone)
            finish = _wall(day, end, zone) if end < 24 * 60 else _wall(day + timedelta(days=1), 0, zone)
            if finish > begin:
                out.append((begin, finish))
        return out

    def is_open(self, at: datetime) -> bool:
        if self.always_open:
            return True
        local = at.astimezone(self.zone).date()
        return any(b <= at < e for day in (local - timedelta(days=1), local)
                   for b, e in self._ranges_on(day))

    def next_open(self, at: datetime) -> datetime | None:
        """``at`` itself when open, else the next opening instant (None: never opens)."""
        if self.is_open(at):
            return at
        local = at.astimezone(self.zone).date()
        for offset in range(LOOKAHEAD_DAYS):
            for begin, _ in self._ranges_on(local + timedelta(days=offset)):
                if begin > at:
                    return begin
        return None

    def next_change(self, at: datetime) -> datetime | None:
        """When open/closed next flips: the end of the current range, or the next opening."""
        if self.always_open:
            return None
        if not self.is_open(at):
            return self.next_open(at)
        local = at.astimezone(self.zone).date()
        end = None
        for day in (local - timedelta(days=1), local):
            for begin, finish in self._ranges_on(day):
                if begin <= at < finish:
                    end = finish
        # a range ending exactly when the next begins (e.g. 24:00 then 00:00) stays open
        while end is not None and self.is_open(end):
            later = self.next_change(end)
            if later is None or later <= end:
                break
            end = later
        return end


def _wall(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """A wall-clock time on ``day`` as an instant. zoneinfo resolves the rare time that a DST
    jump skips (02:30 on a spring-forward night) with the pre-jump offset, i.e. shortly
    after the jump, and an hour that repeats in autumn to its first occurrence."""
    return datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=zone)


def to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
