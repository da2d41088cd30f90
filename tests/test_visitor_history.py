"""A visitor reads their own earlier conversations (the widget's history after a reload and
"Previous conversations"): ``past`` lists them, ``past_messages`` reads one. Real WebSocket
clients on the local stand-in; authorized by the visitor id of the token, never by the id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib import conversations
from chalicelib.models import META, ConversationModel
from chalicelib.protocol import FRAME_BUDGET, encode


def _expire(conv: str) -> None:
    """Move a conversation's expiry into the past (retention; DynamoDB deletes it some day)."""
    ConversationModel(f"CONV#{conv}", META).update(
        actions=[ConversationModel.ttl.set(datetime.now(UTC) - timedelta(days=1))])


def _chat(guest, console, text: str, closer=None) -> str:
    """One conversation with a line each way, then closed (by the agent unless ``closer``)."""
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    guest.say(conv, text)
    console.say(conv, f"answer to {text}")
    closer = closer or console
    closer.request({"action": "close", "conversation": conv}, "closed", conversation=conv)
    if closer is not guest:
        guest.expect("closed", conversation=conv)
    return conv


def test_after_a_reload_the_visitor_lists_and_reads_their_own_past_conversations(visitor, agent):
    console = agent()
    guest = visitor()
    first = _chat(guest, console, "first question")
    second = _chat(guest, console, "second question", closer=guest)

    # A reload: a new connection (not a participant of either chat), the same visitor token.
    back = visitor(token=guest.welcome["token"])
    assert back.welcome["conversation"] is None
    listed = back.request({"action": "past", "ref": "p1"}, "past")
    assert [s["id"] for s in listed["items"]] == [second, first]  # newest first
    assert listed["next"] is None and listed["ref"] == "p1"
    assert all(s["status"] == "closed" for s in listed["items"])
    assert listed["items"][1]["preview"]

    read = back.request({"action": "past_messages", "conversation": first}, "messages")
    assert read["conversation"] == first and read["summary"]["status"] == "closed"
    assert [(m["from"]["role"], m["text"]) for m in read["items"]] == [
        ("visitor", "first question"), ("agent", "answer to first question")]
    # Paged like sync: from a seq on.
    rest = back.request({"action": "past_messages", "conversation": first, "after": 1}, "messages")
    assert [m["seq"] for m in rest["items"]] == [2] and rest["more"] is False
    # Read only: the new connection has not joined the conversation.
    refused = back.request({"action": "send", "conversation": first, "id": "abcdef:1", "text": "hi"}, "error")
    assert refused["code"] in ("forbidden", "closed")


def test_another_visitor_or_an_agent_cannot_read_them(visitor, agent, new_site, stack, clients):
    from tests.support.client import Client

    console = agent()
    guest = visitor()
    conv = _chat(guest, console, "my private question")

    stranger = visitor()
    assert stranger.request({"action": "past"}, "past")["items"] == []
    denied = stranger.request({"action": "past_messages", "conversation": conv, "ref": "x"}, "error")
    assert denied["code"] == "forbidden" and denied["ref"] == "x"
    # The same answer as for an id that does not exist: nothing is revealed.
    unknown = stranger.request({"action": "past_messages", "conversation": "nonexistent1"}, "error")
    assert unknown["code"] == denied["code"] and unknown["message"] == denied["message"]
    # Agents have their own ways (context, history); these are the visitor's.
    assert console.request({"action": "past"}, "error")["code"] == "forbidden"
    assert console.request({"action": "past_messages", "conversation": conv}, "error")["code"] == "forbidden"
    # A visitor of another site with the same conversation id in hand gets nothing either.
    other = Client(stack.gateway.ws_url, {"site": new_site("other")})
    clients.append(other)
    other.request({"action": "hello"}, "welcome")
    assert other.request({"action": "past_messages", "conversation": conv}, "error")["code"] == "forbidden"
    # Bad input: a clear error, nothing else.
    bad = guest.request({"action": "past_messages", "conversation": conv, "after": -1}, "error")
    assert bad["code"] == "bad_frame" and "after" in bad["message"]
    assert guest.request({"action": "past", "cursor": "x" * 101}, "error")["code"] == "bad_frame"


def test_conversations_past_retention_are_not_served(visitor, agent):
    console = agent()
    guest = visitor()
    old = _chat(guest, console, "long ago")
    recent = _chat(guest, console, "yesterday")
    _expire(old)
    listed = guest.request({"action": "past"}, "past")
    assert [s["id"] for s in listed["items"]] == [recent]
    assert guest.request({"action": "past_messages", "conversation": old}, "error")["code"] == "forbidden"


def test_the_list_is_paged_newest_first_and_bounded(visitor, agent, monkeypatch):
    monkeypatch.setattr(conversations, "PAST_PAGE", 2)
    console = agent()
    guest = visitor()
    convs = [_chat(guest, console, f"question {n}") for n in range(3)]
    first = guest.request({"action": "past"}, "past")
    assert [s["id"] for s in first["items"]] == convs[::-1][:2]
    assert first["next"] == convs[1]
    second = guest.request({"action": "past", "cursor": first["next"]}, "past")
    assert [s["id"] for s in second["items"]] == [convs[0]] and second["next"] is None
    # A cursor that is not (or no longer) on the list: the end, not the start again.
    assert guest.request({"action": "past", "cursor": "gone"}, "past") == {"type": "past", "items": [],
                                                                          "next": None}
    assert len(encode(first)) <= FRAME_BUDGET
