"""Fixed-window rate limits kept in DynamoDB: one conditional counter update per check."""

from __future__ import annotations

from datetime import timedelta

from chalicelib import clock
from chalicelib.hours import from_ms
from chalicelib.models import META, CounterModel, update_or_old


def counter_key(key: str, window_seconds: int) -> str:
    """The counter item of ``key`` in the current window (windows are fixed, aligned to the epoch)."""
    return f"RATE#{key}#{clock.now_ms() // (window_seconds * 1000)}"


def retry_after(window_seconds: int) -> int:
    """Whole seconds until the current window of ``window_seconds`` ends (at least 1): the
    ``retry_after`` hint of a refusal, and the HTTP ``Retry-After`` header."""
    window_ms = window_seconds * 1000
    return max(1, -(-(window_ms - clock.now_ms() % window_ms) // 1000))


def allow(key: str, limit: int, window_seconds: int) -> bool:
    """Count one event for ``key``; False (and nothing counted) once the window is full."""
    C = CounterModel
    ok, _ = update_or_old(
        C, counter_key(key, window_seconds),
        [C.n.add(1), C.ttl.set(from_ms(clock.now_ms()) + timedelta(seconds=2 * window_seconds))],
        C.n.does_not_exist() | (C.n < limit))
    return ok


def forget(key: str, window_seconds: int) -> None:
    """Delete ``key``'s counters of this window and the one before (all that can still be
    live): for erasing a visitor, whose id is part of their keys."""
    window = clock.now_ms() // (window_seconds * 1000)
    for n in (window, window - 1):
        CounterModel(f"RATE#{key}#{n}", META).delete()


def take(key: str, limit: int, window_seconds: int) -> int | None:
    """Like ``allow``, but the count after this event (so the caller sees the one that filled
    the window), or None when the window was already full and nothing was counted."""
    C = CounterModel
    ok, item = update_or_old(
        C, counter_key(key, window_seconds),
        [C.n.add(1), C.ttl.set(from_ms(clock.now_ms()) + timedelta(seconds=2 * window_seconds))],
        C.n.does_not_exist() | (C.n < limit))
    return int(item.n) if ok and item is not None else None


def give_back(key: str, window_seconds: int) -> None:
    """Undo one ``take`` of this window (an attempt that turned out not to count, such as a
    correct password)."""
    C = CounterModel
    update_or_old(C, counter_key(key, window_seconds), [C.n.add(-1)], C.n > 0)
