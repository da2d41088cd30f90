"""The "Messages" inbox (chalicelib/inbox.py): an offline message, left over REST or with the
widget's ``leave_message``, is a conversation on the email channel that agents list, take,
answer (by email: the SES stand-in's mailbox shows it) and close; reports count it apart.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta

import pytest

from chalicelib import clock, inbox, reports
from chalicelib.protocol import MAX_TEXT_CHARS, encode
from chalicelib.store import META, ConversationModel, conversation_key
from tests.support.client import rest
from tests.support.flows import member_token, site_settings

# Every REST call of the stand-in comes from 127.0.0.1: its allowance is put back afterwards.
pytestmark = pytest.mark.usefixtures("address_counters")


@pytest.fixture
def roomy(app_settings):
    """Enough of the per-visitor and per-network allowances for a test's few messages."""
    app_settings(offline_per_ip_per_hour=50, offline_per_visitor_per_hour=10,
                 mail_per_network_per_hour=100)


def _leave_over_rest(stack, site, email, text, name=None):
    doc = {"site": site, "email": email, "text": text, **({"name": name} if name else {})}
    status, body = rest(stack.gateway.http_url, "POST", "/offline", doc)
    assert status == 202, body
    return body["id"]


def _inbox(console, **frame):
    return console.request({"action": "inbox", **frame}, "inbox")


def test_a_message_left_is_listed_taken_answered_by_email_and_closed(stack, site, roomy, visitor, agent,
                                                                     mailbox):
    tag = secrets.token_hex(3)
    _leave_over_rest(stack, site, f"rita-{tag}@example.org", "My card is blocked", name="Rita")
    guest = visitor()
    guest.send({"action": "leave_message", "email": f"will-{tag}@example.org", "text": "A statement, please",
                "ref": "m1"})
    assert guest.expect("message_left")["ref"] == "m1"

    ada = agent(name="Ada", shift=False)
    listed = _inbox(ada)
    # newest first
    assert [i["preview"] for i in listed["items"]] == ["A statement, please", "My card is blocked"]
    assert listed["more"] is False and listed["after"] is None
    rita = listed["items"][1]
    assert (rita["name"], rita["email"]) == ("Rita", f"rita-{tag}@example.org")
    conv = listed["items"][0]["conversation"]
    assert ada.request({"action": "queue"}, "queue")["items"] == []  # not in the live line

    ada.send({"action": "take", "conversation": conv, "ref": f"take:{conv}"})
    taken = ada.expect("assigned", conversation=conv)["summary"]
    assert taken["channel"] == "email" and taken["status"] == "assigned"
    assert taken["email"] == f"will-{tag}@example.org" and taken["seq"] == 1
    after = ada.expect("inbox")
    assert [i["preview"] for i in after["items"]] == ["My card is blocked"]

    bo = agent(name="Bo", shift=False)
    bo.send({"action": "take", "conversation": conv, "ref": f"take:{conv}"})
    refused = bo.expect("error", ref=f"take:{conv}")
    assert refused["code"] == "conflict"

    ada.say(conv, "Your statement is attached to your account page.")
    replies = [m for m in mailbox(f"will-{tag}@example.org") if "replied" in m["subject"]]
    assert len(replies) == 1
    assert "Your statement is attached to your account page." in replies[0]["body"]["text"]

    # The visitor who comes back sees the thread among their conversations, marked as email.
    past = guest.request({"action": "past"}, "past")
    (mine,) = [c for c in past["items"] if c["id"] == conv]
    assert mine["channel"] == "email"
    thread = guest.request({"action": "past_messages", "conversation": conv}, "messages")
    assert [m["text"] for m in thread["items"]] == ["A statement, please",
                                                     "Your statement is attached to your account page."]

    closed = ada.request({"action": "close", "conversation": conv}, "closed")
    assert closed["summary"]["status"] == "closed" and closed["summary"]["reason"] == "resolved"
    assert [i["preview"] for i in _inbox(ada)["items"]] == ["My card is blocked"]
    ada.send({"action": "take", "conversation": conv, "ref": f"take:{conv}"})
    assert ada.expect("error", ref=f"take:{conv}")["code"] == "conflict"

    # Reports: one email conversation, answered (its first reply counted), apart from chats.
    today = date.today()
    totals = reports.report(site, today - timedelta(days=1), today + timedelta(days=1))["totals"]
    assert totals["email_conversations"] == 1 and totals["chat_conversations"] == 0
    assert totals["email_answer_avg_s"] is not None and totals["first_response_median_s"] is not None
    csv = reports.to_csv(reports.report(site, today - timedelta(days=1), today + timedelta(days=1)))
    header, *rows = csv.splitlines()
    assert "email_conversations" in header.split(",")
    total = dict(zip(header.split(","), rows[-1].split(","), strict=True))
    assert total["email_conversations"] == "1"


def test_the_team_notification_follows_the_site_setting_the_receipt_always_goes(stack, site, roomy,
                                                                                agent, mailbox):
    put = site_settings(stack, site)
    team = f"team-{site}@bank.example"
    assert put({"team_email": team})["console"]["notify_team"] is True
    _leave_over_rest(stack, site, "first@example.org", "Told to the team")
    (told,) = mailbox(team)
    assert "Told to the team" in told["body"]["text"]
    put({"console": {"notify_team": False}})
    _leave_over_rest(stack, site, "second@example.org", "Only in the console")
    assert len(mailbox(team)) == 1  # still only the first
    assert len(mailbox("second@example.org")) == 1  # the visitor's receipt
    ada = agent(shift=False)
    assert [i["preview"] for i in _inbox(ada)["items"]] == ["Only in the console", "Told to the team"]
    _, token = member_token(stack, site)
    status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}", {"console": {"notify_team": "no"}},
                        token)
    assert status == 400 and "notify_team" in body["message"]


def test_the_inbox_is_one_bounded_page_at_a_time_newest_first(stack, site, agent):
    now = clock.now_ms()
    total = inbox.INBOX_PAGE + 3
    for n in range(total):
        inbox.open_message(site, visitor_id=None, email=f"p{n}@example.org", name=None, page=None,
                           text=f"message {n}", now=now - (total - n) * 1000)
    ada = agent(shift=False)
    first = _inbox(ada)
    assert len(first["items"]) == inbox.INBOX_PAGE and first["more"] is True
    assert first["items"][0]["preview"] == f"message {total - 1}"
    second = _inbox(ada, cursor=first["cursor"])
    assert second["after"] == first["cursor"] and second["more"] is False
    assert [i["preview"] for i in second["items"]] == ["message 2", "message 1", "message 0"]


def test_the_text_budget_holds_for_the_message_its_preview_and_the_page(stack, site, roomy, agent):
    status, refused = rest(stack.gateway.http_url, "POST", "/offline",
                           {"site": site, "email": "long@example.org", "text": "x" * (MAX_TEXT_CHARS + 1)})
    assert status == 400 and refused["code"] == "bad_text"
    widest = "\U0001F600" * MAX_TEXT_CHARS  # four UTF-8 bytes each: the byte budget's worst case
    for _ in range(3):
        _leave_over_rest(stack, site, "wide@example.org", widest)
    ada = agent(shift=False)
    page = _inbox(ada)
    assert len(page["items"]) == 3  # nothing from the refused one
    assert all(len(i["preview"]) == inbox.PREVIEW_CHARS for i in page["items"])
    assert len(encode(page)) < 32 * 1024
    stored = ConversationModel.get(conversation_key(page["items"][0]["conversation"]), META,
                                   consistent_read=True)
    assert stored.channel == "email" and stored.q_pk == f"INBOX#{site}"


def test_the_console_shows_messages_and_the_reply_goes_by_email(stack, site, roomy, console, mailbox):
    from playwright.sync_api import expect

    from tests.support.browser import take_and_reply

    _leave_over_rest(stack, site, "cleo@example.org", "<b>Is the branch open Sunday?</b>", name="Cleo")
    ada = console("Ada", shift=False)
    item = ada.locator("#inbox [data-testid=inbox-item]")
    expect(item).to_have_count(1)
    expect(item.locator(".preview")).to_have_text("<b>Is the branch open Sunday?</b>")  # text, not HTML
    expect(item).to_contain_text("Cleo")
    expect(ada.locator("#inbox-count")).to_have_text("1")
    chat = take_and_reply(ada, "Yes, from 10 to 16.")
    expect(ada.locator('#messages [data-seq="1"]')).to_have_text("<b>Is the branch open Sunday?</b>")
    expect(ada.locator("[data-testid=by-email]")).to_be_visible()
    replies = [m for m in mailbox("cleo@example.org") if "replied" in m["subject"]]
    assert [m["body"]["text"].splitlines()[0] for m in replies] == ["Yes, from 10 to 16."]
    ada.click("[data-testid=conv-close]")
    expect(ada.locator("[data-testid=conv-close]")).to_have_text("Remove from list")  # closed
    assert ConversationModel.get(conversation_key(chat.get_attribute("data-conversation")), META,
                                 consistent_read=True).status == "closed"


def test_a_returning_visitor_sees_the_emailed_thread_in_the_widget(stack, site, roomy, agent, open_page,
                                                                   mailbox):
    from playwright.sync_api import expect

    from tests.support.browser import leave_message, w

    page = open_page("/")
    leave_message(page, "tess@example.org", "Do you deliver?")  # nobody on shift: the form
    ada = agent(shift=False)
    conv = _inbox(ada)["items"][0]["conversation"]
    ada.send({"action": "take", "conversation": conv, "ref": f"take:{conv}"})
    ada.expect("assigned", conversation=conv)
    ada.say(conv, "Yes, every weekday.")
    assert [m for m in mailbox("tess@example.org") if "replied" in m["subject"]]

    agent(name="Bo")  # someone on shift now: the widget's start view, with the earlier ones
    page.reload()
    if not w(page, ".panel").is_visible():
        w(page, ".launcher").click()
    past = w(page, "h3:has-text('Previous conversations') + ul button")
    expect(past).to_have_count(1)
    expect(past).to_contain_text("\u2709")  # marked as by email
    expect(past).to_contain_text("Do you deliver?")
    past.click()
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("Yes, every weekday.")
    expect(w(page, '.log [data-seq="1"] .t')).to_have_text("Do you deliver?")


def test_a_taken_message_gets_no_holding_message_a_chat_beside_it_does(stack, site, roomy, visitor, agent,
                                                                       admin, monkeypatch):
    from tests.support.clock import Clock
    from tests.support.flows import start_chat

    admin({"console": {"holding": {"enabled": True, "after_seconds": 60, "text": "One moment, please."}}})
    _leave_over_rest(stack, site, "hold@example.org", "Nobody reads a holding line here")
    guest, ada, chat = start_chat(visitor, agent, max_chats=3)
    conv = _inbox(ada)["items"][0]["conversation"]
    ada.send({"action": "take", "conversation": conv, "ref": f"take:{conv}"})
    ada.expect("assigned", conversation=conv)
    frozen = Clock(monkeypatch)
    guest.say(chat, "Are you there?")
    frozen.advance(61)
    stack.gateway.run_schedules()
    assert ada.expect("message", conversation=chat, seq=2)["text"] == "One moment, please."
    stored = ConversationModel.get(conversation_key(conv), META, consistent_read=True)
    assert int(stored.seq) == 1 and not stored.holds
