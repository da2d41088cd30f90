"""When people leave: close reasons, the visitor's presence as agents see it, abandonment by
the minute timer, the figures of each way a chat ends, and a waiting list that always equals
the table. Real WebSocket clients on the local stand-in; the clock is the test's."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import config, routing, sites
from chalicelib.models import META, AgentModel, MessageModel, agent_key
from tests.support.client import Client, eventually, rest
from tests.support.flows import close, gone
from tests.support.state import DAY, T0, conv_item, day_item

QUEUED_LIMIT, ASSIGNED_LIMIT = 180, 900  # the defaults (chalicelib.lifecycle.ABANDON_DEFAULTS)


@pytest.fixture
def frozen_at():
    return T0


@pytest.fixture
def auckland(stack, site):
    """The site open around the clock in the zone test_metrics' day items are keyed in."""
    week = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    sites.update(site, {"hours": {"timezone": "Pacific/Auckland", "week": week}})
    return site


def last_queue(console: Client) -> list[dict[str, Any]] | None:
    """The items of the last ``queue`` frame the console got (None: none came)."""
    frame = console.last("queue")
    return None if frame is None else frame["items"]


def system_lines(conv: str) -> list[str]:
    return [m.text for m in MessageModel.query(conv_item(conv).pk, MessageModel.sk.startswith("MSG#"),
                                               consistent_read=True) if m.role == "system"]


def test_close_reasons_resolved_by_the_agent_and_ended_by_the_visitor(agent, visitor):
    console = agent()
    first = visitor()
    resolved = first.start()
    console.expect("assigned", conversation=resolved)
    frame = close(console, resolved)
    assert frame["summary"]["reason"] == "resolved" and "presence" not in frame["summary"]
    assert first.expect("closed", conversation=resolved)["summary"]["reason"] == "resolved"
    second = visitor()
    ended = second.start()
    console.expect("assigned", conversation=ended)
    close(second, ended)
    assert console.expect("closed", conversation=ended)["summary"]["reason"] == "ended"
    assert (conv_item(resolved).reason, conv_item(ended).reason) == ("resolved", "ended")


def test_the_agent_sees_the_visitor_leave_and_come_back(frozen, agent, visitor):
    console = agent()
    guest = visitor()
    conv = guest.start()
    assigned = console.expect("assigned", conversation=conv)
    assert assigned["summary"]["presence"] == {"state": "online", "since": T0}
    token = guest.welcome["token"]
    frozen.advance(30)
    gone(guest, conv)
    assert console.expect("presence", conversation=conv) == {
        "type": "presence", "conversation": conv, "state": "away", "since": T0 + 30_000}
    frozen.advance(60)
    back = visitor(token=token)  # a tab of the same visitor opens again
    assert back.welcome["conversation"]["id"] == conv
    assert console.expect("presence", conversation=conv) == {
        "type": "presence", "conversation": conv, "state": "online", "since": T0 + 90_000}
    assert conv_item(conv).v_left_at is None and conv_item(conv).due_pk is None
    refreshed = agent(agent_id=console.agent_id, shift=False)  # a reloaded console sees it too
    (summary,) = refreshed.welcome["conversations"]
    assert summary["presence"] == {"state": "online", "since": T0 + 90_000}


def test_a_waiting_visitor_who_left_is_never_handed_to_an_agent_and_is_abandoned(
        stack, frozen, agent, visitor):
    console = agent(max_chats=1)
    busy_visitor = visitor()
    busy = busy_visitor.start()
    console.expect("assigned", conversation=busy)
    ghost, real = visitor(), visitor()
    ghost_conv = ghost.start()
    real_conv = real.start()
    ghost.say(ghost_conv, "hello?")
    gone(ghost, ghost_conv)
    # Agents on shift see it in their waiting list: the frame, and every later listing.
    assert console.expect("presence", conversation=ghost_conv)["state"] == "away"
    close(console, busy)  # the agent is free: the one behind the ghost gets them
    assert console.expect("assigned")["conversation"] == real_conv
    line = last_queue(console) or []
    assert [(i["conversation"], i["presence"]["state"]) for i in line] == [(ghost_conv, "away")]
    assert conv_item(ghost_conv).status == "queued"
    # Nor can it be taken by hand: the write itself refuses it.
    spare = agent(max_chats=1)
    refused = spare.request({"action": "accept", "conversation": ghost_conv}, "error")
    assert refused["code"] == "conflict" and "left" in refused["message"]
    assert AgentModel.get(agent_key(spare.agent_id), META, consistent_read=True).load == 0

    frozen.advance(QUEUED_LIMIT - 1)
    stack.gateway.run_schedules()
    assert conv_item(ghost_conv).status == "queued"  # not yet
    frozen.advance(2)
    stack.gateway.run_schedules()
    item = conv_item(ghost_conv)
    assert (item.status, item.reason, item.outcome) == ("closed", "abandoned", "missed")
    assert item.q_pk.startswith("HIST#") and item.due_pk is None
    assert last_queue(spare) == []  # the line without it
    assert system_lines(ghost_conv) == []  # nobody to tell


def test_a_visitor_back_before_the_timer_keeps_their_place_and_is_routed(stack, frozen, agent, visitor):
    console = agent(max_chats=1)
    busy_visitor = visitor()
    busy = busy_visitor.start()
    console.expect("assigned", conversation=busy)
    waiting = visitor()
    conv = waiting.start()
    token = waiting.welcome["token"]
    gone(waiting, conv)
    close(console, busy)
    console.quiet("assigned")
    frozen.advance(QUEUED_LIMIT - 10)
    back = visitor(token=token)  # came back in time: routed at once, the agent is free
    assert console.expect("assigned")["conversation"] == conv
    assert back.welcome["conversation"]["status"] == "assigned"  # its own state comes in its welcome
    frozen.advance(QUEUED_LIMIT)
    stack.gateway.run_schedules()
    assert conv_item(conv).status == "assigned"


def test_an_assigned_chat_whose_visitor_left_closes_with_a_note_after_the_site_timer(
        stack, site, frozen, agent, visitor):
    sites.update(site, {"console": {"abandon": {"queued_after_seconds": 60, "assigned_after_seconds": 120}}})
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    guest.say(conv, "Which size?")
    console.say(conv, "Medium, I think.")
    gone(guest, conv)
    console.expect("presence", conversation=conv)
    frozen.advance(119)
    stack.gateway.run_schedules()
    console.quiet("closed")
    frozen.advance(2)
    stack.gateway.run_schedules()
    note = console.expect("message", conversation=conv, text="The visitor left; chat closed after 2 min.")
    assert note["from"]["role"] == "system"
    closed = console.expect("closed", conversation=conv)
    assert closed["by"] == "system" and closed["summary"]["reason"] == "abandoned"
    assert AgentModel.get(agent_key(console.agent_id), META, consistent_read=True).load == 0
    assert conv_item(conv).outcome == "abandoned"


@pytest.mark.parametrize("abandon", [
    {"queued_after_seconds": 59}, {"assigned_after_seconds": 86401}, {"queued_after_seconds": "180"},
    {"queued_after_seconds": True}, {"later": 100}, [180, 900]])
def test_bad_abandonment_timers_are_refused_and_change_nothing(stack, site, abandon):
    from chalicelib import agents
    from tests.support.flows import PASSWORD

    agents.create(f"adm{site}", "Admin", PASSWORD, role="admin", site=site)
    token = Client.login(stack.gateway.http_url, f"adm{site}", PASSWORD)
    status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}",
                        {"console": {"abandon": abandon}}, token)
    assert status == 400 and "console.abandon" in str(body)
    status, body = rest(stack.gateway.http_url, "GET", f"/sites/{site}", token=token)
    assert status == 200 and body["console"]["abandon"] == {"queued_after_seconds": 180,
                                                            "assigned_after_seconds": 900}


def test_a_chat_that_can_go_on_by_email_is_never_abandoned(stack, frozen, agent, visitor):
    guest = visitor()
    conv = guest.start()  # nobody on shift
    guest.say(conv, "Please call me back")
    guest.send({"action": "leave_message", "email": "hal@example.org", "text": "Or email me"})
    guest.expect("message_left")
    gone(guest, conv)
    frozen.advance(ASSIGNED_LIMIT * 2)
    stack.gateway.run_schedules()
    item = conv_item(conv)
    assert item.status == "queued"
    assert item.due_pk is None  # off the timer's list: not read again every minute
    console = agent()  # an address to answer to: routed although the visitor is gone
    assert console.expect("assigned")["conversation"] == conv
    frozen.advance(ASSIGNED_LIMIT * 2)
    stack.gateway.run_schedules()
    assert conv_item(conv).status == "assigned"


def test_ghosts_get_no_holding_message_and_no_unanswered_digest(stack, frozen, agent, visitor, mailbox):
    waiting = visitor()  # nobody on shift: this chat waits
    lonely = waiting.start()
    waiting.say(lonely, "Is anyone there? (digest test)")
    gone(waiting, lonely)
    frozen.advance(config.settings().digest_quiet_seconds + 1)
    stack.gateway.run_schedules()
    assert not [e for e in mailbox(config.settings().team_email) if "(digest test)" in e["body"]["text"]]
    assert conv_item(lonely).digested_seq is None

    console = agent()
    console.quiet("assigned")  # the ghost is not handed over either
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    console.say(conv, "Hello!")
    guest.say(conv, "Hi, one question")
    gone(guest, conv)
    frozen.advance(91)  # past the default holding delay (90 s)
    stack.gateway.run_schedules()
    assert conv_item(conv).holds is None and system_lines(conv) == []


def test_a_chat_answered_earlier_is_not_mailed_as_unanswered(stack, frozen, agent, visitor, mailbox):
    """Answered, then the visitor left and the agent's console closed past its grace: the chat
    waits again while nobody is on shift, but what the visitor wrote was answered. Only a line
    written after the answer is news to the team."""
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "email": "ivy@example.org"})  # reachable: never a ghost
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    guest.say(conv, "Where is my parcel? (answered)")
    console.say(conv, "It arrives tomorrow.")
    gone(guest, conv)
    console.close()
    eventually(lambda: AgentModel.get(agent_key(console.agent_id), META,
                                      consistent_read=True).due_pk == "GRACE")
    frozen.advance(config.settings().agent_grace_seconds + 1)
    stack.gateway.run_schedules()  # back in line, nobody on shift
    assert conv_item(conv).status == "queued"
    frozen.advance(config.settings().digest_quiet_seconds + 1)
    stack.gateway.run_schedules()
    assert not [e for e in mailbox(config.settings().team_email) if "(answered)" in e["body"]["text"]]

    again = visitor(token=guest.welcome["token"])
    again.say(conv, "One more thing (new)")
    frozen.advance(config.settings().digest_quiet_seconds + 1)
    stack.gateway.run_schedules()
    (digest,) = [e for e in mailbox(config.settings().team_email) if "(new)" in e["body"]["text"]]
    assert "(answered)" not in digest["body"]["text"] and "(1 message)" in digest["subject"]


def test_figures_of_each_way_a_chat_ends(stack, site, auckland, frozen, agent, visitor):
    """Left while waiting: missed. Answered, then the visitor left and the timer closed it:
    abandoned. Resolved by the agent with the visitor there: answered. Ended by the visitor:
    answered."""
    console = agent(max_chats=1)
    holder = visitor()
    held = holder.start()
    console.expect("assigned", conversation=held)
    leaver = visitor()
    left_waiting = leaver.start()
    gone(leaver, left_waiting)
    frozen.advance(QUEUED_LIMIT + 1)
    stack.gateway.run_schedules()  # missed
    console.say(held, "How can I help?")
    gone(holder, held)
    frozen.advance(ASSIGNED_LIMIT + 1)
    stack.gateway.run_schedules()  # answered, then abandoned: closed by the timer
    console.expect("closed", conversation=held)
    present = visitor()
    resolved = present.start()
    console.expect("assigned", conversation=resolved)
    console.say(resolved, "Done!")
    close(console, resolved)
    ender = visitor()
    ended = ender.start()
    console.expect("assigned", conversation=ended)
    close(ender, ended)

    outcomes = {c: conv_item(c).outcome for c in (left_waiting, held, resolved, ended)}
    assert outcomes == {left_waiting: "missed", held: "abandoned", resolved: "answered", ended: "answered"}
    reasons = {c: conv_item(c).reason for c in (left_waiting, held, resolved, ended)}
    assert reasons == {left_waiting: "abandoned", held: "abandoned", resolved: "resolved", ended: "ended"}
    day = day_item(site, day=DAY)
    assert (day["chats"], day["missed"], day["abandoned"], day["answered"]) == (4, 1, 1, 2)
    assert day["wait_n"] == 3  # a missed chat says nothing about live waiting


class Lists:
    """The last waiting list each console got (``queue`` frames), read off its socket."""

    def __init__(self, consoles: list[Client]) -> None:
        self.consoles = consoles
        self.seen: dict[str, list[str] | None] = {c.agent_id: None for c in consoles}

    def add(self, console: Client) -> None:
        self.consoles.append(console)
        self.seen[console.agent_id] = [i["conversation"] for i in console.welcome.get("queue", [])]

    def check(self, site: str) -> list[str]:
        for console in self.consoles:
            while True:
                try:
                    frame = console.expect("queue", timeout=0.4)
                except AssertionError:
                    break
                if frame.get("after") is None:
                    self.seen[console.agent_id] = [i["conversation"] for i in frame["items"]]
        table = [c.id for c in routing.waiting(site)]
        assert {a: self.seen[a] for a in self.seen} == {a: table for a in self.seen}
        return table


def last_position(client: Client) -> Any:
    frame = client.last("queued")
    return None if frame is None else frame["position"]


def test_the_waiting_list_equals_the_table_after_accepts_transfers_requeues_and_abandons(
        stack, site, frozen, agent, visitor):
    a, b = agent(max_chats=1), agent(max_chats=1)
    lists = Lists([a, b])
    v1, v2, v3, v4, v5 = (visitor() for _ in range(5))
    c1, c2, c3, c4, c5 = (frozen.advance(1) or v.start() for v in (v1, v2, v3, v4, v5))  # in this order
    assert lists.check(site) == [c3, c4, c5]
    helper = agent(max_chats=2, shift=False)

    helper.request({"action": "accept", "conversation": c4}, "assigned", conversation=c4)  # accept
    assert lists.check(site) == [c3, c5]
    assert last_position(v5) == 2  # positions move up after an accept

    gone(v3, c3)  # abandon
    assert lists.check(site) == [c3, c5]  # still in line (shown as "Visitor left")
    frozen.advance(QUEUED_LIMIT + 1)
    stack.gateway.run_schedules()
    assert lists.check(site) == [c5]
    assert last_position(v5) == 1

    helper.request({"action": "shift", "on": True}, "shift")  # takes c5: now full
    helper.expect("assigned", conversation=c5)
    lists.add(helper)
    assert lists.check(site) == []
    v6 = visitor()
    frozen.advance(1)
    c6 = v6.start()
    assert lists.check(site) == [c6]
    gone(v6, c6)

    holder = a if conv_item(c1).agent_id == a.agent_id else b
    other = b if holder is a else a
    close(other, c2)  # it held c2: room for a transfer; the ghost is not handed over
    assert lists.check(site) == [c6]
    holder.request({"action": "transfer", "conversation": c1, "to": other.agent_id}, "transfer_pending")
    other.expect("transfer_offer", conversation=c1)
    other.send({"action": "transfer_answer", "conversation": c1, "accept": True})
    other.expect("assigned", conversation=c1)  # transfer
    assert lists.check(site) == [c6]

    lists.consoles.remove(other)
    del lists.seen[other.agent_id]
    other.close()  # requeue: the agent is gone past the grace period
    eventually(lambda: AgentModel.get(agent_key(other.agent_id), META,
                                      consistent_read=True).due_pk == "GRACE")
    frozen.advance(config.settings().agent_grace_seconds + 1)
    stack.gateway.run_schedules()
    holder.expect("assigned", conversation=c1)  # back in line, then straight to the free agent
    assert lists.check(site) == [c6]

    frozen.advance(QUEUED_LIMIT + 1)
    stack.gateway.run_schedules()  # the ghost is abandoned
    assert lists.check(site) == []



def test_the_lifecycle_is_written_down_where_the_code_names_it():
    """docs/lifecycle.md names every state, reason and timer chalicelib/lifecycle.py does, and
    each move the code allows, so the page cannot drift from the code unnoticed."""
    import re
    from pathlib import Path

    from chalicelib import lifecycle

    page = (Path(__file__).resolve().parents[1] / "docs" / "lifecycle.md").read_text()
    for state in (*lifecycle.OPEN_STATES, lifecycle.CLOSED):
        assert re.search(rf"`(status = )?{state}`", page), state
    for name in (*lifecycle.REASONS, *lifecycle.ABANDON_DEFAULTS):
        assert f"`{name}`" in page, name
    for (before, after), who in lifecycle.TRANSITIONS.items():
        reopens = (before, after) == (lifecycle.CLOSED, lifecycle.QUEUED)  # an emailed answer
        assert reopens or (before in lifecycle.OPEN_STATES
                           and after in (*lifecycle.OPEN_STATES, lifecycle.CLOSED))
        assert who, (before, after)
