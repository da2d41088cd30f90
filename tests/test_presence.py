"""Presence: a refresh keeps an agent's chats; an agent who is really gone hands them on."""

from __future__ import annotations

from chalicelib import clock, config
from chalicelib.models import META, AgentModel, ConversationModel, agent_key, conversation_key
from tests.support.client import eventually
from tests.support.clock import Clock


def _agent(agent_id):
    return AgentModel.get(agent_key(agent_id), META, consistent_read=True)


def test_refresh_within_grace_keeps_shift_and_chats(visitor, agent, stack):
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned")
    console.close()
    eventually(lambda: _agent(console.agent_id).due_pk == "GRACE")
    stack.gateway.run_schedules()  # the sweep runs, but the grace period has not ended
    refreshed = agent(agent_id=console.agent_id, shift=False)
    assert refreshed.welcome["agent"]["on_shift"] is True
    assert [c["id"] for c in refreshed.welcome["conversations"]] == [conv]
    assert _agent(console.agent_id).due_pk is None
    guest.say(conv, "still there?")
    assert refreshed.expect("message", conversation=conv)["text"] == "still there?"


def test_agent_gone_past_grace_goes_off_shift_and_chats_are_rerouted(visitor, agent, stack,
                                                                     monkeypatch):
    leaving = agent(max_chats=1)
    guest = visitor()
    conv = guest.start()
    leaving.expect("assigned")
    staying = agent(max_chats=1)
    leaving.close()
    eventually(lambda: _agent(leaving.agent_id).due_pk == "GRACE")

    later = clock.now_ms() + (config.settings().agent_grace_seconds + 1) * 1000
    Clock(monkeypatch, later)
    stack.gateway.run_schedules()

    gone = _agent(leaving.agent_id)
    assert gone.on_shift is False and not gone.convs and gone.s_pk is None
    assert guest.expect("requeued")["conversation"] == conv
    assert staying.expect("assigned")["conversation"] == conv
    stored = ConversationModel.get(conversation_key(conv), META, consistent_read=True)
    assert stored.agent_id == staying.agent_id and stored.status == "assigned"
    staying.say(conv, "Hi, I'm taking over.")
    assert guest.expect("message", conversation=conv)["from"]["role"] == "agent"


def test_disconnect_removes_the_connection_everywhere(visitor, agent):
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned")
    assert len(ConversationModel.get(conversation_key(conv), META).connections()) == 2
    guest.close()
    eventually(lambda: len(ConversationModel.get(conversation_key(conv), META,
                                                 consistent_read=True).connections()) == 1)


def test_an_off_shift_agent_who_leaves_still_hands_on_their_chats(visitor, agent, stack, monkeypatch):
    leaving = agent(max_chats=1)
    guest = visitor()
    conv = guest.start()
    leaving.expect("assigned")
    leaving.request({"action": "shift", "on": False}, "shift")  # finishing up, no new chats
    leaving.close()
    eventually(lambda: _agent(leaving.agent_id).due_pk == "GRACE")
    staying = agent(max_chats=1)
    later = clock.now_ms() + (config.settings().agent_grace_seconds + 1) * 1000
    Clock(monkeypatch, later)
    stack.gateway.run_schedules()
    assert staying.expect("assigned")["conversation"] == conv
