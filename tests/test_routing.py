"""Routing: capacity, fewest-chats-first, FCFS queue, manual accept, no double assignment."""

from __future__ import annotations

import threading

from chalicelib import routing
from chalicelib.models import (
    META,
    AgentModel,
    ConversationModel,
    VisitorModel,
    agent_key,
    conversation_key,
    visitor_key,
)
from tests.support.client import eventually


def _load(agent_id):
    return AgentModel.get(agent_key(agent_id), META).load


def test_capacity_is_respected_and_queue_drains_when_a_chat_closes(visitor, agent):
    console = agent(max_chats=2)
    guests = [visitor() for _ in range(3)]
    convs = [g.start() for g in guests]
    for _conv in convs[:2]:
        console.expect("assigned", timeout=5)
    third = guests[2].expect("queued", conversation=convs[2])
    assert third["position"] == 1
    assert _load(console.agent_id) == 2
    queue = console.expect("queue")
    assert [i["conversation"] for i in queue["items"]] in ([], [convs[2]])

    guests[0].send({"action": "close", "conversation": convs[0]})
    moved = console.expect("assigned", timeout=5)
    assert moved["conversation"] == convs[2] and moved["summary"]["agent"]
    assert guests[2].expect("assigned")["conversation"] == convs[2]
    assert _load(console.agent_id) == 2


def test_new_chats_go_to_the_agent_with_fewest(visitor, agent):
    busy = agent(max_chats=4)
    first = visitor().start()
    busy.expect("assigned")
    idle = agent(max_chats=4)
    second = visitor().start()
    assert idle.expect("assigned")["conversation"] == second
    third = visitor().start()
    # both have one now: ties go either way (spread per conversation), never to someone with more
    loads = {busy.agent_id: _load(busy.agent_id), idle.agent_id: _load(idle.agent_id)}
    assert sorted(loads.values()) == [1, 2]
    assert first != second != third


def test_queue_is_first_come_first_served(visitor, agent):
    guests = [visitor() for _ in range(3)]
    guests[0].send({"action": "page", "url": "https://shop.example/pricing", "title": "Pricing"})
    eventually(lambda: VisitorModel.get(visitor_key(guests[0].welcome["visitor"]), META,
                                        consistent_read=True).page is not None)  # frames run concurrently
    convs = [g.start() for g in guests]
    for position, (guest, conv) in enumerate(zip(guests, convs, strict=True), start=1):
        assert guest.expect("queued", conversation=conv, position=position)
    observer = agent(shift=False)
    listing = observer.request({"action": "queue"}, "queue")["items"]
    assert [i["conversation"] for i in listing] == convs
    assert listing[0]["page"]["url"] == "https://shop.example/pricing" and listing[1]["page"] is None
    console = agent(max_chats=1)
    assert console.expect("assigned")["conversation"] == convs[0]
    assert guests[1].expect("queued", conversation=convs[1], position=1)
    console.send({"action": "close", "conversation": convs[0]})
    assert console.expect("assigned", timeout=5)["conversation"] == convs[1]
    conv = ConversationModel.get(conversation_key(convs[1]), META, consistent_read=True)
    assert conv.status == "assigned" and conv.agent_id == console.agent_id
    assert ConversationModel.get(conversation_key(convs[2]), META).status == "queued"


def test_concurrent_accepts_never_double_assign(visitor, agent):
    guest = visitor()
    conv = guest.start()
    consoles = [agent(shift=False) for _ in range(4)]
    barrier = threading.Barrier(len(consoles))

    def accept(console):
        barrier.wait()
        console.send({"action": "accept", "conversation": conv})

    threads = [threading.Thread(target=accept, args=(c,)) for c in consoles]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = []
    for console in consoles:
        try:
            console.expect("assigned", timeout=5)
            outcomes.append("won")
        except AssertionError:
            outcomes.append(console.expect("error", code="conflict")["code"])
    assert outcomes.count("won") == 1 and outcomes.count("conflict") == 3
    winner = consoles[outcomes.index("won")].agent_id
    assert ConversationModel.get(conversation_key(conv), META).agent_id == winner
    assert [_load(c.agent_id) for c in consoles].count(1) == 1


def test_racing_routers_never_overfill_or_double_assign(visitor, agent, site):
    """Many threads assign the same queued conversations to the same agents at once; the
    conditional writes must leave every conversation with one agent and nobody over max."""
    guests = [visitor() for _ in range(12)]
    convs = [g.start() for g in guests]
    consoles = [agent(max_chats=3, shift=False) for _ in range(3)]
    for c in consoles:
        AgentModel(agent_key(c.agent_id)).update(actions=[AgentModel.on_shift.set(True)])
    barrier = threading.Barrier(8)
    results: list[tuple[str, str]] = []

    def router(offset):
        barrier.wait()
        for i in range(len(convs)):
            conv = convs[(i + offset) % len(convs)]
            for c in consoles:
                outcome = routing.assign(conv, c.agent_id)
                if isinstance(outcome, routing.Assignment):
                    results.append((conv, c.agent_id))
                    break

    threads = [threading.Thread(target=router, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 9  # 3 agents x 3 chats
    assert len({conv for conv, _ in results}) == 9
    for c in consoles:
        held = AgentModel.get(agent_key(c.agent_id), META).convs or set()
        assert len(held) == 3
        for conv in held:
            assert ConversationModel.get(conversation_key(conv), META).agent_id == c.agent_id


def test_agent_off_shift_gets_nothing_new_but_keeps_chats(visitor, agent):
    console = agent()
    conv = visitor().start()
    console.expect("assigned")
    console.request({"action": "shift", "on": False}, "shift")
    other = visitor()
    waiting = other.start()
    assert other.expect("queued", conversation=waiting)["position"] == 1
    console.quiet("assigned", wait=0.5)
    assert console.say(conv, "still here")["type"] == "ack"


def test_the_line_is_told_only_what_changed(visitor, agent):
    """A burst of starts must not cost a post per waiting visitor and per agent each time:
    a chat that goes straight to an agent tells nobody else; a chat that waits tells its own
    visitor a position (nobody ahead moved) and the agents the longer line; when the line
    moves, everyone behind learns their new place."""
    consoles = [agent(max_chats=1) for _ in range(2)]
    for console in consoles:
        console.expect("queue")  # the line as it was when they came on shift
    guests = [visitor() for _ in range(3)]
    convs = [guests[0].start(), guests[1].start()]
    for console in consoles:
        console.expect("assigned")
        console.quiet("queue", wait=0.3)  # straight to an agent: the line did not change

    convs.append(guests[2].start())  # everyone is full: it waits
    assert guests[2].expect("queued", conversation=convs[2])["position"] == 1
    for console in consoles:
        assert [i["conversation"] for i in console.expect("queue")["items"]] == [convs[2]]

    waiting = visitor()
    late = waiting.start()
    assert waiting.expect("queued", conversation=late)["position"] == 2
    guests[2].quiet("queued", wait=0.3)  # nobody ahead of it moved
    for console in consoles:
        assert [i["conversation"] for i in console.expect("queue")["items"]] == [convs[2], late]

    guests[0].send({"action": "close", "conversation": convs[0]})  # the line moves
    assert guests[2].expect("assigned")["conversation"] == convs[2]
    assert waiting.expect("queued", conversation=late)["position"] == 1
    for console in consoles:
        assert [i["conversation"] for i in console.expect("queue")["items"]] == [late]


def test_closing_a_chat_with_an_agent_and_an_empty_line_sends_no_queue(visitor, agent):
    """The line did not change, so no agent is sent it again (a post per agent per close)."""
    console = agent(max_chats=2)
    console.expect("queue")
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    guest.send({"action": "close", "conversation": conv})
    console.expect("closed", conversation=conv)
    console.quiet("queue", wait=0.3)


def test_a_start_leaves_younger_waiting_chats_to_their_own_start(visitor, agent, site, monkeypatch):
    """In a burst each start routes its own chat; one written earlier is left to its own
    start for a grace period (so routers do not all fight over the head of the line), then
    any later router picks it up first: a start that died before routing strands nobody."""
    stranded_guest = visitor()
    stranded = stranded_guest.start()  # nobody on shift: it waits
    console = agent(max_chats=2, shift=False)
    # on shift without a drain, as if the router that should have taken `stranded` died
    A = AgentModel
    AgentModel(agent_key(console.agent_id)).update(actions=[
        A.on_shift.set(True), A.s_pk.set(f"SHIFT#{site}"), A.s_sk.set(console.agent_id)])

    monkeypatch.setattr(routing, "IN_FLIGHT_MS", 60_000)
    first = visitor().start()
    assert console.expect("assigned")["conversation"] == first
    assert ConversationModel.get(conversation_key(stranded), META, consistent_read=True).status == "queued"

    monkeypatch.setattr(routing, "IN_FLIGHT_MS", 0)
    later_guest = visitor()
    later = later_guest.start()
    assert console.expect("assigned")["conversation"] == stranded  # oldest first
    assert later_guest.expect("queued", conversation=later)["position"] == 1
