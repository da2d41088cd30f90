"""Business hours in the site's own zone, with DST and holidays; pure, any clock."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from chalicelib.hours import Schedule, ScheduleError

PARIS = ZoneInfo("Europe/Paris")
BANK = {
    "timezone": "Europe/Paris",
    "week": {d: [["09:00", "12:30"], ["13:30", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
    | {"sat": [["09:00", "12:30"]]},
    "closures": [{"date": "2026-12-25", "note": "Christmas"}, {"date": "2026-12-26"}],
}


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def test_saturday_afternoon_is_closed_and_back_monday_morning():
    bank = Schedule.from_dict(BANK)
    saturday_3pm = paris(2026, 11, 28, 15, 0)
    assert not bank.is_open(saturday_3pm)
    assert bank.next_open(saturday_3pm) == paris(2026, 11, 30, 9, 0)
    assert bank.is_open(paris(2026, 11, 28, 12, 29)) and not bank.is_open(paris(2026, 11, 28, 12, 30))
    assert bank.next_change(paris(2026, 11, 28, 10, 0)) == paris(2026, 11, 28, 12, 30)
    # lunch break: closed between ranges, open again at 13:30
    assert bank.next_open(paris(2026, 11, 27, 12, 45)) == paris(2026, 11, 27, 13, 30)


def test_holidays_close_the_whole_day():
    bank = Schedule.from_dict(BANK)
    assert not bank.is_open(paris(2026, 12, 25, 10, 0))  # a Friday, but Christmas
    # the 26th is a Saturday and a closure; Sunday closed; back on Monday 28th
    assert bank.next_open(paris(2026, 12, 24, 19, 0)) == paris(2026, 12, 28, 9, 0)
    assert bank.to_dict()["closures"][0] == {"date": "2026-12-25", "note": "Christmas"}


def test_daylight_saving_changes_keep_wall_clock_openings():
    bank = Schedule.from_dict(BANK)
    # Europe/Paris springs forward on Sunday 29 March 2026: Monday 09:00 is 07:00 UTC, not 08:00
    opening = bank.next_open(datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert opening == paris(2026, 3, 30, 9, 0)
    assert opening.astimezone(UTC).hour == 7
    # ...and falls back on Sunday 25 October 2026: Monday 09:00 is 08:00 UTC
    assert bank.next_open(datetime(2026, 10, 24, 12, 0, tzinfo=UTC)).astimezone(UTC).hour == 8
    # the same UTC instant is open in winter and closed in summer (08:30 UTC = 09:30 / 10:30)
    assert bank.is_open(datetime(2026, 1, 5, 8, 30, tzinfo=UTC))
    assert bank.is_open(datetime(2026, 7, 6, 7, 30, tzinfo=UTC))
    assert not bank.is_open(datetime(2026, 1, 5, 7, 30, tzinfo=UTC))


def test_midnight_ranges_join_across_days():
    night = Schedule.from_dict({"timezone": "America/New_York",
                                "week": {"fri": [["18:00", "24:00"]], "sat": [["00:00", "02:00"]]}})
    ny = ZoneInfo("America/New_York")
    assert night.is_open(datetime(2026, 11, 27, 23, 59, tzinfo=ny))
    assert night.is_open(datetime(2026, 11, 28, 1, 0, tzinfo=ny))
    assert night.next_change(datetime(2026, 11, 27, 20, 0, tzinfo=ny)) == datetime(2026, 11, 28, 2, 0,
                                                                                   tzinfo=ny)


def test_no_schedule_means_always_open():
    always = Schedule.open_always()
    assert always.is_open(datetime(2026, 11, 28, 3, 0, tzinfo=UTC))
    assert always.next_change(datetime(2026, 11, 28, 3, 0, tzinfo=UTC)) is None


@pytest.mark.parametrize(("doc", "fragment"), [
    ({"timezone": "Mars/Olympus", "week": {}}, "timezone"),
    ({"timezone": "UTC", "week": {"mon": [["9:00", "17:00"]]}}, "week.mon"),
    ({"timezone": "UTC", "week": {"mon": [["17:00", "09:00"]]}}, "ends before it starts"),
    ({"timezone": "UTC", "week": {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}}, "overlap"),
    ({"timezone": "UTC", "week": {"funday": []}}, "week"),
    ({"timezone": "UTC", "closures": [{"date": "2026-02-30"}]}, "closures"),
    ("09:00-17:00", "JSON object"),
])
def test_bad_schedules_are_refused_with_the_field_named(doc, fragment):
    with pytest.raises(ScheduleError, match=fragment):
        Schedule.from_dict(doc)
