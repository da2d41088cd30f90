"""No one let in: tokens at $connect, per-frame authorization, and bad frames."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import InvalidStatus

from chalicelib import auth
from chalicelib.models import META, ConversationModel, MessageModel, conversation_key
from chalicelib.protocol import MAX_FRAME_BYTES, MAX_TEXT_CHARS
from tests.support.client import Client


def _refused(stack, query) -> int:
    with pytest.raises(InvalidStatus) as refused:
        Client(stack.gateway.ws_url, query)
    return refused.value.response.status_code


def test_agent_without_a_valid_token_is_refused_at_connect(stack, agent, site):
    console = agent()
    good = console.token
    payload, mac = good.split(".")
    assert _refused(stack, {"role": "agent"}) == 403
    assert _refused(stack, {"token": "not-a-token"}) == 403
    assert _refused(stack, {"token": f"{payload}.{mac[::-1]}"}) == 403
    forged = auth._b64(json.dumps({"r": "agent", "s": console.agent_id, "w": site,
                                   "e": 4102444800}).encode())
    assert _refused(stack, {"token": f"{forged}.{mac}"}) == 403
    expired = auth.issue("agent", console.agent_id, site, ttl=-1)
    assert _refused(stack, {"token": expired}) == 403
    ghost = auth.issue("agent", "nobody-here", site)
    assert _refused(stack, {"token": ghost}) == 403
    assert Client(stack.gateway.ws_url, {"token": good}).request({"action": "ping"}, "pong")


def test_visitor_token_resumes_same_visitor_and_conversation(visitor):
    guest = visitor()
    conv = guest.start()
    again = visitor(token=guest.welcome["token"])
    assert again.welcome["visitor"] == guest.welcome["visitor"]
    assert again.welcome["conversation"]["id"] == conv
    stranger = visitor()
    assert stranger.welcome["visitor"] != guest.welcome["visitor"]
    assert stranger.welcome["conversation"] is None


def test_visitor_cannot_touch_another_visitors_conversation(visitor, agent):
    agent()
    alice, mallory = visitor(), visitor()
    conv = alice.start()
    alice.say(conv, "my address is 1 Main St")
    mallory.send({"action": "start"})
    mallory.expect("conversation")

    for frame in ({"action": "send", "conversation": conv, "id": "mallory1:1", "text": "hi"},
                  {"action": "sync", "conversation": conv, "after": 0},
                  {"action": "typing", "conversation": conv, "on": True},
                  {"action": "read", "conversation": conv, "seq": 1},
                  {"action": "close", "conversation": conv},
                  {"action": "accept", "conversation": conv}):
        mallory.send({**frame, "ref": "x"})
        refusal = mallory.expect("error")
        assert refusal["code"] == "forbidden", frame
    alice.quiet("typing")
    stored = ConversationModel.get(conversation_key(conv), META, consistent_read=True)
    assert stored.status != "closed" and stored.seq == 1
    assert [m.text for m in MessageModel.query(stored.pk, MessageModel.sk.startswith("MSG#"))] == [
        "my address is 1 Main St"]


def test_agent_acts_only_on_conversations_assigned_to_them(visitor, agent):
    mine = agent(max_chats=1)
    guest = visitor()
    conv = guest.start()
    mine.expect("assigned")
    other = agent(max_chats=1)
    reply = other.say(conv, "let me butt in")
    assert reply["type"] == "error" and reply["code"] == "forbidden"
    other.send({"action": "sync", "conversation": conv, "after": 0})
    assert other.expect("error")["code"] == "forbidden"
    other.send({"action": "accept", "conversation": conv})
    assert other.expect("error")["code"] == "conflict"
    guest.send({"action": "shift", "on": True})
    assert guest.expect("error")["code"] == "forbidden"


def test_agent_cannot_take_another_sites_conversation(stack, visitor, agent, clients, new_site):
    from chalicelib import agents
    from tests.support.flows import PASSWORD

    guest = visitor()
    conv = guest.start()  # queued: nobody on this site
    agents.create("outsider-" + conv[:8].lower().replace("_", "-"), "Outsider", PASSWORD,
                  site=new_site("another"))
    token = Client.login(stack.gateway.http_url, "outsider-" + conv[:8].lower().replace("_", "-"),
                         PASSWORD)
    outsider = Client(stack.gateway.ws_url, {"token": token})
    clients.append(outsider)
    outsider.send({"action": "accept", "conversation": conv})
    assert outsider.expect("error")["code"] == "conflict"
    stored = ConversationModel.get(conversation_key(conv), META, consistent_read=True)
    assert stored.status == "queued" and stored.agent_id is None


BAD_FRAMES = [
    ("{not json", "bad_json"),
    ("[1, 2, 3]", "bad_frame"),
    ('{"no": "action"}', "bad_frame"),
    ('{"action": "teleport"}', "unknown_action"),
    ('{"action": "send", "conversation": "abcdefgh12", "id": "client1:1"}', "bad_frame"),
    ('{"action": "send", "conversation": "abcdefgh12", "id": "nocounter", "text": "x"}',
     "bad_frame"),
    ('{"action": "send", "conversation": 42, "id": "client1:1", "text": "x"}', "bad_frame"),
    ('{"action": "send", "conversation": "abcdefgh12", "id": "client1:1", "text": "   "}',
     "bad_frame"),
    ('{"action": "read", "conversation": "abcdefgh12", "seq": true}', "bad_frame"),
    ('{"action": "sync", "conversation": "abcdefgh12", "after": -1}', "bad_frame"),
    (json.dumps({"action": "send", "conversation": "abcdefgh12", "id": "client1:1",
                 "text": "x" * (MAX_TEXT_CHARS + 1)}), "bad_frame"),
    (json.dumps({"action": "ping", "pad": "y" * MAX_FRAME_BYTES}), "too_large"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_FRAMES, ids=[c for _, c in BAD_FRAMES])
def test_bad_frames_get_a_clear_error_change_nothing_and_keep_the_connection(
        visitor, agent, raw, code, dynamodb_calls):
    agent()
    guest = visitor()
    conv = guest.start()
    guest.expect("assigned")
    dynamodb_calls.clear()
    guest.send_raw(raw.replace("abcdefgh12", conv))
    refusal = guest.expect("error")
    assert refusal["code"] == code and refusal["message"]
    assert not [c for c in dynamodb_calls if c not in ("GetItem", "Query")]
    assert guest.request({"action": "ping", "ref": "p"}, "pong")["ref"] == "p"
    assert guest.say(conv, "still works")["seq"] == 1


def test_error_echoes_the_ref_of_the_refused_frame(visitor):
    guest = visitor()
    guest.send({"action": "close", "conversation": "doesnotexist1", "ref": "r-17"})
    refusal = guest.expect("error")
    assert refusal["ref"] == "r-17" and refusal["code"] == "forbidden"


def test_wrong_password_is_refused_over_rest(stack, agent):
    from tests.support.client import http_error

    console = agent()
    assert http_error(lambda: Client.login(stack.gateway.http_url, console.agent_id, "wrong")) == 401
    assert http_error(lambda: Client.login(stack.gateway.http_url, "no-such-agent", "x" * 12)) == 401


def test_a_start_that_died_halfway_does_not_strand_the_visitor(visitor):
    from chalicelib.models import VisitorModel, visitor_key

    guest = visitor()
    V = VisitorModel
    V(visitor_key(guest.welcome["visitor"])).update(actions=[V.conv.set("neverwritten01")])
    again = visitor(token=guest.welcome["token"])
    assert again.welcome["conversation"] is None
    conv = again.start()
    assert conv != "neverwritten01"
    assert again.say(conv, "hello")["type"] == "ack"


def test_repeated_wrong_passwords_lock_sign_in_for_a_while(stack, agent):
    from tests.support.client import http_error

    console = agent()
    for _ in range(10):
        assert http_error(lambda: Client.login(stack.gateway.http_url, console.agent_id, "wrong")) == 401
    from tests.support.flows import PASSWORD

    assert http_error(lambda: Client.login(stack.gateway.http_url, console.agent_id, PASSWORD)) == 429
