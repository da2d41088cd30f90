"""Fixed-window rate limits kept in DynamoDB: one conditional counter update per check."""

from __future__ import annotations

from datetime import timedelta

from chalicelib import clock
from chalicelib.hours import from_ms
from chalicelib.models import CounterModel, update_or_old


def allow(key: str, limit: int, window_seconds: int) -> bool:
    """Count one event for ``key``; False (and nothing counted) once the window is full."""
    window = clock.now_ms() // (window_seconds * 1000)
    C = CounterModel
    ok, _ = update_or_old(
        C, f"RATE#{key}#{window}",
        [C.n.add(1), C.ttl.set(from_ms(clock.now_ms()) + timedelta(seconds=2 * window_seconds))],
        C.n.does_not_exist() | (C.n < limit))
    return ok
