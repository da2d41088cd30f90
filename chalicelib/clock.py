"""The one clock the domain reads, so tests can move time instead of sleeping."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the epoch (the unit every stored timestamp uses)."""
    return int(time.time() * 1000)
