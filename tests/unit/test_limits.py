"""Rate limits' arithmetic without the stack: fixed windows aligned to the epoch, the
``retry_after`` hint, and the per-container counts that refuse a flood before the table."""

from __future__ import annotations

import pytest

from chalicelib.limits import LocalWindows, counter_key, retry_after
from tests.support.clock import Clock

HOUR = 3600
START = 1_800_000_000_000  # a multiple of an hour in ms: a window starts here


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch, START)


def test_a_counter_key_names_the_window_the_clock_is_in(clock):
    first = counter_key("offline-ip#x", HOUR)
    assert first == f"RATE#offline-ip#x#{START // (HOUR * 1000)}"
    clock.advance(HOUR - 0.001)
    assert counter_key("offline-ip#x", HOUR) == first
    clock.advance(0.001)
    assert counter_key("offline-ip#x", HOUR) != first
    assert counter_key("offline-ip#x", 60) != counter_key("offline-ip#x", HOUR)


def test_retry_after_is_the_rest_of_the_window_in_whole_seconds_at_least_one(clock):
    assert retry_after(HOUR) == HOUR
    clock.now = START + 1
    assert retry_after(HOUR) == HOUR  # 3599.999 s rounds up
    clock.now = START + (HOUR - 2) * 1000 + 500
    assert retry_after(HOUR) == 2
    clock.now = START + HOUR * 1000 - 1
    assert retry_after(HOUR) == 1  # the last millisecond still asks for a second
    assert retry_after(10) == 1
    clock.now = START + HOUR * 1000
    assert retry_after(HOUR) == HOUR  # the next window


def test_a_local_window_allows_the_limit_then_refuses():
    windows = LocalWindows()
    taken = [windows.take("conn1", "change", 7, 3) for _ in range(5)]
    assert taken == [(True, False), (True, True), (True, True), (False, True), (False, True)]


def test_a_new_window_starts_counting_again_and_classes_and_connections_count_apart():
    windows = LocalWindows()
    for _ in range(2):
        windows.take("conn1", "change", 7, 2)
    assert windows.take("conn1", "change", 7, 2) == (False, True)
    assert windows.take("conn1", "query", 7, 2) == (True, False)
    assert windows.take("conn2", "change", 7, 2) == (True, False)
    assert windows.take("conn1", "change", 8, 2) == (True, False)


def test_the_least_recently_used_connections_are_forgotten_first():
    windows = LocalWindows(capacity=2)
    windows.take("old", "change", 1, 5)
    windows.take("mid", "change", 1, 5)
    windows.take("old", "change", 1, 5)  # used again: now "mid" is the least recent
    windows.take("new", "change", 1, 5)
    assert windows.take("old", "change", 1, 5) == (True, True)
    assert windows.take("mid", "change", 1, 5) == (True, False)  # forgotten: counted afresh
    windows.clear()
    assert windows.take("old", "change", 1, 5) == (True, False)
