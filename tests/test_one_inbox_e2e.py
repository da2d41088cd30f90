"""Issue 18 end to end, as the people involved live it, in Chromium on the local stand-in:
one inbox for the web chat and email. Nobody is on shift; a visitor leaves a message in the
widget; an agent finds it under Messages in the console, takes it and replies; the reply is
emailed with a signed reply address; the visitor answers from their mail program (a real SMTP
client to the stand-in's SMTP server); the answer appears live in the agent's conversation;
the visitor, back on the site, reads the whole thread in the widget.
"""

from __future__ import annotations

import pytest

from chalicelib import config
from tests.support.browser import leave_message, take_and_reply, w
from tests.support.flows import email_answer, smtp_send

# Every REST call of the stand-in comes from 127.0.0.1: its allowance is put back afterwards.
pytestmark = pytest.mark.usefixtures("address_counters")

QUESTION = "Can I change my delivery address?"
ANSWER = "Yes: reply with the new address and we change it."
# What a mail program sends back: the visitor's words, a signature, the quoted reply.
EMAILED = f"Great, it is 4 Elm Street.\n\nBest,\nVera\n\nOn Mon, Team wrote:\n> {ANSWER}\n"


def test_a_message_left_in_the_widget_is_answered_by_email_and_the_thread_is_one(
        stack, site, app_settings, open_page, console, mailbox):
    from playwright.sync_api import expect

    app_settings(offline_per_visitor_per_hour=10, mail_per_network_per_hour=100)
    vera = "vera@example.org"
    shop = open_page("/")  # the visitor's browser (its own context: cookies, storage)
    leave_message(shop, vera, QUESTION)  # nobody on shift: the widget's form

    ada = console("Ada", shift=False)  # the other context: an agent signs in (nobody on shift still)
    expect(ada.locator("#inbox [data-testid=inbox-item] .preview")).to_have_text(QUESTION)
    take_and_reply(ada, ANSWER)
    expect(ada.locator('#messages [data-seq="1"]')).to_have_text(QUESTION)
    expect(ada.locator("[data-testid=by-email]")).to_be_visible()

    (reply,) = [m for m in mailbox(vera) if "replied" in m["subject"]]
    assert ANSWER in reply["body"]["text"]
    (address,) = reply["replyTo"]
    assert address.startswith("reply+") and address.endswith(f"@{config.settings().reply_domain}")

    answer = email_answer(address, EMAILED, sender=vera, message_id="<vera-1@mail.example.org>")
    assert smtp_send(stack, answer, address) == "stored"
    # Live in the open conversation, as text, without the signature and the quoted reply.
    expect(ada.locator('#messages [data-seq="3"]')).to_have_text("Great, it is 4 Elm Street.")

    # The visitor comes back to the site in the same browser, still after hours: below the
    # form, the thread is among their earlier conversations; opening it shows all three lines.
    shop.goto(stack.gateway.http_url + "/")
    if not w(shop, ".panel").is_visible():
        w(shop, ".launcher").click()
    expect(w(shop, ".leave")).to_be_visible()  # nobody on shift: the form, as before
    past = w(shop, "h3:has-text('Previous conversations') + ul button")
    expect(past).to_have_count(1)
    expect(past).to_contain_text("\u2709")  # marked as by email
    past.click()
    expect(w(shop, '.log [data-seq="1"] .t')).to_have_text(QUESTION)
    expect(w(shop, '.log [data-seq="2"] .t')).to_have_text(ANSWER)
    expect(w(shop, '.log [data-seq="3"] .t')).to_have_text("Great, it is 4 Elm Street.")
    expect(w(shop, ".log > li")).to_have_count(3)
