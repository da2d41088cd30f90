"""Rate limits: fixed windows kept in DynamoDB (one conditional counter update per check),
the table of named limits on what strangers can cause (``Limit``: new chats, offline
messages, transcripts, sign-in failures, mails), and every connection's frame budget per
action class (below).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action

from chalicelib import clock, config
from chalicelib.errors import FORBIDDEN, RATE_LIMITED, Refusal
from chalicelib.hours import from_ms
from chalicelib.protocol import ACTION_CLASS, BUDGETS, Budget, Frame
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


# ---------------------------------------------------------------- named limits (one table)


@dataclass(frozen=True)
class Limit:
    """One kind of event counted per subject in fixed windows: its counter key is
    ``<prefix>#<subject>`` (``<prefix>`` alone for a deployment-wide count). How many events
    fit is configuration, passed where the limit is checked. The prefixes are stored in the
    counters' keys: renaming one resets its counts, so they stay as they are."""

    prefix: str
    window_seconds: int

    def key(self, subject: str | None = None) -> str:
        return self.prefix if subject is None else f"{self.prefix}#{subject}"

    def allow(self, subject: str | None, limit: int, cost: int = 1) -> bool:
        return allow(self.key(subject), limit, self.window_seconds, cost)

    def take(self, subject: str, limit: int) -> int | None:
        return take(self.key(subject), limit, self.window_seconds)

    def give_back(self, subject: str) -> None:
        give_back(self.key(subject), self.window_seconds)

    def forget(self, subject: str) -> None:
        forget(self.key(subject), self.window_seconds)

    def retry_after(self) -> int:
        return retry_after(self.window_seconds)

    def counter_key(self, subject: str | None = None) -> str:
        """The counter item counting ``subject`` in the current window."""
        return counter_key(self.key(subject), self.window_seconds)


HOUR, QUARTER = 3600, 900
# limit                                    counter key prefix   window  how many (config / agents)
STARTS_PER_VISITOR = Limit("start", HOUR)  # CONVERSATIONS_PER_VISITOR_PER_HOUR
STARTS_PER_NETWORK = Limit("start-ip", HOUR)  # CONVERSATIONS_PER_IP_PER_HOUR
OFFLINE_PER_VISITOR = Limit("offline-visitor", HOUR)  # OFFLINE_PER_VISITOR_PER_HOUR
OFFLINE_PER_NETWORK = Limit("offline-ip", HOUR)  # OFFLINE_PER_IP_PER_HOUR
TRANSCRIPTS_PER_PERSON = Limit("transcript", HOUR)  # TRANSCRIPTS_PER_HOUR; "v:<visitor>"/"a:<agent>"
LOGIN_FAILURES_PER_ACCOUNT_AND_SOURCE = Limit("login", QUARTER)  # agents.LOGIN_FAILURES; "<account>#<source>"
LOGIN_FAILURES_PER_SOURCE = Limit("login-ip", QUARTER)  # LOGIN_FAILURES_PER_ADDRESS
LOGIN_FAILURES_PER_ACCOUNT = Limit("login", QUARTER)  # agents.LOGIN_FAILURES_PER_ACCOUNT
MAILS_PER_NETWORK = Limit("mail-net", HOUR)  # MAIL_PER_NETWORK_PER_HOUR
MAILS_PER_SITE = Limit("mail-site", HOUR)  # MAIL_PER_SITE_PER_HOUR
MAILS_PER_DEPLOYMENT = Limit("mail-all", HOUR)  # MAIL_PER_DEPLOYMENT_PER_HOUR

#: The limits whose keys name a visitor: erasing the visitor deletes their counters too.
_NAMING_A_VISITOR = ((OFFLINE_PER_VISITOR, "{}"), (STARTS_PER_VISITOR, "{}"),
                     (TRANSCRIPTS_PER_PERSON, "v:{}"))


def forget_visitor(visitor_id: str) -> None:
    """Delete the live counters whose keys name ``visitor_id`` (erasure)."""
    for limit, subject in _NAMING_A_VISITOR:
        limit.forget(subject.format(visitor_id))


# ---------------------------------------------------------------- mail budgets: per hour


class OverBudget(Exception):
    """An hourly mail budget is spent: refuse with ``retry_after`` (WebSocket) or 429 with
    ``Retry-After`` (REST). ``scope`` says which: network, site or deployment."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"mail budget of this {scope} spent")
        self.scope = scope
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return {"network": "Too many emails asked for from your network; try again later.",
                "site": "This site has sent too many emails this hour; try again later."}.get(
            self.scope, "Too many emails are being sent just now; try again later.")


def spend_mail(site: str, mails: int, network: str | None = None) -> None:
    """Count ``mails`` emails that a request will cause against the hourly budgets of its
    network (keyed hash of the source address), its site and the whole deployment; raise
    ``OverBudget`` when one is spent (then that one counted nothing).

    Why three: a per-person limit alone is one tokenless connect from a fresh identity, a
    network limit alone is beaten by many addresses, and the deployment's SES reputation is
    one for all sites. A limit of 0 turns that budget off (the local stand-in turns off the
    per-network one: every local client is 127.0.0.1).
    """
    per_network = config.settings().mail_per_network_per_hour
    scopes = [*([("network", MAILS_PER_NETWORK, network, per_network)] if network else []),
              ("site", MAILS_PER_SITE, site, config.settings().mail_per_site_per_hour),
              ("deployment", MAILS_PER_DEPLOYMENT, None, config.settings().mail_per_deployment_per_hour)]
    for scope, budget, subject, limit in scopes:
        if limit > 0 and not budget.allow(subject, limit, cost=mails):
            raise OverBudget(scope, budget.retry_after())


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


def _refused(budget: Budget, ref: str | None) -> Refusal:
    return Refusal(RATE_LIMITED, f"Too many requests: at most {budget.limit} of these every "
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
        raise Refusal(FORBIDDEN, "This connection is not registered; reconnect.", frame.ref)
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
