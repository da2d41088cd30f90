"""Rate limits: fixed windows kept in DynamoDB (one conditional counter update per check),
and every connection's frame budget per action class (below)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import timedelta

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib import clock
from chalicelib.hours import from_ms
from chalicelib.protocol import (
    ACTION_CLASS,
    BUDGETS,
    FORBIDDEN,
    RATE_LIMITED,
    Budget,
    Frame,
    ProtocolError,
)
from chalicelib.store import (
    META,
    ConnectionModel,
    CounterModel,
    connection_key,
    keys,
    update_into_maps,
    update_or_old,
)


def counter_key(key: str, window_seconds: int) -> str:
    """The counter item of ``key`` in the current window (windows are fixed, aligned to the epoch)."""
    return keys.rate_key(key, clock.now_ms() // (window_seconds * 1000))


def retry_after(window_seconds: int) -> int:
    """Whole seconds until the current window of ``window_seconds`` ends (at least 1): the
    ``retry_after`` hint of a refusal, and the HTTP ``Retry-After`` header."""
    window_ms = window_seconds * 1000
    return max(1, -(-(window_ms - clock.now_ms() % window_ms) // 1000))


def allow(key: str, limit: int, window_seconds: int, cost: int = 1) -> bool:
    """Count ``cost`` events for ``key``; False (and nothing counted) when they would not fit
    in what is left of the window."""
    if cost > limit:
        return False
    C = CounterModel
    ok, _ = update_or_old(
        C, counter_key(key, window_seconds),
        [C.hits.add(cost), C.ttl.set(from_ms(clock.now_ms()) + timedelta(seconds=2 * window_seconds))],
        C.hits.does_not_exist() | (C.hits <= limit - cost))
    return ok


def forget(key: str, window_seconds: int) -> None:
    """Delete ``key``'s counters of this window and the one before (all that can still be
    live): for erasing a visitor, whose id is part of their keys."""
    window = clock.now_ms() // (window_seconds * 1000)
    for n in (window, window - 1):
        CounterModel(keys.rate_key(key, n), META).delete()


# ---------------------------------------------------------------- frame budgets per connection
#
# Every action but ``send`` is counted against its class's budget (protocol.BUDGETS) before
# its handler runs. Two counters, in this order:
#
# 1. ``LOCAL``: fixed windows in this container's memory (bounded, least recently used
#    connections forgotten first). It costs nothing and refuses a flood that keeps landing on
#    a warm container without touching the table. On its own it would not hold: API Gateway
#    invokes Lambda once per frame, a flood runs concurrently, and each concurrent invocation
#    may get its own container with its own memory.
# 2. The same windows on the connection's own item (``rw``/``rn`` maps on ``CONN#<id>``),
#    counted by a conditional UpdateItem that returns the item (``ALL_NEW``). Most actions read
#    that item anyway to learn who is calling, so the counted write *replaces* that read
#    (``presence.known``): no extra request. A fixed window cannot be reset and counted in
#    one conditional expression, so the first frame of a window in a container makes two
#    requests (open the window, or learn it is already open and count); this container's
#    memory says which to try first, so a steady stream and a flood cost one each.
#
# Refusals change nothing and answer ``rate_limited`` with ``retry_after``: the seconds left
# in the window.


class LocalWindows:
    """Fixed-window counts per (connection, class) in this container's memory."""

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._counts: OrderedDict[tuple[str, str], tuple[int, int]] = OrderedDict()
        self._lock = threading.Lock()  # the local stand-in runs invocations in threads

    def take(self, connection_id: str, cls: str, window: int, limit: int) -> tuple[bool, bool]:
        """Count one frame: (allowed, whether this window was already open here)."""
        key = (connection_id, cls)
        with self._lock:
            seen, n = self._counts.pop(key, (None, 0))
            known = seen == window
            n = n if known else 0
            allowed = n < limit
            self._counts[key] = (window, n + 1 if allowed else n)
            while len(self._counts) > self.capacity:
                self._counts.popitem(last=False)
        return allowed, known

    def clear(self) -> None:
        """Forget everything, as a new container would (tests)."""
        with self._lock:
            self._counts.clear()


LOCAL = LocalWindows()


def _refused(budget: Budget, ref: str | None) -> ProtocolError:
    return ProtocolError(RATE_LIMITED, f"Too many requests: at most {budget.limit} of these every "
                         f"{budget.window_seconds} seconds. Send it again in a moment.", ref,
                         retry_after=retry_after(budget.window_seconds))


def admit(connection_id: str, frame: Frame) -> ConnectionModel | None:
    """Count ``frame`` against its connection's budget or raise ``rate_limited``. Returns the
    connection's item when the durable count read it (None for ``send``, whose limit is in
    its own write, and ``ping``); raises ``forbidden`` for a connection not registered."""
    cls = ACTION_CLASS.get(frame.action)
    if cls is None:
        return None
    budget = BUDGETS[cls]
    window = clock.now_ms() // (budget.window_seconds * 1000)
    allowed, known = LOCAL.take(connection_id, cls, window, budget.limit)
    if not allowed:
        raise _refused(budget, frame.ref)
    if not budget.durable:
        return None
    allowed, item = _count_on_connection(connection_id, cls, window, budget.limit, known)
    if item is None:
        raise ProtocolError(FORBIDDEN, "This connection is not registered; reconnect.", frame.ref)
    if not allowed:
        raise _refused(budget, frame.ref)
    return item


def _count_on_connection(connection_id: str, cls: str, window: int, limit: int,
                         known: bool) -> tuple[bool, ConnectionModel | None]:
    """Count one frame in ``window`` on the connection item: (allowed, the item)."""
    C = ConnectionModel
    key = connection_key(connection_id)
    windows, counts = C.budget_windows, C.budget_counts
    same: tuple[list[Action], Condition] = (
        [counts[cls].set(counts[cls] + 1)], (windows[cls] == window) & (counts[cls] < limit))
    fresh: tuple[list[Action], Condition] = (
        [windows[cls].set(window), counts[cls].set(1)],
        C.pk.exists() & (windows[cls].does_not_exist() | (windows[cls] != window)))
    item: ConnectionModel | None = None
    # Three tries at most: a concurrent invocation may open the window between the first two.
    for actions, condition in ([same, fresh, same] if known else [fresh, same, fresh]):
        # A connection written before budgets existed has no maps to count in.
        ok, item = update_into_maps(C, key, actions, condition, [windows, counts])
        if ok or item is None:
            return ok, item
        if (item.budget_windows.as_dict().get(cls) == window
                and int(item.budget_counts.as_dict().get(cls, 0)) >= limit):
            return False, item
    return False, item


def take(key: str, limit: int, window_seconds: int) -> int | None:
    """Like ``allow``, but the count after this event (so the caller sees the one that filled
    the window), or None when the window was already full and nothing was counted."""
    C = CounterModel
    ok, item = update_or_old(
        C, counter_key(key, window_seconds),
        [C.hits.add(1), C.ttl.set(from_ms(clock.now_ms()) + timedelta(seconds=2 * window_seconds))],
        C.hits.does_not_exist() | (C.hits < limit))
    return int(item.hits) if ok and item is not None else None


def give_back(key: str, window_seconds: int) -> None:
    """Undo one ``take`` of this window (an attempt that turned out not to count, such as a
    correct password)."""
    C = CounterModel
    update_or_old(C, counter_key(key, window_seconds), [C.hits.add(-1)], C.hits > 0)
