"""The end of a chat: the visitor rates it and asks for the transcript in the widget
(Chromium), the agent sees the rating and emails the transcript from the console, and each
transcript request arrives once in the SES stand-in, however often it is resent or
redelivered."""

from __future__ import annotations

import urllib.request

from tests.support.browser import chat, w
from tests.support.client import Client, confirmation_link
from tests.support.flows import configure_site


def _open_link(email: dict) -> int:
    """Open the confirmation link of ``email`` as its reader would; the HTTP status."""
    with urllib.request.urlopen(confirmation_link(email), timeout=10) as page:
        return int(page.status)


def test_the_visitor_rates_the_chat_and_gets_the_transcript_from_the_widget(
        stack, site, agent, open_page, mailbox):
    from playwright.sync_api import expect

    configure_site(stack, site, {"widget": {"prechat": True}})
    console_ws = agent()
    page = open_page("/")
    w(page, ".launcher").click()
    w(page, '.prechat input[name="email"]').fill("robin@example.org")
    conv = chat(page, console_ws, "Where is my parcel?")
    console_ws.say(conv, "It arrives tomorrow.")
    expect(w(page, ".log")).to_contain_text("It arrives tomorrow.")
    console_ws.request({"action": "close", "conversation": conv}, "closed", conversation=conv)

    expect(w(page, ".after")).to_be_visible()
    expect(w(page, ".after input[type=email]")).to_have_value("robin@example.org")  # from the pre-chat form
    w(page, ".rate textarea").fill("Fast answer, thanks")
    w(page, ".rate [data-score=up]").click()
    expect(w(page, ".after .note")).to_have_text("Thanks for your feedback!")
    expect(w(page, ".rate")).to_be_hidden()
    rated = console_ws.expect("rated", conversation=conv)
    assert rated["rating"]["score"] == "up" and rated["rating"]["comment"] == "Fast answer, thanks"

    w(page, ".after button:has-text('Email me the transcript')").click()
    # The address is confirmed by a link first: that mail carries no chat text.
    expect(w(page, ".after .note")).to_have_text(
        "Check robin@example.org: open the link we sent to get the transcript")
    (note,) = mailbox("robin@example.org")
    assert "Where is my parcel?" not in note["body"]["text"]
    assert _open_link(note) == 200
    (_, mail) = mailbox("robin@example.org")
    assert "Where is my parcel?" in mail["body"]["text"] and "It arrives tomorrow." in mail["body"]["text"]

    # French visitors get the same, in French.
    page_fr = open_page("/", locale="fr-FR")
    w(page_fr, ".launcher").click()
    w(page_fr, '.prechat input[name="email"]').fill("lea@example.org")
    conv_fr = chat(page_fr, console_ws, "Bonjour")
    console_ws.request({"action": "close", "conversation": conv_fr}, "closed", conversation=conv_fr)
    expect(w(page_fr, ".rate p")).to_have_text("Comment s\u2019est passée cette discussion ?")
    w(page_fr, ".rate [data-score=down]").click()
    expect(w(page_fr, ".after .note")).to_have_text("Merci pour votre avis !")
    assert console_ws.expect("rated", conversation=conv_fr)["rating"]["score"] == "down"


def test_transcript_requests_are_mailed_once_each_and_limited_per_chat(stack, site, agent, visitor, mailbox):
    console_ws = agent()
    guest = visitor()
    guest.send({"action": "start", "email": "tina@example.org"})
    conv = guest.expect("conversation")["conversation"]
    console_ws.expect("assigned", conversation=conv)
    guest.say(conv, "Can I change my address?")
    guest.request({"action": "close", "conversation": conv}, "closed")

    ask = {"action": "transcript", "conversation": conv, "id": "req-one"}
    assert guest.request(ask, "transcript_queued")["email"] == "tina@example.org"
    guest.request(ask, "transcript_queued")  # a resend (lost ack): the same request
    stack.poller.drain()
    from chalicelib import mail, queue

    queue.enqueue(mail.TranscriptJob(conv, "req-one"))  # SQS delivering the job once more
    (note,) = mailbox("tina@example.org")  # the confirmation link, once; no transcript yet
    assert _open_link(note) == 200
    assert _open_link(note) == 200  # opened twice
    queue.enqueue(mail.TranscriptJob(conv, "req-one"))
    assert len(mailbox("tina@example.org")) == 2

    other = guest.request({**ask, "id": "req-two", "email": "tina.work@example.org"}, "transcript_queued")
    assert other["email"] == "tina.work@example.org" and other["confirm"] is True
    assert len(mailbox("tina.work@example.org")) == 1
    # The agent emails it from the console: to the visitor's address, a request of its own.
    console_ws.request({"action": "transcript", "conversation": conv, "id": "agent-1"}, "transcript_queued")
    assert len(mailbox("tina@example.org")) == 3
    limited = guest.request({**ask, "id": "req-four", "ref": "x"}, "error")
    assert limited["code"] == "conflict"  # three per chat: the chat's own cap, not a wait
    stranger = Client(stack.gateway.ws_url, {"site": site})
    try:
        refused = stranger.request({**ask, "id": "req-five", "ref": "y"}, "error")
        assert refused["code"] == "forbidden"
    finally:
        stranger.close()
    assert len(mailbox("tina")) == 4


def test_the_console_shows_the_rating_and_emails_the_transcript(stack, site, visitor, console, mailbox):
    from playwright.sync_api import expect

    page = console("Ann")
    guest = visitor()
    guest.send({"action": "start", "email": "omar@example.org"})
    conv = guest.expect("conversation")["conversation"]
    guest.say(conv, "Thanks for the refund")
    page.locator(f"#conversations [data-conversation='{conv}'], #conversations button").first.click()
    guest.request({"action": "close", "conversation": conv}, "closed")
    guest.request({"action": "rate", "conversation": conv, "score": "up", "comment": "Lovely"}, "rated")
    expect(page.locator("#conv-rating")).to_have_text("Visitor rating: good — “Lovely”")  # words, not emoji
    page.click("#conv-transcript")
    toast = page.locator("[data-testid=toast]").last
    expect(toast).to_contain_text("Transcript on its way to omar@example.org")
    (mail,) = mailbox("omar@example.org")
    assert "Thanks for the refund" in mail["body"]["text"]
