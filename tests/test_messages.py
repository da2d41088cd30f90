"""Messages: stored before anyone is told, fanned out, idempotent, resumable, within budget."""

from __future__ import annotations

import threading

from chalicelib.models import (
    META,
    ConversationModel,
    conversation_key,
)
from tests.support.client import eventually, settle
from tests.support.flows import start_chat
from tests.support.state import connections, stored


def test_fan_out_reaches_every_tab_and_console(visitor, agent):
    guest, console, conv = start_chat(visitor, agent)
    second_tab = visitor(token=guest.welcome["token"])
    assert second_tab.welcome["conversation"]["id"] == conv
    second_console = agent(agent_id=console.agent_id)
    guest.say(conv, "hi from tab one")
    for receiver in (second_tab, console, second_console):
        assert receiver.expect("message", conversation=conv)["text"] == "hi from tab one"
    guest.quiet("message")  # the sender gets an ack, not its own message back


def test_vanished_connection_is_removed_and_others_still_receive(visitor, agent, stack):
    guest, console, conv = start_chat(visitor, agent)
    before_tab = set(connections(conv))
    visitor(token=guest.welcome["token"])
    (gone_id,) = set(connections(conv)) - before_tab
    stack.gateway.drop(gone_id)  # vanishes without $disconnect, as a dead network does
    gone_before = stack.gateway.counters["post:gone"]
    console.say(conv, "are you there?")
    assert guest.expect("message", conversation=conv)["text"] == "are you there?"
    eventually(lambda: gone_id not in connections(conv))
    assert stack.gateway.counters["post:gone"] == gone_before + 1
    assert len(connections(conv)) == 2
    console.say(conv, "second message")
    assert guest.expect("message", conversation=conv)["seq"] == 2
    assert stack.gateway.counters["post:gone"] == gone_before + 1


def test_resend_with_same_id_is_acknowledged_again_never_stored_twice(visitor, agent):
    """A resend is stored once and acknowledged with the same seq. It is delivered again
    (the first delivery may never have happened), as the same message: same seq, same id,
    which every client keeps once."""
    guest, console, conv = start_chat(visitor, agent)
    message_id = guest.next_id()
    first = guest.say(conv, "only once please", message_id)
    again = guest.say(conv, "only once please", message_id)
    assert first["type"] == again["type"] == "ack" and first["seq"] == again["seq"] == 1
    copies = [console.expect("message", conversation=conv) for _ in range(2)]
    assert {(m["seq"], m["id"], m["text"], m["ts"]) for m in copies} == {
        (1, message_id, "only once please", first["ts"])}
    console.quiet("message", wait=0.7)
    assert stored(conv) == [(1, "only once please")]
    assert guest.say(conv, "next one")["seq"] == 2
    stale = guest.say(conv, "old id", message_id)
    assert stale["type"] == "error" and stale["code"] == "stale_message"
    assert stored(conv) == [(1, "only once please"), (2, "next one")]


def test_same_id_with_other_text_is_refused_not_swallowed(visitor, agent):
    """Two tabs sharing a client id must not lose the second text silently."""
    guest, _console, conv = start_chat(visitor, agent)
    message_id = guest.next_id()
    guest.say(conv, "from tab one", message_id)
    clash = guest.say(conv, "from tab two", message_id)
    assert clash["type"] == "error" and clash["code"] == "conflict"
    assert stored(conv) == [(1, "from tab one")]


def test_resend_after_a_crash_between_the_two_writes_stores_it_once(visitor, agent):
    """The sequence number was taken but the message never written (the Lambda died): the
    client's resend must store and deliver it, with the number it was given."""
    guest, console, conv = start_chat(visitor, agent)
    message_id = guest.next_id()
    client, counter = message_id.split(":")
    C = ConversationModel
    C(conversation_key(conv)).update(actions=[
        C.seq.set(C.seq + 1), C.client_counters[client].set(int(counter)),
        C.client_seqs[client].set(C.seq + 1)])
    ack = guest.say(conv, "lost in the crash", message_id)
    assert ack["type"] == "ack" and ack["seq"] == 1
    assert console.expect("message", conversation=conv)["text"] == "lost in the crash"
    assert stored(conv) == [(1, "lost in the crash")]


def test_concurrent_duplicate_sends_store_and_deliver_once(visitor, agent):
    guest, console, conv = start_chat(visitor, agent)
    message_id = guest.next_id()
    frame = {"action": "send", "conversation": conv, "id": message_id, "text": "double tap"}
    threads = [threading.Thread(target=guest.send, args=(frame,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acks = [guest.expect_reply(message_id) for _ in range(3)]
    assert {a["seq"] for a in acks} == {1}
    copies = [console.expect("message", conversation=conv) for _ in range(3)]  # one per attempt
    assert {(m["seq"], m["id"]) for m in copies} == {(1, message_id)}
    console.quiet("message", wait=0.7)
    assert stored(conv) == [(1, "double tap")]


def test_reconnect_and_resume_misses_nothing_duplicates_nothing(visitor, agent):
    guest, console, conv = start_chat(visitor, agent)
    guest.say(conv, "first")
    console.expect("message", conversation=conv)
    token = guest.welcome["token"]
    guest.close()
    for n in range(5):
        console.say(conv, f"while you were away {n}")
    back = visitor(token=token)
    state = back.welcome["conversation"]
    assert state["id"] == conv and state["seq"] == 6
    page = back.request({"action": "sync", "conversation": conv, "after": 1}, "messages")
    assert [m["seq"] for m in page["items"]] == [2, 3, 4, 5, 6]
    assert [m["text"] for m in page["items"]] == [f"while you were away {n}" for n in range(5)]
    assert page["more"] is False
    console.say(conv, "live again")
    assert back.expect("message", conversation=conv)["seq"] == 7
    small = back.request({"action": "sync", "conversation": conv, "after": 0, "limit": 3},
                         "messages")
    assert [m["seq"] for m in small["items"]] == [1, 2, 3] and small["more"] is True


def test_message_path_costs_one_invocation_and_two_dynamodb_requests(visitor, agent, stack,
                                                                      dynamodb_calls):
    guest, console, conv = start_chat(visitor, agent)
    second_console = agent(agent_id=console.agent_id)
    guest.say(conv, "warm up")
    console.expect("message")
    second_console.expect("message")
    settle(stack)  # earlier tests' sockets may still be running $disconnect
    dynamodb_calls.clear()
    invocations = stack.gateway.counters["invoke:$default"]
    posts = stack.gateway.counters["post"]
    guest.say(conv, "counted")
    console.expect("message", conversation=conv)
    second_console.expect("message", conversation=conv)
    assert dynamodb_calls == ["UpdateItem", "PutItem"]
    assert stack.gateway.counters["invoke:$default"] == invocations + 1
    assert stack.gateway.counters["post"] == posts + 3  # ack + two consoles


def test_a_participant_cannot_jam_another_participants_client_id(visitor, agent):
    guest, console, conv = start_chat(visitor, agent)
    console.say(conv, "Hello, how can I help?")
    agent_client = console.client_id
    jam = guest.say(conv, "gotcha", f"{agent_client}:999999999999")
    assert jam["type"] == "error" and jam["code"] == "conflict"
    assert console.say(conv, "Still talking")["type"] == "ack"
    assert stored(conv) == [(1, "Hello, how can I help?"), (2, "Still talking")]


def test_a_gone_tab_whose_record_expired_is_cleaned_from_the_conversation(visitor, agent, stack,
                                                                         dynamodb_calls):
    from chalicelib.models import ConnectionModel, connection_key

    guest, console, conv = start_chat(visitor, agent)
    before = set(connections(conv))
    visitor(token=guest.welcome["token"])
    (tab,) = set(connections(conv)) - before
    stack.gateway.drop(tab)
    ConnectionModel(connection_key(tab)).delete()  # its record expired (TTL) meanwhile
    console.say(conv, "first after the tab vanished")
    eventually(lambda: tab not in connections(conv))
    settle(stack)
    dynamodb_calls.clear()
    console.say(conv, "and the next one is back on budget")
    guest.expect("message", seq=2)
    assert dynamodb_calls == ["UpdateItem", "PutItem"]


def test_read_after_close_does_not_reopen_the_conversation(visitor, agent):
    guest, console, conv = start_chat(visitor, agent)
    guest.say(conv, "bye")
    guest.request({"action": "close", "conversation": conv}, "closed")
    console.send({"action": "read", "conversation": conv, "seq": 1})
    console.request({"action": "ping", "ref": "after-read"}, "pong", ref="after-read")
    assert ConversationModel.get(conversation_key(conv), META, consistent_read=True).status == "closed"
