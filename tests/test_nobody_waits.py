"""Nobody waits for nobody (issue 16): when no agent is left to answer, every waiting visitor
is told at once and may continue by email; an agent leaving hands chats back to the line.

Real WebSocket clients on the local stand-in; the fake clock (``tests.support.clock.Clock``) and
``run_schedules`` where a timer is involved; mail read back from the SES stand-in.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chalicelib import config, routing, sites, unattended
from chalicelib.hours import to_ms
from chalicelib.models import META, AgentModel, ConversationModel, SiteModel, agent_key, conversation_key
from tests.support.browser import screenshot, wait_until
from tests.support.client import eventually
from tests.support.clock import Clock

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = {"timezone": "Europe/Paris",
            "week": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}
MONDAY_5_58PM = to_ms(datetime(2026, 11, 30, 17, 58, tzinfo=PARIS))

# continue_by_email and the reply mails spend 127.0.0.1's mail allowance: give it back.
pytestmark = pytest.mark.usefixtures("address_counters")


def _conv(conv_id: str) -> ConversationModel:
    return ConversationModel.get(conversation_key(conv_id), META, consistent_read=True)


@pytest.fixture
def company(site):
    """The site as its team set it up: a name and a team address (never the site id)."""
    team = f"team-{site}@acme.example"
    sites.update(site, {"name": "Acme Bikes", "team_email": team})
    return team


def test_last_agent_off_shift_tells_every_waiting_visitor_at_once(visitor, agent, company):
    desk = agent(max_chats=1)
    served = visitor()
    served_conv = served.start()
    desk.expect("assigned", conversation=served_conv)
    first, second = visitor(), visitor()
    waiting = [first.start(), second.start()]
    assert first.expect("queued")["position"] == 1 and second.expect("queued")["position"] == 2
    for guest in (first, second):
        guest.quiet("no_agents", wait=0.2)  # an agent is on shift: nothing to say yet

    desk.request({"action": "shift", "on": False}, "shift")

    for guest, conv in zip((first, second), waiting, strict=True):
        told = guest.expect("no_agents", conversation=conv)
        assert told["message"] == unattended.DEFAULT_MESSAGE and told["email"] is None
    served.quiet("no_agents")  # the chat that has an agent goes on
    # Coming back while nobody is there: the welcome says so, and the offer follows it.
    again = visitor(token=first.welcome["token"])
    assert again.welcome["conversation"]["id"] == waiting[0]
    assert again.welcome["conversation"]["no_agents"] is True
    assert again.expect("no_agents")["conversation"] == waiting[0]


def test_a_visitor_who_starts_while_nobody_is_there_is_told_with_the_sites_message(visitor, site):
    # The offline message the console's Settings write (widget.offline_message); no agent.
    SiteModel("SITE", site).update(actions=[SiteModel.widget.set(
        '{"offline_message": "We are out riding. Leave your email and we write back today."}')])
    guest = visitor()
    conv = guest.start()
    told = guest.expect("no_agents", conversation=conv)
    assert told["message"] == "We are out riding. Leave your email and we write back today."
    assert site not in told["message"]
    guest.quiet("no_agents")  # once


def test_grace_end_requeues_honestly_and_offers_email(visitor, agent, stack, monkeypatch, company):
    clock = Clock(monkeypatch, MONDAY_5_58PM - 3600_000)
    desk = agent()
    guest = visitor()
    conv = guest.start()
    desk.expect("assigned", conversation=conv)
    desk.close()
    eventually(lambda: _conv(conv).connections_of("a:") == [])
    clock.advance(config.settings().agent_grace_seconds + 1)
    stack.gateway.run_schedules()
    requeued = guest.expect("requeued", conversation=conv)
    assert requeued["message"] == "Your agent had to leave."  # no "next one" who is not there
    assert guest.expect("no_agents", conversation=conv)["email"] is None
    stored = _conv(conv)
    assert stored.status == "queued" and stored.agent_id is None


def test_site_closing_by_its_hours_tells_the_waiting_visitors(visitor, agent, stack, monkeypatch, site):
    sites.update(site, {"hours": WEEKDAYS})
    clock = Clock(monkeypatch, MONDAY_5_58PM)
    desk = agent(max_chats=1)
    served = visitor()
    desk.expect("assigned", conversation=served.start())
    guest = visitor()
    conv = guest.start()
    guest.expect("queued")
    guest.quiet("no_agents", wait=0.2)
    clock.advance(3 * 60)  # 18:01: closed; the minute timer notices
    stack.gateway.run_schedules()
    assert guest.expect("no_agents", conversation=conv)["message"] == unattended.DEFAULT_MESSAGE
    stack.gateway.run_schedules()
    guest.quiet("no_agents")  # told once, not every minute


def test_continue_by_email_keeps_the_chat_and_the_next_agents_reply_is_mailed(
        visitor, agent, site, company, mailbox):
    guest = visitor()
    conv = guest.start()
    guest.expect("no_agents", conversation=conv)
    guest.say(conv, "My bike's gears slip on hills")
    guest.send({"action": "continue_by_email", "conversation": conv, "email": "rider@example.org"})
    answer = guest.expect("by_email", conversation=conv)
    assert answer["email"] == "rider@example.org"
    assert answer["summary"]["by_email"] is True and answer["summary"]["status"] == "queued"
    stored = _conv(conv)
    assert stored.by_email is True and stored.email == "rider@example.org" and stored.status == "queued"
    assert stored.email_key == f"{site}#rider@example.org"  # found by email, like any address

    guest.send({"action": "continue_by_email", "conversation": conv, "email": "rider@example.org"})
    guest.expect("by_email", conversation=conv)  # a resend is answered again...
    team = [e for e in mailbox(company) if "waiting for an answer by email" in e["subject"]]
    assert len(team) == 1  # ...and the team is mailed once
    assert team[0]["subject"] == "[Acme Bikes] A visitor is waiting for an answer by email"
    assert "rider@example.org" in team[0]["body"]["text"]
    assert "My bike's gears slip on hills" in team[0]["body"]["text"]

    desk = agent()  # the next agent on shift gets the kept chat, with its history
    assert desk.expect("assigned", conversation=conv)["summary"]["by_email"] is True
    page = desk.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [m["text"] for m in page["items"]] == ["My bike's gears slip on hills"]
    desk.say(conv, "Try tightening the derailleur cable half a turn.")
    # The visitor's tab is still open, but they chose email: the reply goes there.
    replies = [e for e in mailbox("rider@example.org") if "replied" in e["subject"]]
    assert len(replies) == 1
    text = replies[0]["body"]["text"]
    assert "Try tightening the derailleur cable half a turn." in text
    assert "Acme Bikes" in replies[0]["subject"] and "reply to this email" in text
    # The visitor's answer comes back into this chat (chalicelib.email_channel), not to the team.
    (reply_to,) = replies[0]["replyTo"]
    assert reply_to.startswith("reply+") and reply_to.endswith(f"@{config.settings().reply_domain}")
    # Done by email: the agent closes it, and the reason says it went on by email.
    desk.send({"action": "close", "conversation": conv})
    assert desk.expect("closed", conversation=conv)["summary"]["reason"] == "moved_to_email"


@pytest.mark.parametrize("address", ["not an address", "rider@", "rïder@example.org", "a@b"])
def test_continue_by_email_with_a_bad_address_is_refused_and_changes_nothing(visitor, site, address,
                                                                              mailbox):
    guest = visitor()
    conv = guest.start()
    guest.send({"action": "continue_by_email", "conversation": conv, "email": address, "ref": "e1"})
    refused = guest.expect("error", ref="e1")
    assert refused["code"] == "bad_email" and "email address" in refused["message"]
    stored = _conv(conv)
    assert stored.email is None and stored.by_email is None and stored.email_key is None
    guest.quiet("by_email")
    assert not [e for e in mailbox(config.settings().team_email) if "by email" in e["subject"]]


def test_another_visitor_cannot_move_a_chat_to_email(visitor, site):
    owner, stranger = visitor(), visitor()
    conv = owner.start()
    stranger.send({"action": "continue_by_email", "conversation": conv, "email": "x@example.org",
                   "ref": "s1"})
    assert stranger.expect("error", ref="s1")["code"] == "forbidden"
    assert _conv(conv).by_email is None


def test_handback_by_an_agent_who_does_not_hold_the_chat_is_refused(visitor, agent):
    owner = agent()
    guest = visitor()
    conv = guest.start()
    owner.expect("assigned", conversation=conv)
    outsider = agent()
    outsider.send({"action": "handback", "conversation": conv, "ref": "h1"})
    refused = outsider.expect("error", ref="h1")
    assert refused["code"] == "forbidden"
    stored = _conv(conv)
    assert stored.agent_id == owner.agent_id and stored.status in ("assigned", "active")
    guest.quiet("requeued")


def test_handback_puts_the_chat_at_the_front_of_the_line(visitor, agent, company):
    leaving = agent(max_chats=1)
    first = visitor()
    held = first.start()
    leaving.expect("assigned", conversation=held)
    later = visitor()
    behind = later.start()
    later.expect("queued")
    # The console's "Hand all back and sign out": off shift first (nothing new comes), then back.
    leaving.request({"action": "shift", "on": False}, "shift")
    later.expect("no_agents", conversation=behind)
    leaving.send({"action": "handback", "conversation": held})
    assert leaving.expect("requeued", conversation=held)["summary"]["status"] == "queued"
    assert first.expect("requeued", conversation=held)["message"] == "Your agent had to leave."
    assert first.expect("no_agents", conversation=held)
    assert first.expect("queued", conversation=held)["position"] == 1
    assert later.expect("queued", conversation=behind)["position"] == 2
    assert [c.id for c in routing.waiting(_conv(held).site)] == [held, behind]
    assert not AgentModel.get(agent_key(leaving.agent_id), META, consistent_read=True).convs  # slot freed
    taking = agent(max_chats=1)  # the next agent on shift gets the handed-back chat first
    assert taking.expect("assigned")["conversation"] == held


# ------------------------------------------------------------------ the console (Chromium)


def test_console_sign_out_with_open_chats_asks_and_hands_them_all_back(console, visitor, site):
    from playwright.sync_api import expect

    lea = console("Lea", max_chats=2)
    guests = [visitor(), visitor()]
    convs = [g.start() for g in guests]
    for g, conv in zip(guests, convs, strict=True):
        assert g.expect("assigned", conversation=conv)
    expect(lea.locator("#conversations li")).to_have_count(2)

    # Closing the tab now would strand them: the browser is asked to warn first.
    warned: list[str] = []
    lea.once("dialog", lambda d: (warned.append(d.type), d.dismiss()))
    lea.close(run_before_unload=True)
    wait_until(lea, lambda: warned == ["beforeunload"])
    assert not lea.is_closed()

    lea.click("#sign-out")
    dialog = lea.locator("#leaving")
    expect(dialog).to_be_visible()
    rows = dialog.locator("#leaving-list li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).get_by_role("button", name="Transfer")).to_be_visible()
    expect(rows.nth(0).get_by_role("button", name="Hand back to the line")).to_be_visible()
    expect(dialog.get_by_role("button", name="Cancel")).to_be_visible()
    screenshot(lea, "console-signout-open-chats")
    lea.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    for g in guests:
        g.quiet("requeued", wait=0.3)  # Cancel changed nothing

    lea.click("#sign-out")
    lea.get_by_role("button", name="Hand all back and sign out").click()
    expect(lea.locator("#login")).to_be_visible()
    for g, conv in zip(guests, convs, strict=True):
        assert g.expect("requeued", conversation=conv)["message"] == "Your agent had to leave."
        assert g.expect("no_agents", conversation=conv)  # nobody left on shift
    assert [c.id for c in routing.waiting(site)] == convs  # in their first order, at the front
    gone = AgentModel.get(agent_key(lea.agent_id), META, consistent_read=True)
    assert not gone.convs and gone.on_shift is False
