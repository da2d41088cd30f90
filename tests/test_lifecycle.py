"""A visitor and an agent talk end to end through the local gateway."""

from __future__ import annotations

from chalicelib.models import (
    META,
    AgentModel,
    ConversationModel,
    MessageModel,
    agent_key,
    conversation_key,
)


def test_whole_conversation_lifecycle(visitor, agent):
    console = agent(name="Ada")
    guest = visitor()
    assert guest.welcome["token"] and guest.welcome["conversation"] is None

    guest.send({"action": "start"})
    started = guest.expect("conversation")
    conv_id = started["conversation"]
    assert started["summary"]["status"] == "queued"
    assigned = console.expect("assigned")
    assert assigned["conversation"] == conv_id and assigned["summary"]["status"] == "assigned"
    assert guest.expect("assigned")["summary"]["agent"] == "Ada"

    ack = guest.say(conv_id, "Hello, is my order shipped?")
    assert ack["type"] == "ack" and ack["seq"] == 1
    got = console.expect("message", conversation=conv_id)
    assert got["text"] == "Hello, is my order shipped?" and got["from"]["role"] == "visitor"

    console.send({"action": "typing", "conversation": conv_id, "on": True})
    assert guest.expect("typing")["role"] == "agent"

    console.send({"action": "read", "conversation": conv_id, "seq": 1})
    assert guest.expect("read") == {"type": "read", "conversation": conv_id, "role": "agent",
                                    "seq": 1}
    reply = console.say(conv_id, "Yes, it left this morning.")
    assert reply["seq"] == 2
    got = guest.expect("message", conversation=conv_id)
    assert got["from"] == {"role": "agent", "name": "Ada"} and got["seq"] == 2

    conv = ConversationModel.get(conversation_key(conv_id), META, consistent_read=True)
    assert conv.status == "active" and conv.seq == 2
    assert [m.text for m in MessageModel.query(conv.pk, MessageModel.sk.startswith("MSG#"))] == [
        "Hello, is my order shipped?", "Yes, it left this morning."]
    assert AgentModel.get(agent_key(console.agent_id), META).load == 1

    guest.send({"action": "close", "conversation": conv_id})
    closed = console.expect("closed")
    assert closed["by"] == "visitor" and closed["summary"]["status"] == "closed"
    assert AgentModel.get(agent_key(console.agent_id), META).load == 0
    refused = guest.say(conv_id, "one more thing")
    assert refused["type"] == "error" and refused["code"] == "closed"
