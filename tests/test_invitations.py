"""Invitations, rules, holding messages and the previews agents read (issue 16): an accepted
invitation opens the chat with its own text, rules fire on the page event and exactly once,
holding messages wait for real silence, and the waiting list shows what the visitor wrote."""

from __future__ import annotations

from chalicelib import clock
from chalicelib.models import META, ConversationModel, VisitorModel, conversation_key, plain_map, visitor_key
from tests.support.client import eventually
from tests.support.clock import Clock


def _conv(conv_id: str) -> ConversationModel:
    return ConversationModel.get(conversation_key(conv_id), META, consistent_read=True)


def _invite(inviter, guest, text: str) -> dict:
    inviter.request({"action": "invite", "visitor": guest.welcome["visitor"], "text": text}, "invited")
    return guest.expect("invitation")


def _line(console) -> list[tuple[str, str | None]]:
    """The newest non-empty waiting list the console was sent: (conversation, preview) each."""
    while True:
        items = console.expect("queue")["items"]
        if items and not any(f.get("type") == "queue" for f in console.backlog):
            return [(i["conversation"], i["preview"]) for i in items]


# ------------------------------------------------------------------ accepted invitations


def test_an_accepted_invitation_opens_the_chat_with_its_text_from_the_inviting_agent(visitor, agent):
    inviter = agent(name="Ines", max_chats=2)
    guest = visitor()
    card = _invite(inviter, guest, "Can I help you choose a size?")
    guest.send({"action": "invitation", "id": card["id"], "accept": True})
    conv = guest.expect("conversation")["conversation"]
    first = guest.expect("message", conversation=conv)
    assert first["seq"] == 1 and first["text"] == "Can I help you choose a size?"
    assert first["from"] == {"role": "agent", "name": "Ines"}
    assigned = inviter.expect("assigned", conversation=conv)["summary"]
    assert assigned["agent"] == "Ines" and assigned["preview"] == "Can I help you choose a size?"
    # the agent's console syncs what was written before it was theirs: the invitation is there
    history = inviter.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [(m["seq"], m["text"]) for m in history["items"]] == [(1, "Can I help you choose a size?")]
    # the visitor answers it; it is seq 2, and the invitation is no response in the figures
    assert guest.say(conv, "A 38 please")["seq"] == 2
    assert inviter.expect("message", conversation=conv)["seq"] == 2
    # a reload (resume) shows it too
    again = visitor(token=guest.welcome["token"])
    assert again.welcome["conversation"]["seq"] == 2
    resumed = again.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [m["text"] for m in resumed["items"]] == ["Can I help you choose a size?", "A 38 please"]
    owners = plain_map(_conv(conv).client_owners)
    assert owners and all(tag.startswith("v:") for tag in owners.values())  # no agent response yet


def test_clicking_accept_twice_opens_one_chat_with_one_invitation_line(visitor, agent):
    inviter = agent()
    guest = visitor()
    card = _invite(inviter, guest, "Hello from the team")
    guest.send({"action": "invitation", "id": card["id"], "accept": True, "ref": "a"})
    guest.send({"action": "invitation", "id": card["id"], "accept": True, "ref": "b"})
    conv = inviter.expect("assigned")["conversation"]
    assert guest.expect("error")["code"] == "not_found"
    stored = _conv(conv)
    assert int(stored.seq) == 1 and stored.preview == "Hello from the team"
    inviter.quiet("assigned", wait=0.3)
    assert guest.expect("conversation")["conversation"] == conv
    guest.quiet("conversation", wait=0.3)  # one chat, not two


def test_an_invitation_from_an_agent_off_shift_goes_to_the_line(visitor, agent):
    inviter = agent(name="Off", shift=False)
    waiting = agent(name="Busy", max_chats=1)
    visitor().start()
    waiting.expect("assigned")
    guest = visitor()
    card = _invite(inviter, guest, "Need a hand?")
    guest.send({"action": "invitation", "id": card["id"], "accept": True})
    conv = guest.expect("conversation")["conversation"]
    assert guest.expect("queued", conversation=conv)["position"] == 1
    assert _line(waiting) == [(conv, "Need a hand?")]
    inviter.quiet("assigned", wait=0.3)
    assert _conv(conv).status == "queued"


def test_a_rule_invitation_is_the_first_line_from_the_team(visitor, agent, admin):
    admin({"name": "Northwind", "console": {"rules": [
        {"id": "help", "text": "Questions about delivery?", "url_contains": "/delivery", "min_pages": 1}]}})
    console = agent()
    guest = visitor()
    guest.send({"action": "page", "url": "https://shop.example/delivery"})
    card = guest.expect("invitation")
    assert card["from"]["name"] == "Northwind"
    guest.send({"action": "invitation", "id": card["id"], "accept": True})
    conv = guest.expect("conversation")["conversation"]
    first = guest.expect("message", conversation=conv)
    assert (first["seq"], first["text"]) == (1, "Questions about delivery?")
    assert first["from"] == {"role": "agent", "name": "Northwind"}
    assert console.expect("assigned", conversation=conv)["summary"]["preview"] == "Questions about delivery?"


# ------------------------------------------------------------------ rules


def test_a_time_rule_fires_when_its_time_is_up_not_at_the_next_minute_timer(stack, visitor, agent, admin,
                                                                             monkeypatch):
    admin({"console": {"rules": [
        {"id": "pricing", "text": "Can I help you decide?", "url_contains": "/pricing", "min_seconds": 30}]}})
    frozen = Clock(monkeypatch, clock.now_ms())
    agent()
    guest = visitor()
    guest.send({"action": "page", "url": "https://shop.example/pricing"})
    assert guest.expect("rules_due")["in_ms"] == 30_000  # the page event says when to ask again
    frozen.advance(12)
    guest.send({"action": "rules"})
    assert guest.expect("rules_due")["in_ms"] == 18_000
    guest.quiet("invitation", wait=0.2)
    frozen.advance(18)
    guest.send({"action": "rules"})  # the widget asks at that moment: no minute timer needed
    card = guest.expect("invitation")
    assert card["text"] == "Can I help you decide?"
    guest.send({"action": "invitation", "id": card["id"], "accept": False})
    guest.expect("invitation_closed")
    frozen.advance(60)
    guest.send({"action": "rules"})
    stack.gateway.run_schedules()
    guest.quiet("invitation", wait=0.4)  # once per visit, whoever asks
    guest.quiet("rules_due", wait=0.1)
    other_page = visitor()
    other_page.send({"action": "page", "url": "https://shop.example/about"})
    other_page.send({"action": "rules"})
    other_page.quiet("rules_due", wait=0.4)  # no time rule matches that page: nothing to wait for


def test_an_invitation_that_went_to_a_closing_tab_reaches_the_next_page(stack, visitor, agent, admin,
                                                                        monkeypatch):
    """Once, an invitation never arrived: the minute timer sent it to the tab of the page the
    visitor was leaving; the rule had fired and the invitation was pending, so nothing ever
    showed it on the next page. Now every page event of the visit shows a pending one."""
    admin({"console": {"rules": [
        {"id": "cart", "text": "Questions about your order?", "url_contains": "/cart", "min_seconds": 20}]}})
    frozen = Clock(monkeypatch, clock.now_ms())
    agent()
    leaving = visitor()
    leaving.send({"action": "page", "url": "https://shop.example/cart"})
    leaving.expect("rules_due")
    frozen.advance(21)
    stack.gateway.run_schedules()  # the timer fires it, to the only tab open right now
    card = leaving.expect("invitation")
    leaving.close()  # ... which was being unloaded
    eventually(lambda: not VisitorModel.get(visitor_key(leaving.welcome["visitor"]), META,
                                            consistent_read=True).conns)
    arriving = visitor(token=leaving.welcome["token"])
    arriving.send({"action": "page", "url": "https://shop.example/checkout"})
    again = arriving.expect("invitation")
    assert again["id"] == card["id"] and again["text"] == "Questions about your order?"
    arriving.send({"action": "invitation", "id": again["id"], "accept": True})
    conv = arriving.expect("conversation")["conversation"]
    assert arriving.expect("message", conversation=conv)["text"] == "Questions about your order?"


# ------------------------------------------------------------------ the waiting list's preview


def test_the_waiting_list_shows_the_first_line_a_start_carries(visitor, agent):
    """The widget's first line used to follow its ``start`` as a ``send``: the line the agents
    were sent was built before it was written, and said "No message yet" until something else
    moved the line. A ``start`` that carries it stores it first."""
    busy = agent(name="Busy", max_chats=1)
    visitor().start()
    busy.expect("assigned")
    guest = visitor()
    guest.send({"action": "start", "text": "Do you ship to Lyon?", "id": f"{guest.client_id}:1"})
    conv = guest.expect("conversation")["conversation"]
    ack = guest.expect_reply(f"{guest.client_id}:1")
    assert ack["type"] == "ack" and ack["seq"] == 1 and ack["conversation"] == conv
    assert guest.expect("queued", conversation=conv)["position"] == 1
    assert _line(busy) == [(conv, "Do you ship to Lyon?")]
    # a resent start (its answer lost): the same chat, the line acked again, stored once
    guest.send({"action": "start", "text": "Do you ship to Lyon?", "id": f"{guest.client_id}:1"})
    assert guest.expect("conversation")["conversation"] == conv
    assert guest.expect_reply(f"{guest.client_id}:1")["seq"] == 1
    assert int(_conv(conv).seq) == 1
    # the agent who takes it reads it
    ada = agent(name="Ada", shift=False)
    assert [i["preview"] for i in ada.welcome["queue"]] == ["Do you ship to Lyon?"]
    ada.request({"action": "accept", "conversation": conv}, "assigned", conversation=conv)
    page = ada.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [m["text"] for m in page["items"]] == ["Do you ship to Lyon?"]


def test_a_start_with_half_a_first_line_is_refused_and_writes_nothing(visitor):
    guest = visitor()
    guest.send({"action": "start", "text": "Hello", "ref": "s"})
    assert guest.expect("error")["code"] == "bad_frame"
    guest.send({"action": "start", "id": "nottheformat", "text": "Hello", "ref": "s2"})
    assert guest.expect("error")["code"] == "bad_frame"
    guest.send({"action": "start", "id": f"{guest.client_id}:1", "text": "   ", "ref": "s3"})
    assert guest.expect("error")["code"] == "bad_frame"
    guest.quiet("conversation", wait=0.3)
    assert VisitorModel.get(visitor_key(guest.welcome["visitor"]), META, consistent_read=True).conv is None


# ------------------------------------------------------------------ holding messages

HOLD = "Your agent is looking into your question."


def _holding(admin, seconds: int = 60) -> None:
    admin({"console": {"holding": {"enabled": True, "after_seconds": seconds, "text": HOLD}}})


def test_no_holding_message_the_moment_a_chat_that_waited_is_assigned(stack, visitor, agent, admin,
                                                                       monkeypatch):
    _holding(admin)
    frozen = Clock(monkeypatch, clock.now_ms())
    busy = agent(name="Busy", max_chats=1)
    visitor().start()
    busy.expect("assigned")
    guest = visitor()
    conv = guest.start()
    guest.expect("queued", conversation=conv)
    guest.say(conv, "Is the blue one in stock?")
    frozen.advance(300)  # five minutes in line
    ada = agent(name="Ada")
    ada.expect("assigned", conversation=conv)
    stack.gateway.run_schedules()
    guest.quiet("message", wait=0.4, conversation=conv)  # Ada has not even looked yet
    frozen.advance(59)
    stack.gateway.run_schedules()
    guest.quiet("message", wait=0.3, conversation=conv)
    frozen.advance(2)  # 61 s of silence since the chat became Ada's
    stack.gateway.run_schedules()
    held = guest.expect("message", conversation=conv)
    assert held["text"] == HOLD and held["from"]["role"] == "system"
    # the chat's preview is still the visitor's question, for the lists and the reports
    stored = _conv(conv)
    assert stored.preview == "Is the blue one in stock?" and int(stored.holds) == 1
    page = ada.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert page["summary"]["preview"] == "Is the blue one in stock?"
    assert [m["from"]["role"] for m in page["items"]] == ["visitor", "system"]


def test_silence_counts_from_the_visitors_last_line_and_none_for_a_visitor_gone(stack, visitor, agent,
                                                                                admin, monkeypatch):
    _holding(admin)
    frozen = Clock(monkeypatch, clock.now_ms())
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    frozen.advance(120)
    guest.say(conv, "Hello?")
    frozen.advance(50)
    stack.gateway.run_schedules()
    guest.quiet("message", wait=0.3, conversation=conv)  # 50 s after the line, not 170 s
    frozen.advance(11)
    stack.gateway.run_schedules()
    assert guest.expect("message", conversation=conv)["text"] == HOLD

    # another chat whose visitor closed every tab: nobody would read it
    other = visitor()
    gone = other.start()
    console.expect("assigned", conversation=gone)
    other.say(gone, "Are you there?")
    console.expect("message", conversation=gone)
    other.close()
    eventually(lambda: _conv(gone).v_left_at is not None)
    frozen.advance(120)
    stack.gateway.run_schedules()
    console.quiet("message", wait=0.4, conversation=gone)
    assert int(_conv(gone).seq) == 1 and not _conv(gone).holds


# ------------------------------------------------------------------ the transcript's address


def test_the_address_a_visitor_gives_for_a_transcript_is_kept_on_the_chat(stack, site, visitor, agent):
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    guest.say(conv, "Where is my parcel?")
    guest.request({"action": "close", "conversation": conv}, "closed")
    ask = {"action": "transcript", "conversation": conv, "id": "req-keep", "email": "Lena@Example.org"}
    assert guest.request(ask, "transcript_queued")["email"] == "Lena@example.org"
    stored = _conv(conv)
    assert stored.email == "Lena@example.org" and stored.email_key == f"{site}#lena@example.org"
    # the team finds the chat by it
    found = [c.pk for c in ConversationModel.email_index.query(f"{site}#lena@example.org")]
    assert found == [stored.pk]
    # one address per chat: a second request elsewhere does not replace it; the agent's own
    # requests never change it either
    other = guest.request({**ask, "id": "req-other", "email": "someone@example.org"}, "transcript_queued")
    assert other["email"] == "someone@example.org"
    console.request({"action": "transcript", "conversation": conv, "id": "agent-keep"}, "transcript_queued")
    assert _conv(conv).email == "Lena@example.org"
    bad = guest.request({**ask, "id": "req-bad", "email": "not an address", "ref": "b"}, "error")
    assert bad["code"] == "bad_frame" and _conv(conv).email == "Lena@example.org"


def test_a_transcript_request_never_replaces_the_pre_chat_address(visitor, agent):
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "email": "first@example.org"})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    guest.request({"action": "transcript", "conversation": conv, "id": "req-pre",
                   "email": "second@example.org"}, "transcript_queued")
    assert _conv(conv).email == "first@example.org"
