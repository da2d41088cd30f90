"""The agent console's backend: holding messages, notes, transfers, away, overview, history,
live visitors, invitation rules, snippets and transcripts."""

from __future__ import annotations

import secrets
import urllib.request

import pytest

from chalicelib import agents, config
from chalicelib.models import META, AgentModel, agent_key
from tests.support.client import Client, confirmation_link, rest
from tests.support.clock import Clock
from tests.support.flows import PASSWORD, start_chat


def test_holding_message_after_the_configured_wait_once_per_wait(stack, visitor, agent, admin,
                                                                  monkeypatch):
    admin({"console": {"holding": {"enabled": True, "after_seconds": 60,
                                   "text": "Your agent is researching your question."}}})
    guest, console, conv = start_chat(visitor, agent)
    frozen = Clock(monkeypatch)
    guest.say(conv, "Which plan fits a team of 12?")
    frozen.advance(30)
    stack.gateway.run_schedules()
    guest.quiet("message", wait=0.3)
    frozen.advance(31)
    stack.gateway.run_schedules()
    held = guest.expect("message", conversation=conv)
    assert held["text"] == "Your agent is researching your question." and held["from"]["role"] == "system"
    assert console.expect("message", conversation=conv, seq=2)["from"]["role"] == "system"
    frozen.advance(120)
    stack.gateway.run_schedules()
    guest.quiet("message", wait=0.3)  # once per wait, not once per minute
    console.say(conv, "The Team plan.")
    guest.say(conv, "And the price?")
    frozen.advance(61)
    stack.gateway.run_schedules()
    assert guest.expect("message", conversation=conv, seq=5)["from"]["role"] == "system"


def test_transfer_with_a_note_moves_chat_history_and_capacity(visitor, agent):
    guest, first, conv = start_chat(visitor, agent, max_chats=2)
    guest.say(conv, "I want to change my billing address")
    first.expect("message", conversation=conv)
    second = agent(max_chats=2)
    first.send({"action": "transfer", "conversation": conv, "to": second.agent_id,
                "note": "Billing question, already verified identity"})
    offer = second.expect("transfer_offer")
    assert offer["conversation"] == conv and offer["note"]["text"].startswith("Billing question")
    second.send({"action": "transfer_answer", "conversation": conv, "accept": True})
    assert second.expect("assigned")["conversation"] == conv
    assert first.expect("transferred")["to"]["id"] == second.agent_id
    notice = guest.expect("message", conversation=conv, seq=2)
    assert notice["from"]["role"] == "system" and second.welcome["agent"]["name"] in notice["text"]
    history = second.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert history["items"][0]["text"] == "I want to change my billing address"
    notes = second.request({"action": "notes", "conversation": conv}, "notes")
    assert [n["text"] for n in notes["items"]] == ["Billing question, already verified identity"]
    guest.quiet("note")  # private
    assert AgentModel.get(agent_key(first.agent_id), META, consistent_read=True).load == 0
    assert AgentModel.get(agent_key(second.agent_id), META, consistent_read=True).load == 1
    denied = first.say(conv, "still me?")
    assert denied["type"] == "error" and denied["code"] == "forbidden"
    second.say(conv, "Hi, I can help with billing.")
    reply = guest.expect("message", conversation=conv, seq=3)
    assert reply["from"]["name"] == second.welcome["agent"]["name"]


def test_a_declined_transfer_returns_and_changes_nothing(visitor, agent):
    guest, first, conv = start_chat(visitor, agent)
    second = agent()
    first.send({"action": "transfer", "conversation": conv, "to": second.agent_id})
    second.expect("transfer_offer")
    second.send({"action": "transfer_answer", "conversation": conv, "accept": False})
    assert first.expect("transfer_declined")["by"] == second.agent_id
    assert first.say(conv, "Still with you")["type"] == "ack"
    assert guest.expect("message", conversation=conv)["text"] == "Still with you"
    second.send({"action": "transfer_answer", "conversation": conv, "accept": True})
    assert second.expect("error")["code"] == "not_found"


def test_a_transfer_does_not_tell_whether_another_sites_agent_exists(visitor, agent, new_site):
    _guest, first, conv = start_chat(visitor, agent)
    elsewhere = f"x{secrets.token_hex(4)}"
    agents.create(elsewhere, "Elsewhere", PASSWORD, site=new_site("other"))
    answers = []
    for to in (elsewhere, f"nobody{secrets.token_hex(3)}"):
        first.send({"action": "transfer", "conversation": conv, "to": to})
        error = first.expect("error")
        answers.append((error["code"], error["message"]))
    assert answers[0] == answers[1] == ("not_found", "No such agent.")


def test_away_agents_get_no_new_chats_and_visitors_see_nobody(visitor, agent):
    console = agent()
    console.request({"action": "away", "on": True}, "shift")
    guest = visitor()
    assert guest.welcome["status"]["online"] is False
    guest.start()
    console.quiet("assigned", wait=0.5)
    console.request({"action": "away", "on": False}, "shift")
    assert console.expect("assigned")


def test_supervisor_overview_and_history_search(visitor, agent, admin, stack, site):
    guest, console, conv = start_chat(visitor, agent)
    waiting_guest = visitor()
    lead = agent(agent_id=admin.agent_id, shift=False)
    view = lead.request({"action": "overview"}, "overview")
    mine = [a for a in view["agents"] if a["id"] == console.agent_id]
    assert mine and mine[0]["load"] == 1 and conv in [c["id"] for c in view["conversations"]]
    assert view["queue_length"] == 0
    console.send({"action": "overview"})
    assert console.expect("error")["code"] == "forbidden"
    guest.send({"action": "start", "email": "x@example.org"})
    guest.expect("conversation")
    guest.say(conv, "My parcel to Lyon is late")
    guest.request({"action": "close", "conversation": conv}, "closed")
    found = lead.request({"action": "history", "text": "parcel to lyon"}, "history")
    assert [c["id"] for c in found["items"]] == [conv]
    assert lead.request({"action": "history", "text": "nothing like this"}, "history")["items"] == []
    assert waiting_guest.welcome["conversation"] is None


def test_live_visitors_and_rules_that_invite_automatically(visitor, agent, admin, stack, monkeypatch):
    admin({"console": {"rules": [
        {"id": "products", "text": "Comparing products? We can help.", "url_contains": "/products/",
         "min_pages": 2},
        {"id": "pricing", "text": "Can I help you decide?", "url_contains": "/pricing", "min_seconds": 30}]}})
    console = agent()
    browsing = visitor()
    browsing.send({"action": "page", "url": "https://shop.example/products/a"})
    browsing.send({"action": "page", "url": "https://shop.example/products/b"})
    card = browsing.expect("invitation")
    assert card["text"] == "Comparing products? We can help."
    browsing.send({"action": "invitation", "id": card["id"], "accept": False})
    browsing.expect("invitation_closed")  # (while it is open, each page event shows it again)
    browsing.send({"action": "page", "url": "https://shop.example/products/c"})
    browsing.quiet("invitation", wait=0.5)  # that rule fired once this visit
    live = console.request({"action": "visitors"}, "visitors")
    me = [v for v in live["items"] if v["visitor"] == browsing.welcome["visitor"]]
    assert me and me[0]["page"]["url"] == "https://shop.example/products/c" and len(me[0]["pages"]) == 3

    frozen = Clock(monkeypatch)
    pricing = visitor()
    pricing.send({"action": "page", "url": "https://shop.example/pricing", "ref": "p"})
    pricing.request({"action": "ping", "ref": "sync"}, "pong", ref="sync")
    stack.gateway.run_schedules()
    pricing.quiet("invitation", wait=0.3)  # not 30 s yet
    frozen.advance(31)
    stack.gateway.run_schedules()
    card = pricing.expect("invitation")
    assert card["text"] == "Can I help you decide?"
    pricing.send({"action": "invitation", "id": card["id"], "accept": True})
    assert console.expect("assigned")


def test_snippets_reach_the_console_and_bad_settings_are_refused(agent, admin, stack, site):
    admin({"console": {"snippets": [{"shortcut": "hours", "text": "We are open 9 to 6."}]}})
    console = agent()
    assert console.welcome["snippets"] == [{"shortcut": "hours", "text": "We are open 9 to 6."}]
    token = Client.login(stack.gateway.http_url, admin.agent_id, PASSWORD)
    bad = rest(stack.gateway.http_url, "PUT", f"/sites/{site}",
               {"console": {"snippets": [{"shortcut": "Has Space", "text": "x"}]}}, token)
    assert bad[0] == 400 and "console.snippets" in bad[1]["message"]


def test_transcript_is_emailed_when_the_chat_closes(visitor, agent, stack, mailbox):
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "email": "tina@example.org", "name": "Tina"})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned")
    guest.say(conv, "Thanks for the help")
    console.say(conv, "You're welcome!")
    guest.request({"action": "close", "conversation": conv, "transcript": True}, "closed")
    # The visitor's address is confirmed by the link first (no chat text in that mail).
    (note,) = mailbox("tina@example.org")
    assert "Thanks for the help" not in note["body"]["text"]
    with urllib.request.urlopen(confirmation_link(note), timeout=10) as page:
        assert page.status == 200
    (_, mail) = mailbox("tina@example.org")
    assert "Thanks for the help" in mail["body"]["text"] and "You're welcome!" in mail["body"]["text"]
    assert config.settings().mail_from in mail["from"]


def test_visitor_context_for_the_agent(visitor, agent):
    console = agent()
    guest = visitor()
    guest.send({"action": "page", "url": "https://shop.example/", "referrer": "https://search.example/q",
                "tz": "Europe/Berlin"})
    guest.request({"action": "ping", "ref": "p1"}, "pong", ref="p1")
    first = guest.start()
    console.expect("assigned")
    guest.request({"action": "close", "conversation": first}, "closed")
    second = guest.start()
    console.expect("assigned", conversation=second)
    guest.send({"action": "page", "url": "https://shop.example/cart"})
    console.expect("page", url="https://shop.example/cart")
    seen = console.request({"action": "context", "conversation": second}, "context")
    assert seen["page"]["url"] == "https://shop.example/cart" and len(seen["pages"]) == 2
    assert seen["referrer"] == "https://search.example/q" and seen["timezone"] == "Europe/Berlin"
    assert seen["user_agent"] and [p["id"] for p in seen["past"]] == [first]
    other = agent()
    other.send({"action": "context", "conversation": second})
    assert other.expect("error")["code"] == "forbidden"


def test_only_allowed_origins_may_connect_once_a_site_lists_them(stack, site, admin):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    admin({"console": {"origins": ["https://shop.example"]}})
    url = f"{stack.gateway.ws_url}?site={site}"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, origin="https://evil.example", open_timeout=5)
    assert refused.value.response.status_code == 403
    with connect(url, origin="https://shop.example", open_timeout=5) as ok:
        ok.send('{"action": "ping", "ref": "o"}')
        assert '"pong"' in ok.recv(timeout=5)


def test_admins_manage_the_team_and_a_revoked_agent_is_signed_out_everywhere(stack, site, admin, agent):
    http = stack.gateway.http_url
    token = Client.login(http, admin.agent_id, PASSWORD)
    status, created = rest(http, "POST", f"/sites/{site}/agents",
                           {"id": f"new{secrets.token_hex(3)}", "name": "Newbie", "password": PASSWORD,
                            "max_chats": 2}, token)
    assert status == 201 and created["max_chats"] == 2
    status, changed = rest(http, "PATCH", f"/sites/{site}/agents/{created['id']}", {"max_chats": 3}, token)
    assert status == 200 and changed["max_chats"] == 3
    console = agent(agent_id=created["id"])
    member_token = console.token
    status, team = rest(http, "GET", f"/sites/{site}/agents", token=member_token)
    assert status == 200 and {a["id"] for a in team["agents"]} >= {created["id"], admin.agent_id}
    assert rest(http, "POST", f"/sites/{site}/agents", {"id": "x1", "name": "x", "password": PASSWORD},
                member_token)[0] == 403
    assert rest(http, "DELETE", f"/sites/{site}/agents/{created['id']}", token=token)[0] == 204
    from websockets.exceptions import ConnectionClosed

    with pytest.raises(ConnectionClosed):
        for _ in range(50):
            console.ws.recv(timeout=5)
    from tests.support.client import http_error

    assert http_error(lambda: Client.login(http, created["id"], PASSWORD)) == 401
    assert rest(http, "GET", f"/sites/{site}/agents", token=member_token)[0] == 403


def test_an_offer_survives_a_reload_and_lapses_if_never_answered(visitor, agent, monkeypatch):
    _guest, first, conv = start_chat(visitor, agent)
    second = agent()
    third = agent()
    first.send({"action": "transfer", "conversation": conv, "to": second.agent_id})
    second.expect("transfer_offer")
    reloaded = agent(agent_id=second.agent_id, shift=False)
    assert [o["conversation"] for o in reloaded.welcome["offers"]] == [conv]
    first.send({"action": "transfer", "conversation": conv, "to": third.agent_id})
    assert first.expect("error")["code"] == "conflict"  # one offer at a time...
    frozen = Clock(monkeypatch)
    frozen.advance(61)
    first.send({"action": "transfer", "conversation": conv, "to": third.agent_id})
    assert third.expect("transfer_offer")["conversation"] == conv  # ...until it lapses


def test_rules_do_not_invite_when_nobody_can_answer(visitor, admin):
    admin({"console": {"rules": [{"id": "any", "text": "Hi!", "url_contains": "/", "min_pages": 1}]}})
    guest = visitor()  # no agent on shift: offline
    guest.send({"action": "page", "url": "https://shop.example/products/a"})
    guest.quiet("invitation", wait=0.7)


def test_overview_and_holding_cover_away_agents(stack, visitor, agent, admin, monkeypatch):
    admin({"console": {"holding": {"enabled": True, "after_seconds": 15, "text": "One moment please."}}})
    guest, console, conv = start_chat(visitor, agent)
    console.request({"action": "away", "on": True}, "shift")
    lead = agent(agent_id=admin.agent_id, shift=False)
    view = lead.request({"action": "overview"}, "overview")
    assert conv in [c["id"] for c in view["conversations"]]
    frozen = Clock(monkeypatch)
    guest.say(conv, "hello?")
    frozen.advance(16)
    stack.gateway.run_schedules()
    assert guest.expect("message", conversation=conv, seq=2)["text"] == "One moment please."
