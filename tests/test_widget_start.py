"""The widget's side of issue 16's merged backend, in headless Chromium against the local stack:
the first line travels in ``start`` (the waiting list shows the question; a reload in the
middle neither loses nor doubles it), the site's pre-chat fields and offline message from
the console's Settings, ``rules_due`` timing time-on-page invitations, and invitations already
answered staying answered.

Frames are watched where the browser sends them (Playwright's ``framesent``) or, where a lost
answer must be played, on the wire between page and gateway (``page.route_web_socket``: the
real server still answers, the test only holds frames back or plays one again).
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib import clock
from chalicelib.models import META, ConversationModel, conversation_key
from tests.support.browser import log_texts, visitor_id, w, wait_until
from tests.support.client import Client
from tests.support.clock import Clock
from tests.support.flows import configure_site


def _frames_sent(page: Any) -> list[dict[str, Any]]:
    """Every JSON frame the page sends from now on, on any of its sockets, in order."""
    sent: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda payload: sent.append(json.loads(payload)))

    page.on("websocket", watch)
    return sent


def _goto(page: Any, stack: Any) -> None:
    page.goto(stack.gateway.http_url + "/")
    w(page, ".launcher").wait_for()


def _line(console: Client) -> list[tuple[str, str | None]]:
    """The newest non-empty waiting list the console was sent: (conversation, preview) each."""
    while True:
        items = console.expect("queue")["items"]
        if items and not any(f.get("type") == "queue" for f in console.backlog):
            return [(i["conversation"], i["preview"]) for i in items]


def _stored(conv: str) -> int:
    return int(ConversationModel.get(conversation_key(conv), META, consistent_read=True).seq)


# ------------------------------------------------------------------ the first line in `start`


def test_the_first_line_rides_in_start_so_the_waiting_list_shows_the_question(stack, agent, visitor,
                                                                               open_page):
    from playwright.sync_api import expect

    busy = agent(name="Busy", max_chats=1)
    visitor().start()  # takes Busy's only seat: the widget's chat waits in line
    busy.expect("assigned")
    page = open_page(None)
    sent = _frames_sent(page)
    _goto(page, stack)
    w(page, ".launcher").click()
    w(page, ".input").fill("Do you ship to Lyon?")
    w(page, ".input").press("Enter")

    conv, preview = _line(busy)[0]
    assert preview == "Do you ship to Lyon?"  # not "No message yet": the line came with the start
    expect(w(page, '.log [data-seq="1"] .t')).to_have_text("Do you ship to Lyon?")
    expect(w(page, ".log [data-pending]")).to_have_count(0)
    assert log_texts(page) == [("1", "Do you ship to Lyon?")]  # once, acked as seq 1
    (start,) = [f for f in sent if f.get("action") == "start"]
    assert start["text"] == "Do you ship to Lyon?" and start["ref"] == start["id"]
    assert not [f for f in sent if f.get("action") == "send"]  # not posted a second time

    # Lines typed after the first go as ordinary messages, in order.
    w(page, ".input").fill("Or to Marseille?")
    w(page, ".input").press("Enter")
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("Or to Marseille?")
    (send,) = [f for f in sent if f.get("action") == "send"]
    assert send["conversation"] == conv and send["id"].split(":")[0] == start["id"].split(":")[0]
    assert _stored(conv) == 2


def test_a_reload_while_the_start_is_unanswered_keeps_the_line_once(stack, agent, open_page):
    """The start went out but its answers (conversation, ack) were lost, and the visitor
    reloads: the first line is in the tab's outbox, the next page resends it under the same id
    (as a send to the chat the welcome names) and shows it once; it is stored once."""
    from playwright.sync_api import expect

    console = agent(name="Ada")
    page = open_page(None)
    sockets: list[dict[str, Any]] = []

    def route(ws: Any) -> None:
        state: dict[str, Any] = {"sent": [], "hold": False}
        sockets.append(state)
        server = ws.connect_to_server()

        def up(message: str) -> None:  # page -> gateway
            frame = json.loads(message)
            state["sent"].append(frame)
            server.send(message)
            if frame.get("action") == "start" and len(sockets) == 1:
                state["hold"] = True  # from here on this socket hears nothing: answers lost

        def down(message: str) -> None:  # gateway -> page
            if not state["hold"]:
                ws.send(message)

        ws.on_message(up)
        server.on_message(down)

    page.route_web_socket("**/ws**", route)
    _goto(page, stack)
    w(page, ".launcher").click()
    w(page, ".input").fill("Is the Ridgeline waterproof?")
    w(page, ".input").press("Enter")
    wait_until(page, lambda: sockets and sockets[0]["hold"])  # (the route runs while the page waits)
    assigned = console.expect("assigned")
    conv = str(assigned["conversation"])
    assert assigned["summary"]["preview"] == "Is the Ridgeline waterproof?"  # the server has it
    expect(w(page, ".log li time")).to_have_text(["Sending…"])  # ... but no answer reached the page
    assert log_texts(page) == [(None, "Is the Ridgeline waterproof?")]
    (start,) = [f for f in sockets[0]["sent"] if f.get("action") == "start"]

    page.reload()
    expect(w(page, '.log [data-seq="1"] .t')).to_have_text("Is the Ridgeline waterproof?")
    expect(w(page, ".log [data-pending]")).to_have_count(0)
    assert log_texts(page) == [("1", "Is the Ridgeline waterproof?")]
    wait_until(page, lambda: any(f.get("id") == start["id"] for f in sockets[-1]["sent"]))
    resent = [f for f in sockets[-1]["sent"] if f.get("id") == start["id"]]
    assert [(f["action"], f.get("conversation")) for f in resent] == [("send", conv)]
    # Delivered again under its seq (docs/protocol.md: the first delivery may never have
    # happened), which consoles keep once; not a new message.
    assert console.expect("message", conversation=conv)["seq"] == 1
    console.say(conv, "Yes, fully.")
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("Yes, fully.")
    assert log_texts(page) == [("1", "Is the Ridgeline waterproof?"), ("2", "Yes, fully.")]
    assert _stored(conv) == 2  # the first line once, the reply


# ------------------------------------------------------------------ the site's settings


def test_prechat_fields_the_site_asks_for_shown_and_required_accordingly(stack, site, agent, open_page):
    from playwright.sync_api import expect

    configure_site(stack, site,
                   {"widget": {"prechat": True, "prechat_fields": {"name": "required", "email": "off"}}})
    console = agent(name="Ada")
    page = open_page(None)
    sent = _frames_sent(page)
    _goto(page, stack)
    w(page, ".launcher").click()
    name, email = w(page, '.prechat input[name="name"]'), w(page, '.prechat input[name="email"]')
    expect(name).to_be_visible()
    expect(email).to_be_hidden()
    expect(w(page, ".prechat label:visible")).to_have_text(["Name"])  # required: no "(optional)"
    w(page, ".input").fill("Hello")
    w(page, ".input").press("Enter")
    expect(name).to_be_focused()  # a required name: asked for (the browser says so), nothing sent
    assert name.evaluate("e => e.validity.valueMissing")
    assert not [f for f in sent if f.get("action") == "start"]
    name.fill("Sam Rivera")
    w(page, ".input").press("Enter")
    assigned = console.expect("assigned")
    assert assigned["summary"]["visitor_name"] == "Sam Rivera" and not assigned["summary"].get("email")
    (start,) = [f for f in sent if f.get("action") == "start"]
    assert "email" not in start

    # Another site's choice: no name, an optional email.
    configure_site(stack, site,
                   {"widget": {"prechat": True, "prechat_fields": {"name": "off", "email": "optional"}}})
    other = open_page()
    w(other, ".launcher").click()
    expect(w(other, '.prechat input[name="name"]')).to_be_hidden()
    expect(w(other, ".prechat label:visible")).to_have_text(["Email (optional)"])
    w(other, ".input").fill("Just browsing")
    w(other, ".input").press("Enter")
    expect(w(other, '.log [data-seq="1"] .t')).to_have_text("Just browsing")  # no address needed
    assert console.expect("assigned")["summary"].get("email") is None


def test_the_sites_offline_message_replaces_the_widgets_away_words(stack, site, open_page):
    from playwright.sync_api import expect

    page = open_page()  # nobody on shift: the away view
    w(page, ".launcher").click()
    expect(w(page, ".away-text")).to_have_text("We'll reply by email as soon as we can")
    configure_site(stack, site,
                   {"widget": {"offline_message": "Out riding. Leave a line, we write back today."}})
    page = open_page()
    w(page, ".launcher").click()
    expect(w(page, ".away-text")).to_have_text("Out riding. Leave a line, we write back today.")
    expect(w(page, ".leave")).to_be_visible()


# ------------------------------------------------------------------ invitations


def test_a_time_rule_invitation_arrives_when_rules_due_says_without_the_minute_timer(stack, site, agent,
                                                                                      open_page, monkeypatch):
    from playwright.sync_api import expect

    configure_site(stack, site, {"widget": {"presence": True}, "console": {"rules": [
        {"id": "stay", "text": "Can I help you decide?", "url_contains": "/", "min_seconds": 30}]}})
    frozen = Clock(monkeypatch, clock.now_ms())  # the server's time
    agent(name="Ada")
    page = open_page(None)
    page.clock.install()  # the page's timers, moved by the test
    sent = _frames_sent(page)
    due: list[int] = []
    page.on("websocket", lambda ws: ws.on(
        "framereceived", lambda p: due.append(json.loads(p)["in_ms"]) if '"rules_due"' in p else None))
    _goto(page, stack)
    page.clock.pause_at(page.evaluate("Date.now()") / 1000 + 0.1)  # from here, only run_for moves it
    page.clock.run_for(1500)  # the page settles: presence connects and says which page it is on
    wait_until(page, lambda: due)
    assert due == [30_000]  # the page event said when to ask again

    frozen.advance(30)
    page.clock.run_for(25_000)
    assert not [f for f in sent if f.get("action") == "rules"]  # not before its time
    expect(w(page, ".invite")).to_be_hidden()
    page.clock.run_for(5_000)
    expect(w(page, ".invite .t")).to_have_text("Can I help you decide?")  # no run_schedules()
    assert len([f for f in sent if f.get("action") == "rules"]) == 1  # one timer, one ask


def test_an_invitation_already_answered_is_not_shown_again(stack, agent, open_page):
    """A copy of an invitation the visitor dismissed (a page event's resend crossing the
    answer) arrives after it: the card stays closed; a new invitation still shows."""
    from playwright.sync_api import expect

    console = agent(name="Ada")
    page = open_page(None)
    seen: list[tuple[Any, str]] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        def down(message: str) -> None:  # gateway -> page, kept for playing again
            seen.append((ws, message))
            ws.send(message)

        server.on_message(down)

    page.route_web_socket("**/ws**", route)
    _goto(page, stack)
    w(page, ".launcher").click()  # a visitor who opened the chat once keeps a socket
    page.wait_for_function("() => localStorage.getItem('ctc.token')")
    page.keyboard.press("Escape")
    visitor = visitor_id(page)
    invited = console.request({"action": "invite", "visitor": visitor, "text": "Hello?"}, "invited")
    expect(w(page, ".invite .t")).to_have_text("Hello?")
    w(page, ".invite .ghost").click()
    assert console.expect("invitation_answer")["accepted"] is False
    expect(w(page, ".invite")).to_be_hidden()

    # Every time the card is shown, which text it shows.
    page.evaluate("""() => {
      const card = document.querySelector('[data-chat-widget]').shadowRoot.querySelector('.invite');
      window.__cards = [];
      const note = () => { if (!card.hidden) window.__cards.push(card.querySelector('.t').textContent); };
      new MutationObserver(note).observe(card, { attributes: true, attributeFilter: ['hidden'] });
    }""")
    (ws, late), = [(s, m) for s, m in seen if json.loads(m).get("type") == "invitation"
                   and json.loads(m).get("id") == invited["id"]]
    ws.send(late)  # the same invitation again, late; then a new one, on the same socket
    console.request({"action": "invite", "visitor": visitor, "text": "Still there?"}, "invited")
    expect(w(page, ".invite .t")).to_have_text("Still there?")
    assert page.evaluate("window.__cards") == ["Still there?"]  # the answered one never came back
