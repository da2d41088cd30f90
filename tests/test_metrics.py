"""Service figures from scripted conversations with the clock under test control: wait, first
response, resolution, messages per side, transfers, holding messages, missed, abandoned,
after hours, ratings; each counted once into the site's and the agent's day, in the site's
own zone; and the hot path still two DynamoDB requests."""

from __future__ import annotations

import pytest

from chalicelib import sites, stats
from tests.support.client import eventually, rest, settle
from tests.support.flows import close, member_token
from tests.support.state import ALL_DAY, DAY, T0, ZONE, conv_item, day_item

# T0, 20:00 UTC on 10 March 2026, is 09:00 on 11 March (DAY) in Auckland (UTC+13): a day item
# keyed by the UTC date would be wrong, so every test here also checks the site's own calendar.


@pytest.fixture
def frozen_at():
    return T0


@pytest.fixture
def lead(stack, site):
    """An admin of the site (REST token), the site open around the clock in Auckland."""
    _, token = member_token(stack, site)
    status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}",
                        {"hours": {"timezone": ZONE, "week": ALL_DAY}}, token)
    assert status == 200, body
    return token


def test_an_answered_chat_measures_wait_first_response_resolution_and_messages(
        site, lead, frozen, agent, visitor):
    console = agent(max_chats=1)
    first = visitor()
    busy = first.start()
    console.expect("assigned", conversation=busy)
    guest = visitor()
    conv = guest.start()  # the only agent is full: it waits
    guest.say(conv, "Hello? Is anyone there?")
    frozen.advance(40)
    close(first, busy)  # capacity frees: the waiting chat is assigned now
    console.expect("assigned", conversation=conv)
    frozen.advance(12)
    console.say(conv, "Hi, I'm here. How can I help?")
    frozen.advance(30)
    guest.say(conv, "My order is late")
    console.say(conv, "Let me check")
    console.say(conv, "It ships today")
    frozen.advance(18)
    close(guest, conv)

    m = stats.measure(conv_item(conv), stats.zone(sites.get(site)), "visitor")
    assert (m.outcome, m.wait_ms, m.first_response_ms) == ("answered", 40_000, 12_000)
    assert m.resolution_ms == 100_000
    assert (m.messages_visitor, m.messages_agent, m.day, m.hour) == (2, 3, DAY, 9)
    assert conv_item(conv).counted and conv_item(conv).outcome == "answered"

    day = day_item(site)  # both chats of the day: the busy one (wait 0) and this one
    assert (day["chats"], day["answered"], day["wait_n"], day["wait_ms"]) == (2, 2, 2, 40_000)
    assert (day["frt_n"], day["frt_ms"], day["msg_v"], day["msg_a"]) == (1, 12_000, 2, 3)
    assert day[stats.bucket_name("w", stats.bucket(40_000))] == 1 and day["h09"] == 2
    assert day_item(site, console.agent_id)["chats"] == 2
    # Counted once: settling again (a retried close, a second worker) adds nothing.
    assert stats.settle(conv_item(conv), "visitor") is None
    assert day_item(site)["chats"] == 2


def test_a_transfer_and_a_holding_message_are_counted_for_the_receiving_agent(
        stack, site, lead, frozen, agent, visitor):
    giver, taker = agent(), agent()
    guest = visitor()
    conv = guest.start()
    guest.expect("assigned", conversation=conv)
    held, other = (giver, taker) if conv_item(conv).agent_id == giver.agent_id else (taker, giver)
    held.say(conv, "Hello")
    guest.say(conv, "I need a refund")
    frozen.advance(91)  # the default holding message goes out after 90 s of visitor waiting
    stack.gateway.run_schedules()
    guest.expect("message", conversation=conv)
    held.request({"action": "transfer", "conversation": conv, "to": other.agent_id}, "transfer_pending")
    other.expect("transfer_offer", conversation=conv)
    other.send({"action": "transfer_answer", "conversation": conv, "accept": True})
    other.expect("assigned", conversation=conv)
    other.say(conv, "Refund done")
    close(other, conv)

    item = conv_item(conv)
    assert (int(item.transfers), int(item.holds)) == (1, 1)
    assert day_item(site)["transfers"] == 1 and day_item(site)["holds"] == 1
    assert day_item(site, other.agent_id)["chats"] == 1  # the agent who ended it
    assert day_item(site, held.agent_id) == {}
    assert day_item(site)["msg_a"] == 2  # both agents' messages; the system's are not people's


def test_missed_when_the_visitor_leaves_before_anyone_accepts(stack, site, lead, frozen, agent, visitor):
    console = agent(max_chats=1)
    first = visitor()
    busy = first.start()
    console.expect("assigned", conversation=busy)
    # One visitor gives up and ends it while waiting; another closes the tab and is gone.
    quitter, ghost = visitor(), visitor()
    quit_conv, ghost_conv = quitter.start(), ghost.start()
    frozen.advance(20)
    close(quitter, quit_conv)
    ghost.close()
    eventually(lambda: conv_item(ghost_conv).v_left_at is not None)
    frozen.advance(60)
    close(first, busy)  # the agent is free, but a ghost is never handed over (lifecycle)
    console.quiet("assigned", conversation=ghost_conv)
    frozen.advance(180)  # the site's queued_after_seconds: the timer closes it as abandoned
    stack.gateway.run_schedules()
    assert conv_item(ghost_conv).reason == "abandoned"

    assert conv_item(quit_conv).outcome == "missed" and conv_item(ghost_conv).outcome == "missed"
    day = day_item(site)
    assert (day["chats"], day["missed"], day["answered"]) == (3, 2, 1)
    assert day["wait_n"] == 1  # a missed chat says nothing about live waiting


def test_abandoned_mid_chat_but_a_reload_is_not_leaving(site, lead, frozen, agent, visitor):
    console = agent()
    leaver = visitor()
    gone_conv = leaver.start()
    console.expect("assigned", conversation=gone_conv)
    leaver.say(gone_conv, "Question about sizes")
    console.say(gone_conv, "Sure, which item?")
    leaver.close()
    eventually(lambda: conv_item(gone_conv).v_left_at is not None)
    close(console, gone_conv)
    assert conv_item(gone_conv).outcome == "abandoned"

    reloader = visitor()
    conv = reloader.start()
    console.expect("assigned", conversation=conv)
    console.say(conv, "Hello!")
    token = reloader.welcome["token"]
    reloader.close()
    eventually(lambda: conv_item(conv).v_left_at is not None)
    back = visitor(token=token)  # the page reloaded: same visitor, back in the chat
    assert back.welcome["conversation"]["id"] == conv
    assert conv_item(conv).v_left_at is None
    close(console, conv)
    assert conv_item(conv).outcome == "answered"
    day = day_item(site)
    assert (day["chats"], day["abandoned"], day["answered"]) == (2, 1, 1)


def test_after_hours_messages_and_how_long_until_answered(stack, site, lead, frozen, agent, visitor):
    guest = visitor()  # nobody on shift: the site is offline
    conv = guest.start()
    guest.say(conv, "Do you ship to Canada?")
    guest.say(conv, "Please email me")
    # The form's address goes on the chat: it can be answered by email, so it is routed
    # (and never abandoned) although the visitor is gone.
    guest.send({"action": "leave_message", "email": "kim@example.org", "text": "Call me back"})
    guest.expect("message_left")
    guest.close()
    eventually(lambda: conv_item(conv).v_left_at is not None)
    frozen.advance(3 * 3600)
    console = agent()  # comes on shift three hours later and is handed the chat
    console.expect("assigned", conversation=conv)
    frozen.advance(60)
    console.say(conv, "Yes we do!")
    close(console, conv)

    item = conv_item(conv)
    assert item.after_hours and item.outcome == "missed"
    m = stats.measure(item, stats.zone(sites.get(site)), "agent")
    assert m.after_hours_answer_ms == 3 * 3600_000 + 60_000
    day = day_item(site)
    assert (day["ah_chats"], day["ah_msgs"], day["ah_ans_n"], day["offline"]) == (1, 2, 1, 1)
    assert day["ah_ans_ms"] == 3 * 3600_000 + 60_000


def test_the_visitor_rates_once_after_the_end_and_the_agent_sees_it(site, lead, frozen, agent, visitor):
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    console.say(conv, "Anything else?")
    early = guest.request({"action": "rate", "conversation": conv, "score": "up", "ref": "r0"}, "error")
    assert early["code"] == "conflict"  # not before the end
    close(guest, conv)
    console.expect("closed", conversation=conv)
    rated = guest.request({"action": "rate", "conversation": conv, "score": "up",
                           "comment": "Quick and kind", "ref": "r1"}, "rated")
    assert rated["rating"]["score"] == "up" and rated["ref"] == "r1"
    seen = console.expect("rated", conversation=conv)
    assert seen["rating"] == {"score": "up", "comment": "Quick and kind", "ts": T0}
    again = guest.request({"action": "rate", "conversation": conv, "score": "up",
                           "comment": "Quick and kind", "ref": "r2"}, "rated")  # a resend
    assert again["ref"] == "r2"
    changed = guest.request({"action": "rate", "conversation": conv, "score": "down", "ref": "r3"}, "error")
    assert changed["code"] == "conflict"
    refused = console.request({"action": "rate", "conversation": conv, "score": "down", "ref": "r4"}, "error")
    assert refused["code"] == "forbidden"  # only the visitor rates
    assert conv_item(conv).summary()["rating"]["comment"] == "Quick and kind"
    assert (day_item(site).get("up"), day_item(site).get("down", 0)) == (1, 0)
    assert day_item(site, console.agent_id)["up"] == 1


def test_the_message_path_stays_at_two_dynamodb_requests(stack, site, agent, visitor, dynamodb_calls):
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    guest.say(conv, "warm up")
    settle(stack)
    dynamodb_calls.clear()
    console.say(conv, "counted reply")
    assert dynamodb_calls == ["UpdateItem", "PutItem"]
    item = conv_item(conv)
    assert stats.messages_by_side(item) == (1, 1) and stats.first_agent_message(item) is not None
