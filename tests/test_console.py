"""The agent console (console/) in headless Chromium, against the local stack: one or two
agent consoles and a visitor's widget in separate browser contexts (different people).

Agents who only need to exist, and visitors whose browser is beside the point, are the test
WebSocket client (tests/support/client.py), which keeps each test short. Screenshots of the main
views go to tests/artifacts/ (untracked); UPDATE_SCREENSHOTS=1 refreshes docs/console-*.png.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.support.browser import screenshot, w, wait_until
from tests.support.client import Client
from tests.support.clock import Clock
from tests.support.flows import PASSWORD

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ fixtures and helpers


def seqs(page: Any) -> list[str | None]:
    return [li.get_attribute("data-seq") for li in page.locator("#messages li[data-seq]").all()]


def widget_chat(page: Any, text: str) -> None:
    """The visitor opens the widget and writes their first message."""
    w(page, ".launcher").click()
    w(page, ".input").fill(text)
    w(page, ".input").press("Enter")


# ------------------------------------------------------------------ queue, chat, context


def test_accept_from_the_queue_chat_both_ways_with_the_visitor_beside_it(stack, site, agent, visitor, console,
                                                                        open_page):
    from playwright.sync_api import expect

    busy = agent(name="Bo", max_chats=1)  # someone on shift (the site is open), already full
    visitor().start()
    busy.expect("assigned")
    guest = open_page("/", timezone_id="Asia/Kolkata")
    widget_chat(guest, "Do you ship to Lyon?")
    expect(w(guest, ".status")).to_have_text("You are 1st in line")
    guest.click('a[data-product="ridgeline"]')  # browsing on while waiting (a pushState page)

    ada = console("Ada", shift=False)  # off shift: picks by hand
    item = ada.locator("#queue [data-testid=queue-item]")
    expect(item).to_have_count(1)
    expect(item.locator(".preview")).to_have_text("Do you ship to Lyon?")
    wait = item.locator(".wait")
    expect(wait).to_have_text(re.compile(r"^\d+:\d\d$"))
    first = wait.text_content()
    expect(wait).not_to_have_text(first)  # it ticks
    expect(ada.locator("#queue-count")).to_have_text("1")
    screenshot(ada, "console-queue")

    item.locator("[data-testid=accept]").click()
    chat = ada.locator("#conversations [data-testid=conversation]")
    expect(chat).to_have_count(1)
    expect(chat).to_have_attribute("aria-current", "true")
    expect(ada.locator("#queue [data-testid=queue-item]")).to_have_count(0)
    expect(ada.locator('#messages [data-seq="1"]')).to_contain_text("Do you ship to Lyon?")
    expect(w(guest, ".status")).to_have_text("You're chatting with Ada")

    # The visitor beside the chat: where they are, where they have been, their browser and clock.
    expect(ada.locator("#ctx-page")).to_have_text("Ridgeline 38 L pack · Northwind Outfitters")
    expect(ada.locator("#ctx-pages li")).to_have_count(2)
    expect(ada.locator("#ctx-browser")).to_contain_text("Chrome")
    expect(ada.locator("#ctx-time")).to_contain_text(re.compile(r"Asia/(Kolkata|Calcutta)"))  # ICU's alias
    expect(ada.locator("#ctx-past")).to_have_text("First chat.")
    expect(ada.locator("#ctx-referrer")).to_have_text("direct or unknown")  # not the shop's own pages

    # Both ways.
    ada.fill("#reply-input", "Yes, in two days.")
    ada.press("#reply-input", "Enter")
    expect(w(guest, '.log [data-seq="2"] .t')).to_have_text("Yes, in two days.")
    w(guest, ".input").fill("Great, and returns?")
    w(guest, ".input").press("Enter")
    expect(ada.locator('#messages [data-seq="3"]')).to_have_text("Great, and returns?")
    expect(ada.locator('#messages [data-seq="3"]')).to_have_attribute("data-role", "visitor")
    assert seqs(ada) == ["1", "2", "3"]

    # The visitor moves on: the panel follows live.
    guest.click("nav >> text=Pricing")
    expect(ada.locator("#ctx-page")).to_have_text("Pricing · Northwind Outfitters")
    expect(ada.locator("#ctx-pages li")).to_have_count(3)
    screenshot(ada, "console-chats")


def test_capacity_is_respected_and_new_chats_ring_count_and_switch_by_keyboard(stack, site, visitor, console):
    from playwright.sync_api import expect

    ada = console("Ada", max_chats=1)
    beeps = ada.evaluate("window.__beeps")
    first = visitor()
    conv = first.start()
    first.say(conv, "First in")
    chats = ada.locator("#conversations [data-testid=conversation]")
    expect(chats).to_have_count(1)
    wait_until(ada, lambda: ada.evaluate("window.__beeps") > beeps)  # a new chat rings
    expect(ada.locator("#messages [data-seq='1']")).to_have_text("First in")

    second = visitor()
    second.start()  # Ada is full: it waits
    expect(ada.locator("#queue [data-testid=queue-item]")).to_have_count(1)
    ada.locator("#queue [data-testid=accept]").click()
    expect(ada.locator("#notice")).to_contain_text("maximum")
    second.quiet("assigned", wait=0.5)
    expect(chats).to_have_count(1)

    # The chat list counts what is unread; the tab title too. Alt+number moves between chats.
    ada.click("#views [data-view=visitors]")  # looking elsewhere: new messages stay unread
    first.say(conv, "Still there?")
    expect(chats.first.locator("[data-testid=unread]")).to_have_text("1")
    expect(ada).to_have_title("(1) Agent console")
    ada.keyboard.press("Alt+1")
    expect(ada.locator("#view-chats")).to_be_visible()
    expect(chats.first.locator("[data-testid=unread]")).to_have_attribute("data-count", "0")
    expect(ada).to_have_title("Agent console")

    # Ending the chat frees the seat: the waiting visitor comes at once, with a sound.
    beeps = ada.evaluate("window.__beeps")
    ada.click("#conv-close")
    second.expect("assigned")
    expect(ada.locator("#queue [data-testid=queue-item]")).to_have_count(0)
    open_chats = ada.locator("#conversations .conv-item:not(.closed)")
    expect(open_chats).to_have_count(1)
    wait_until(ada, lambda: ada.evaluate("window.__beeps") > beeps)
    ada.keyboard.press("Alt+ArrowDown")  # to the ended chat and back
    expect(ada.locator("#conv-close")).to_have_text("Remove from list")
    ada.keyboard.press("Alt+ArrowUp")
    expect(ada.locator("#conv-close")).to_have_text("End chat")


# ------------------------------------------------------------------ too long: told, kept, never sent

# Records every frame the page's sockets send (the console's socket exists already: ChatLink
# calls the prototype's send each time, so wrapping it now sees every later frame).
RECORD_SENDS = """() => {
  window.__sent = [];
  window.__sockets = new Set();
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    window.__sockets.add(this);
    window.__sent.push(typeof data === 'string' ? data : '[binary]');
    return send.call(this, data);
  };
}"""


def test_an_over_long_reply_or_note_is_not_sent_the_agent_is_told_and_keeps_it(stack, site, visitor,
                                                                              console):
    from playwright.sync_api import expect

    from chalicelib.protocol import MAX_TEXT_CHARS

    ada = console("Ada")
    guest = visitor()
    conv = guest.start()
    guest.say(conv, "Hi")
    expect(ada.locator("#messages [data-seq='1']")).to_have_text("Hi")
    ada.evaluate(RECORD_SENDS)
    frames_in = stack.gateway.counters["frames_in"]
    box, notice, left = ada.locator("#reply-input"), ada.locator("#notice"), ada.locator("#reply-length")

    # A pasted reply over the server's limit: said at once (an alert), kept, not sent.
    reply = "y" * (MAX_TEXT_CHARS + 2)
    box.fill(reply)
    expect(notice).to_have_text("Message too long (2 characters over)")
    assert notice.get_attribute("role") == "alert"
    box.press("Enter")
    expect(notice).to_have_text("Message too long (2 characters over)")
    expect(box).to_have_value(reply)
    expect(ada.locator("#messages li")).to_have_count(1)  # no pending reply

    # Near the limit: what is left, politely; the alert goes.
    box.fill("y" * (MAX_TEXT_CHARS - 1))
    expect(left).to_have_text("1 character left")
    assert left.get_attribute("role") == "status" and box.get_attribute("aria-describedby") == "reply-length"
    expect(notice).to_be_empty()

    # A private note too: its own alert beside it, kept, nothing stored.
    note = "n" * (MAX_TEXT_CHARS + 1000)
    ada.fill("#note-input", note)
    ada.click("#note-add")
    expect(ada.locator("#note-error")).to_have_text("Note too long (1,000 characters over)")
    expect(ada.locator("#note-input")).to_have_value(note)
    expect(ada.locator("#notes [data-testid=note]")).to_have_count(0)

    guest.quiet("message", conversation=conv)
    sent = ada.evaluate("window.__sent")
    assert not [f for f in sent if f == "[binary]" or json.loads(f)["action"] in ("send", "note")], sent
    assert stack.gateway.counters["frames_in"] - frames_in == len(sent)  # typing frames only

    # Within the limit it goes, on the same open socket, as the chat's second message.
    box.fill("Happy to help.")
    box.press("Enter")
    expect(box).to_have_value("")
    assert guest.expect("message", conversation=conv)["seq"] == 2
    assert ada.evaluate("[...window.__sockets].map((ws) => ws.readyState)") == [1]


def test_chatlink_refuses_frames_api_gateway_would_refuse_and_keeps_the_socket(stack, site, open_page):
    """ChatLink (widget/chatlink.js, the one place widget and console send through), loaded as
    the console loads it: a frame over the byte budget or anything that is not a plain object
    (binary) is refused with null, not sent, and the socket stays open; offline is false."""
    from chalicelib.protocol import MAX_FRAME_BYTES, MAX_TEXT_CHARS

    page = open_page("/console/")
    page.evaluate(RECORD_SENDS)
    frames_in = stack.gateway.counters["frames_in"]
    result = page.evaluate("""async ([site, max, chars]) => {
      const frames = [];
      let ready;
      const welcomed = new Promise((resolve) => { ready = resolve; });
      const link = new ChatLink.Link({ params: () => ({ site }), storagePrefix: 'unit', onWelcome: ready,
                                       onFrame: (f) => frames.push(f) });
      link.start();
      await welcomed;
      const pad = (n) => { // a frame of exactly n bytes of JSON, to see the edge
        const frame = { action: 'nope', ref: 'edge', pad: '' };
        frame.pad = 'x'.repeat(n - JSON.stringify(frame).length);
        return frame;
      };
      const r = {
        over: link.send(pad(max + 1)),
        big: link.send({ action: 'ping', pad: 'x'.repeat(40000) }),
        wide: link.send({ action: 'ping', pad: '\\u{1F600}'.repeat(max / 4) }),
        bytes: link.send(new Uint8Array(8)),
        buffer: link.send(new ArrayBuffer(8)),
        blob: link.send(new Blob(['{"action":"ping"}'])),
        text: link.send('{"action":"ping"}'),
        post: link.post('conv1234', 'x'.repeat(chars + 1)),
        queued: link.outbox.length,
        room: [ChatLink.room('x'.repeat(10)), ChatLink.room('x'.repeat(chars + 1)),
               ChatLink.room('\\x01'.repeat(3500)) < 0],
        edge: link.send(pad(max)),
      };
      await new Promise((resolve) => setTimeout(resolve, 1000));
      r.open = link.ws.readyState;
      r.replies = frames.filter((f) => f.type === 'error').map((f) => [f.code, f.ref]);
      link.stop();
      r.offline = link.send({ action: 'ping' });
      return r;
    }""", [site, MAX_FRAME_BYTES, MAX_TEXT_CHARS])
    assert result == {
        "over": None, "big": None, "wide": None, "bytes": None, "buffer": None, "blob": None, "text": None,
        "post": None, "queued": 0, "room": [MAX_TEXT_CHARS - 10, -1, True],
        "edge": True,  # exactly the budget goes, and the server reads it (not too_large)
        "open": 1, "replies": [["unknown_action", "edge"]], "offline": False,
    }
    sent = page.evaluate("window.__sent")
    assert [json.loads(f)["action"] for f in sent] == ["hello", "nope"]
    assert max(len(f.encode()) for f in sent) == MAX_FRAME_BYTES
    assert stack.gateway.counters["frames_in"] - frames_in == 2


# ------------------------------------------------------------------ transfer


def test_transfer_to_a_colleague_with_a_private_note(stack, site, console, open_page):
    from playwright.sync_api import expect

    ada = console("Ada")
    guest = open_page("/")
    widget_chat(guest, "I need to change my billing address")
    expect(ada.locator('#messages [data-seq="1"]')).to_have_text("I need to change my billing address")
    bo = console("Bo")  # on shift after the chat went to Ada

    ada.fill("#note-input", "Asked twice already")
    ada.click("#note-add")
    expect(ada.locator("#notes [data-testid=note]")).to_contain_text("Asked twice already")

    ada.click("#transfer-open")
    expect(ada.locator(f'#transfer-to option[value="{bo.agent_id}"]')).to_be_enabled()
    ada.select_option("#transfer-to", bo.agent_id)
    ada.fill("#transfer-note", "Billing question, identity already verified")
    ada.click("#transfer-send")
    expect(ada.locator("#transfer-state")).to_have_text("Waiting for Bo to accept the chat…")

    offer = bo.locator("[data-testid=transfer-offer]")
    note = offer.locator("[data-testid=offer-note]")
    expect(note).to_have_text("Billing question, identity already verified")
    expect(offer).to_contain_text("Ada wants to hand you a chat")
    screenshot(bo, "console-transfer")
    offer.locator("[data-testid=offer-accept]").click()
    expect(offer).to_have_count(0)
    expect(bo.locator("#conversations [data-testid=conversation]")).to_have_count(1)
    expect(bo.locator('#messages [data-seq="1"]')).to_have_text("I need to change my billing address")
    expect(bo.locator("#notes [data-testid=note]")).to_have_count(2)  # both notes came along
    expect(bo.locator("#notes")).to_contain_text("Billing question, identity already verified")

    notice = w(guest, ".log li.sys")
    expect(notice).to_contain_text("You are now chatting with Bo")
    expect(w(guest, ".status")).to_have_text("You're chatting with Bo")
    expect(bo.locator("#messages li.system")).to_have_text("You are now chatting with Bo.")
    expect(ada.locator("#conv-title")).to_contain_text("transferred to Bo")
    expect(ada.locator("#reply-input")).to_be_disabled()
    assert "Billing question" not in (w(guest, ".log").text_content() or "")  # private

    bo.fill("#reply-input", "Hi, I can help with billing.")
    bo.press("#reply-input", "Enter")
    expect(w(guest, ".log li:last-child .t")).to_have_text("Hi, I can help with billing.")


# ------------------------------------------------------------------ proactive chat


def test_inviting_a_visitor_from_the_live_visitors_view(stack, site, admin, console, open_page):
    from playwright.sync_api import expect

    admin({"widget": {"presence": True}})
    guest = open_page("/")
    guest.wait_for_function("() => sessionStorage.getItem('ctc.visit')")  # connected, never clicked
    assert guest.evaluate("localStorage.length") == 0

    ada = console("Ada")
    ada.click("#views [data-view=visitors]")
    row = ada.locator("#visitors-list [data-testid=visitor-row]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Northwind Outfitters")
    ada.fill("#invite-text", "Need a hand choosing a pack?")
    screenshot(ada, "console-visitors")
    row.locator("[data-testid=invite]").click()
    expect(row.locator("[data-testid=invite]")).to_have_text("Invited")

    expect(w(guest, ".invite .t")).to_have_text("Need a hand choosing a pack?")
    expect(w(guest, ".invite .who")).to_have_text("Ada")
    w(guest, ".invite .btn:not(.ghost)").click()
    expect(ada.locator("[data-testid=toast]").filter(has_text="accepted your invitation")).to_be_visible()
    expect(ada.locator("#conversations [data-testid=conversation]")).to_have_count(1)
    expect(w(guest, ".status")).to_have_text("You're chatting with Ada")
    guest.wait_for_function("() => localStorage.getItem('ctc.token')")  # now the visitor interacted
    ada.click("#views [data-view=chats]")
    # the invitation is the chat's first line, on both sides, and what the chat list shows
    expect(w(guest, '.log [data-seq="1"] .t')).to_have_text("Need a hand choosing a pack?")
    expect(ada.locator('#messages [data-seq="1"]')).to_contain_text("Need a hand choosing a pack?")
    expect(ada.locator("#conversations [data-testid=conversation] .preview")).to_have_text(
        "Need a hand choosing a pack?")
    ada.fill("#reply-input", "Happy to help!")
    ada.press("#reply-input", "Enter")
    expect(w(guest, '.log [data-seq="2"] .t')).to_have_text("Happy to help!")


def test_a_rule_invites_a_visitor_who_looks_at_two_products(stack, site, admin, agent, open_page):
    from playwright.sync_api import expect

    rule = {"id": "products", "text": "Comparing packs? We can help.", "url_contains": "product=",
            "min_pages": 2}
    admin({"name": "Northwind", "widget": {"presence": True}, "console": {"rules": [rule]}})
    agent(name="Ada")
    guest = open_page("/")
    guest.wait_for_function("() => sessionStorage.getItem('ctc.visit')")
    guest.click('a[data-product="ridgeline"]')
    guest.wait_for_timeout(300)
    expect(w(guest, ".invite")).to_be_hidden()  # one product page is not enough
    guest.click('a[data-product="stormfront"]')
    expect(w(guest, ".invite .t")).to_have_text("Comparing packs? We can help.")
    expect(w(guest, ".invite .who")).to_have_text("Northwind")


# ------------------------------------------------------------------ holding, snippets, settings


def test_holding_message_after_the_configured_wait_and_the_team_view(stack, site, visitor, console,
                                                                    monkeypatch):
    from playwright.sync_api import expect


    boss = console("Boss", role="admin", max_chats=3)
    boss.click("#views [data-view=settings]")
    holding = boss.locator("#holding-form")
    expect(holding.locator("[data-testid=holding-after]")).to_have_value("90")
    holding.locator("[data-testid=holding-after]").fill("5")
    holding.locator("[data-testid=holding-save]").click()
    expect(holding.locator(".status")).to_contain_text("console.holding")  # the server's refusal
    holding.locator("[data-testid=holding-after]").fill("15")
    holding.locator("[data-testid=holding-text]").fill("Your agent is checking the stock.")
    holding.locator("[data-testid=holding-save]").click()
    expect(holding.locator(".status")).to_have_text("Saved.")

    guest = visitor()
    conv = guest.start()
    guest.say(conv, "Is the Ember stove in stock?")
    boss.click("#views [data-view=chats]")
    expect(boss.locator('#messages [data-seq="1"]')).to_have_text("Is the Ember stove in stock?")
    Clock(monkeypatch).advance(16)
    stack.gateway.run_schedules()
    held = boss.locator('#messages [data-seq="2"]')
    expect(held).to_have_text("Your agent is checking the stock.")
    expect(held).to_have_class(re.compile(r"\bsystem\b"))
    assert held.evaluate("e => getComputedStyle(e).alignSelf") == "center"
    assert guest.expect("message", conversation=conv)["from"]["role"] == "system"
    # the chat is still listed by the visitor's question, not by the product's own line
    listed = boss.locator(f'#conversations [data-conversation="{conv}"] .preview')
    expect(listed).to_have_text("Is the Ember stove in stock?")
    boss.reload()  # and after a reload, from the synced history
    expect(boss.locator('#messages [data-seq="2"]')).to_have_text("Your agent is checking the stock.")
    expect(listed).to_have_text("Is the Ember stove in stock?")

    boss.click("#views [data-view=team]")
    agent_row = boss.locator(f'#ov-agent-list tr[data-agent="{boss.agent_id}"]')
    expect(agent_row).to_contain_text("1 / 3")
    expect(boss.locator("#ov-chat-list tr")).to_have_count(1)
    expect(boss.locator("#ov-chat-list")).to_contain_text("Is the Ember stove in stock?")
    screenshot(boss, "console-team")

    # Ended, it is found in the history by its first words.
    boss.keyboard.press("Alt+1")
    boss.click("#conv-close")
    guest.expect("closed", conversation=conv)
    boss.click("#views [data-view=history]")
    boss.fill("#history-text", "ember stove")
    boss.press("#history-text", "Enter")
    expect(boss.locator("#history-list [data-testid=history-row]")).to_have_count(1)
    expect(boss.locator("#history-list")).to_contain_text("Is the Ember stove in stock?")


def test_snippets_edited_in_settings_are_inserted_with_a_shortcut(stack, site, visitor, console):
    from playwright.sync_api import expect

    boss = console("Boss", role="admin")
    guest = visitor()
    conv = guest.start()
    guest.say(conv, "Where do you ship?")
    boss.click("#views [data-view=settings]")
    form = boss.locator("#snippets-form")
    row = form.locator(".row").last
    row.locator("input[name=shortcut]").fill("ship")
    row.locator("textarea[name=text]").fill("We ship to all of Europe within 3 days.")
    form.locator("[data-testid=snippets-save]").click()
    expect(form.locator(".status")).to_contain_text("Saved")

    boss.click("#views [data-view=chats]")
    reply = boss.locator("#reply-input")
    reply.press_sequentially("Good question! /sh")
    menu = boss.locator("#snippet-menu [data-testid=snippet]")
    expect(menu).to_have_count(1)
    expect(menu).to_contain_text("/ship")
    reply.press("Tab")
    expect(reply).to_have_value("Good question! We ship to all of Europe within 3 days.")
    expect(boss.locator("#snippet-menu")).to_be_hidden()
    reply.press("Enter")
    assert guest.expect("message", conversation=conv)["text"] == \
        "Good question! We ship to all of Europe within 3 days."


def test_business_hours_changed_in_settings_take_the_widget_offline(stack, site, console, open_page):
    from playwright.sync_api import expect

    boss = console("Boss", role="admin")
    guest = open_page("/")
    w(guest, ".launcher").click()
    expect(w(guest, ".compose")).to_be_visible()  # open: someone is on shift

    boss.click("#views [data-view=settings]")
    hours = boss.locator("#hours-form")
    expect(hours.locator("[data-testid=hours-always]")).to_be_checked()
    hours.locator("[data-testid=hours-always]").uncheck()
    hours.locator("[data-testid=hours-timezone]").fill("UTC")
    hours.locator("[data-testid=hours-mon]").fill("9-17")
    hours.locator("[data-testid=hours-save]").click()
    expect(hours.locator(".status")).to_contain_text("week.mon")  # the server's own words
    expect(w(guest, ".compose")).to_be_visible()
    hours.locator("[data-testid=hours-mon]").fill("")  # closed every day
    hours.locator("[data-testid=hours-closures]").fill("2030-12-25 Christmas")
    hours.locator("[data-testid=hours-save]").click()
    expect(hours.locator(".status")).to_contain_text("Saved")
    expect(w(guest, ".away-text")).to_be_visible()  # pushed: no reload
    expect(w(guest, ".compose")).to_be_hidden()

    # The team: add an agent, change their capacity (refusals in the server's words).
    team = boss.locator("#set-agents")
    create = team.locator("#agent-create")
    create.locator("input[name=id]").fill(f"cy{site[-6:]}")
    create.locator("input[name=name]").fill("Cy")
    create.locator("input[name=password]").fill("short")
    create.locator("button[type=submit]").click()
    expect(team.locator(".status")).to_contain_text("at least 10 characters")
    create.locator("input[name=password]").fill(PASSWORD)
    create.locator("button[type=submit]").click()
    row = team.locator(f'tr[data-agent="cy{site[-6:]}"]')
    row.locator("[data-testid=agent-max]").fill("2")
    row.locator("[data-testid=agent-save]").click()
    expect(team.locator(".status")).to_have_text(f"Saved cy{site[-6:]}.")
    expect(row.locator("[data-testid=agent-max]")).to_have_value("2")
    boss.locator("#settings-title").scroll_into_view_if_needed()
    screenshot(boss, "console-settings")


# ------------------------------------------------------------------ robustness


def test_reconnects_after_the_server_restarts_with_chats_and_queue_back_once(stack, site, visitor, console,
                                                                            clients):
    from playwright.sync_api import expect

    ada = console("Ada", max_chats=1)
    first = visitor()
    conv = first.start()
    first.say(conv, "Before the restart")
    expect(ada.locator('#messages [data-seq="1"]')).to_have_text("Before the restart")
    ada.fill("#reply-input", "Reply before")
    ada.press("#reply-input", "Enter")
    expect(ada.locator('#messages [data-seq="2"]')).to_have_count(1)
    visitor().start()  # waits: Ada is full
    expect(ada.locator("#queue [data-testid=queue-item]")).to_have_count(1)

    gateway = stack.gateway
    gateway.stop()
    try:
        expect(ada.locator("#conn-state")).to_contain_text("Reconnecting")
        ada.fill("#reply-input", "Written while offline")
        ada.press("#reply-input", "Enter")
        expect(ada.locator("#messages [data-pending]")).to_have_count(1)
    finally:
        gateway.start()  # same port
    back = Client(gateway.ws_url, {"token": first.welcome["token"]})
    clients.append(back)
    back.request({"action": "hello"}, "welcome")
    back.say(conv, "After the restart")
    ada.evaluate("window.dispatchEvent(new Event('online'))")  # the browser noticing the network
    expect(ada.locator("#conn-state")).to_have_text("")
    expect(ada.locator('#messages [data-seq="4"]')).to_have_count(1)
    expect(ada.locator("#messages [data-pending]")).to_have_count(0)
    assert seqs(ada) == ["1", "2", "3", "4"]
    expect(ada.locator("#conversations [data-testid=conversation]")).to_have_count(1)
    expect(ada.locator("#queue [data-testid=queue-item]")).to_have_count(1)
    expect(ada.locator("#shift-toggle")).to_have_attribute("aria-pressed", "true")
    stored = back.request({"action": "sync", "conversation": conv, "after": 0}, "messages")["items"]
    stored_texts = [m["text"] for m in stored]  # each once; the two after the restart in either order
    assert stored_texts[:2] == ["Before the restart", "Reply before"]
    assert sorted(stored_texts[2:]) == ["After the restart", "Written while offline"]
    texts = [li.text_content() for li in ada.locator("#messages li[data-seq]").all()]
    assert sorted(texts) == sorted(m["text"] for m in stored)

    ada.reload()  # the same state again from the server, still signed in (this tab)
    expect(ada.locator('#messages [data-seq="4"]')).to_have_count(1)
    assert seqs(ada) == ["1", "2", "3", "4"]
    expect(ada.locator("#conversations [data-testid=conversation]")).to_have_count(1)
    expect(ada.locator("#queue [data-testid=queue-item]")).to_have_count(1)
