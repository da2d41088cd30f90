"""Routing's choices without the stack: which waiting chats one router tries to place, how
equally loaded agents are ordered (the tie-break that spreads a burst of starts), and where a
page of the waiting line ends."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from chalicelib import routing
from chalicelib.routing import IN_FLIGHT_MS, _spread, _to_route, queue_cursor
from tests.support.clock import Clock

NOW = 1_800_000_000_000


def _waiting(*ages_ms: int) -> list[SimpleNamespace]:
    """Chats in line, oldest first: c0 waited ``ages_ms[0]`` ms, and so on."""
    return [SimpleNamespace(id=f"c{n}", queued_at=NOW - age) for n, age in enumerate(ages_ms)]


def test_the_tie_break_is_stable_for_a_pair_and_differs_between_pairs():
    assert _spread("conv1", "ann") == _spread("conv1", "ann")
    assert _spread("conv1", "ann") != _spread("conv1", "bob")
    assert _spread("conv1", "ann") != _spread("conv2", "ann")


def test_equally_loaded_agents_are_tried_in_an_order_of_each_chats_own():
    """A burst of starts must not all race for the same agent: over many chats, each of three
    equally loaded agents comes first for a fair share of them."""
    agents = ["ann", "bob", "cyd"]
    firsts = Counter(min(agents, key=lambda a, c=f"chat{n}": (0, _spread(c, a))) for n in range(300))
    assert set(firsts) == set(agents) and min(firsts.values()) >= 60


def test_load_comes_before_the_tie_break():
    load = {"ann": 2, "bob": 0, "cyd": 1}
    order = sorted(load, key=lambda a: (load[a], _spread("chat1", a)))
    assert order == ["bob", "cyd", "ann"]


def test_without_a_start_the_router_tries_the_whole_line(monkeypatch):
    Clock(monkeypatch, NOW)
    line = _waiting(90_000, 60_000, 10)
    assert _to_route(line, None) == line


def test_a_start_routes_its_own_chat_and_at_most_one_stranded_one(monkeypatch):
    """Chats other starts wrote a moment ago are theirs to route; one that waited past
    IN_FLIGHT_MS may have lost its start, so the oldest such is taken along."""
    Clock(monkeypatch, NOW)
    line = _waiting(IN_FLIGHT_MS + 5_000, IN_FLIGHT_MS + 1_000, 100, 10)
    assert [c.id for c in _to_route(line, "c3")] == ["c0", "c3"]
    fresh = _waiting(IN_FLIGHT_MS - 1, 100, 10)
    assert [c.id for c in _to_route(fresh, "c2")] == ["c2"]
    assert [c.id for c in _to_route(line, "c0")] == ["c0", "c1"]  # itself, then the next stranded


def test_a_queue_cursor_orders_like_the_line():
    items = [{"queued_at": 1_700_000_000_000, "conversation": "b"},
             {"queued_at": 1_700_000_000_000, "conversation": "c"},
             {"queued_at": 1_700_000_000_001, "conversation": "a"},
             {"queued_at": None, "conversation": "z"}]
    cursors = [queue_cursor(i) for i in items]
    assert cursors[0] == "001700000000000#b"
    assert sorted(cursors) == [cursors[3], *cursors[:3]]
    assert routing.QUEUE_PAGE > 0
