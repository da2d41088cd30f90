"""The one fake clock: the app's ``chalicelib.clock.now_ms`` frozen and moved by the test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


class Clock:
    """The app's clock (chalicelib.clock), frozen at ``start`` and moved by the test.

    Everything the app times (waits, windows, schedules, token expiry on the server side) reads
    ``clock.now_ms``, so freezing that one function is enough; ``start=None`` freezes it at the
    real time now (a test that only needs time to stand still, or to jump forward)."""

    def __init__(self, monkeypatch: Any, start: int | None = None) -> None:
        from chalicelib import clock

        self.now = clock.now_ms() if start is None else start
        monkeypatch.setattr(clock, "now_ms", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


# Saturday 5 December 2026, 15:00 UTC: a Monday-to-Friday site is closed.
SATURDAY = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
WEEKDAYS = {"timezone": "UTC", "week": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}
