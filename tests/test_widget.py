"""The embeddable visitor widget (widget/widget.js) on the demo shop, in headless Chromium.

The agent side is the test WebSocket client (or the real console where both ends must
render something). Playwright's CSS selectors pierce the widget's open shadow root, so
``[data-chat-widget] .launcher`` reaches inside it. Screenshots of the main states go to
tests/artifacts/ (untracked); set UPDATE_SCREENSHOTS=1 to refresh docs/widget-*.png too.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser import COUNT_BEEPS, W, screenshot, wait_until
from tests.client import Client, rest
from tests.conftest import PASSWORD
from tests.xss_corpus import CORPUS, GUARD, assert_inert

ROOT = Path(__file__).resolve().parents[1]




# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture
def open_page(browser: Any, stack: Any, site: str, app_settings: Callable[..., Any]) -> Iterator[Any]:
    """Open a page in a fresh context (own storage: a different person) whose widget talks
    to this test's site. ``page.sockets`` lists the WebSockets the page opened."""
    app_settings(offline_per_ip_per_hour=1000)  # every test comes from 127.0.0.1
    contexts: list[Any] = []
    errors: list[str] = []

    def new_page(path: str | None = "/", *, init: str = "", **options: Any) -> Any:
        options.setdefault("locale", "en-GB")
        context = browser.new_context(**options)
        contexts.append(context)
        context.add_init_script(init + f"window.ChatWidget = Object.assign(window.ChatWidget || {{}}, "
                                f"{{site: {json.dumps(site)}}});")
        context.add_init_script(COUNT_BEEPS)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.sockets = []
        page.on("websocket", lambda ws: page.sockets.append(ws))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        if path is not None:
            page.goto(stack.gateway.http_url + path)
            if not path.startswith("/console"):
                page.locator(f"{W} .launcher").wait_for()
        return page

    yield new_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def w(page: Any, selector: str) -> Any:
    """A locator inside the widget."""
    return page.locator(f"{W} {selector}")


def shadow_eval(page: Any, body: str) -> Any:
    """Evaluate ``body`` with ``root`` bound to the widget's shadow root."""
    return page.evaluate(f"() => {{ const root = document.querySelector('{W}').shadowRoot; {body} }}")


def log_texts(page: Any) -> list[tuple[str | None, str | None]]:
    """(data-seq, text) of every message in the widget, in order."""
    return [(li.get_attribute("data-seq"), li.locator(".t").text_content())
            for li in w(page, ".log > li").all()]


def visitor_id(page: Any) -> str:
    """The visitor behind the widget's stored token (its subject claim)."""
    token = page.evaluate("localStorage.getItem('ctc.token')")
    payload = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["s"])


def admin(stack: Any, site: str, doc: dict[str, Any]) -> None:
    """The site's admin changes its settings over REST."""
    from chalicelib import agents

    admin_id = f"boss{secrets.token_hex(3)}"
    agents.create(admin_id, "Boss", PASSWORD, role="admin", site=site)
    token = Client.login(stack.gateway.http_url, admin_id, PASSWORD)
    status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}", doc, token)
    assert status == 200, body


def chat(page: Any, console: Client, text: str) -> str:
    """Open the widget and start a chat with the (on-shift) console; returns the conversation."""
    if not w(page, ".panel").is_visible():
        w(page, ".launcher").click()
    w(page, ".input").fill(text)
    w(page, ".input").press("Enter")
    assigned = console.expect("assigned")
    # The first line rides in the `start`, stored before the chat is routed: the agent reads
    # it in the chat's summary (and by sync), not as a live message.
    assert assigned["summary"]["preview"] == text
    return str(assigned["conversation"])




# ------------------------------------------------------------------ the bundle


def test_bundle_is_built_from_its_sources_parses_and_fits_the_budget():
    build = subprocess.run([sys.executable, str(ROOT / "widget" / "build.py"), "--check"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    if shutil.which("node"):
        check = subprocess.run(["node", "--check", str(ROOT / "widget" / "widget.js")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    size = subprocess.run([sys.executable, str(ROOT / "bench" / "widget_size.py")], capture_output=True,
                          text=True)
    assert size.returncode == 0, size.stdout


# ------------------------------------------------------------------ visitors who never click


def test_no_socket_no_storage_and_no_global_but_chatwidget_until_the_visitor_clicks(stack, site, open_page,
                                                                                   agent):
    agent()
    requests: list[str] = []
    page = open_page(None, init="window.__before = new Set(Object.getOwnPropertyNames(window));")
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{stack.gateway.http_url}/")
    w(page, ".launcher").wait_for()
    page.wait_for_timeout(300)
    assert page.sockets == []
    assert not [url for url in requests if "/api/" in url]  # not even the config
    assert page.evaluate("[localStorage.length, sessionStorage.length]") == [0, 0]
    added = page.evaluate("Object.getOwnPropertyNames(window).filter(k => !window.__before.has(k))")
    assert set(added) - {"__before", "__beeps"} == {"ChatWidget"}  # (the test's own: __before, __beeps)
    api = page.evaluate("Object.keys(window.ChatWidget).filter(k => typeof ChatWidget[k] === 'function')")
    assert {"open", "close", "identify", "on"} <= set(api)

    page.evaluate("window.__events = []; ChatWidget.on('open', () => __events.push('open'))"
                  ".on('close', () => __events.push('close'))")
    w(page, ".launcher").hover()  # intent: the config is fetched, still nothing stored
    wait_until(page, lambda: any(f"/api/sites/{site}/widget" in url for url in requests))
    assert page.evaluate("localStorage.length") == 0 and page.sockets == []
    w(page, ".launcher").click()  # interaction: a socket, and a token kept for next time
    page.wait_for_function("() => localStorage.getItem('ctc.token')")
    assert len(page.sockets) == 1 and page.sockets[0].url.startswith(stack.gateway.ws_url)
    page.evaluate("ChatWidget.close()")
    assert page.evaluate("window.__events") == ["open", "close"]


# ------------------------------------------------------------------ chatting


def test_chat_with_an_agent_across_reloads_navigation_and_a_closed_widget(stack, site, agent, open_page):
    from playwright.sync_api import expect

    base = stack.gateway.http_url
    console = agent(name="Ada")
    page = open_page(timezone_id="Asia/Kolkata")
    page.evaluate("window.__got = []; ChatWidget.on('message', m => __got.push(m.from.role + ': ' + m.text))")
    conv = chat(page, console, "Hello, is the Ridgeline waterproof?")
    expect(w(page, ".status")).to_have_text("You're chatting with Ada")

    # Typing, both ways.
    console.send({"action": "typing", "conversation": conv, "on": True})
    expect(w(page, ".typing")).to_have_text("Ada is typing…")
    w(page, ".input").press_sequentially("Th")
    assert console.expect("typing", conversation=conv)["on"] is True
    w(page, ".input").fill("")
    ack = console.say(conv, "Yes: taped seams and a rain cover.")
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("Yes: taped seams and a rain cover.")
    expect(w(page, ".typing")).to_be_hidden()
    # Timestamps in the visitor's own zone (Kolkata, UTC+5:30).
    local = datetime.fromtimestamp(ack["ts"] / 1000, ZoneInfo("Asia/Kolkata")).strftime("%H:%M")
    expect(w(page, '.log [data-seq="2"] time')).to_have_text(local)

    # Read markers: the open widget reads what it shows; "Seen" once the agent has read.
    assert console.expect("read", conversation=conv) | {} == {"type": "read", "conversation": conv,
                                                             "role": "visitor", "seq": 2}
    assert w(page, '.log [data-seq="1"]').get_attribute("data-seen") is None
    console.send({"action": "read", "conversation": conv, "seq": 2})
    expect(w(page, '.log [data-seq="1"]')).to_have_attribute("data-seen", "Seen")
    # The agent's resend of that message (a lost ack) is delivered again: shown once.
    again = console.say(conv, "Yes: taped seams and a rain cover.", ack["ref"])
    assert again["seq"] == 2
    page.wait_for_timeout(300)
    expect(w(page, '.log [data-seq="2"]')).to_have_count(1)
    assert page.evaluate("window.__got") == ["visitor: Hello, is the Ridgeline waterproof?",
                                             "agent: Yes: taped seams and a rain cover."]
    screenshot(page, "widget-chat")

    # A reload keeps the conversation (and the open panel): every message once, in order.
    page.reload()
    expect(w(page, ".panel")).to_be_visible()
    expect(w(page, '.log [data-seq="2"]')).to_have_count(1)
    assert log_texts(page) == [("1", "Hello, is the Ridgeline waterproof?"),
                               ("2", "Yes: taped seams and a rain cover.")]
    expect(w(page, ".status")).to_have_text("You're chatting with Ada")
    assert console.expect("page", conversation=conv)["url"] == f"{base}/"

    # The agent follows the visitor around the site: page loads ...
    page.click("nav >> text=Pricing")
    moved = console.expect("page", url=f"{base}/pricing.html")
    assert moved["title"] == "Pricing · Northwind Outfitters" and moved["referrer"] == f"{base}/"
    page.click("nav >> text=Shop")
    console.expect("page", url=f"{base}/")
    # ... and single-page-app navigation (history.pushState), without breaking the shop's own.
    page.click('a[data-product="ridgeline"]')
    expect(page.locator("#quick-view h2")).to_have_text("Ridgeline 38 L pack")
    quick = console.expect("page", url=f"{base}/?product=ridgeline")
    assert quick["title"] == "Ridgeline 38 L pack · Northwind Outfitters" and quick["referrer"] == f"{base}/"
    page.go_back()
    expect(page.locator("#quick-view")).to_be_hidden()  # the shop's popstate handler still runs
    console.expect("page", url=f"{base}/")

    # Closed: an unread badge, a preview of the agent's message, a beep.
    w(page, ".close").click()
    expect(w(page, ".panel")).to_be_hidden()
    beeps = page.evaluate("window.__beeps")
    console.say(conv, "It is in stock in both colours.")
    expect(w(page, ".badge")).to_have_text("1")
    expect(w(page, ".preview .t")).to_have_text("It is in stock in both colours.")
    expect(w(page, ".preview .who")).to_have_text("Ada")
    assert "1 new message" in (w(page, ".launcher").get_attribute("aria-label") or "")
    assert page.evaluate("window.__beeps") == beeps + 1
    screenshot(page, "widget-closed-unread")
    w(page, ".preview .pv").click()  # opening reads it
    expect(w(page, ".badge")).to_be_hidden()
    assert console.expect("read", conversation=conv, role="visitor")["seq"] == 3

    # Muted: still a badge, no sound (and the choice is kept).
    w(page, ".mute").click()
    expect(w(page, ".mute")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("localStorage.getItem('ctc.mute')") == "1"
    page.keyboard.press("Escape")
    console.say(conv, "Anything else?")
    expect(w(page, ".badge")).to_have_text("1")
    assert page.evaluate("window.__beeps") == beeps + 1


def test_xss_corpus_is_shown_as_text_on_both_ends(stack, site, open_page):
    """The corpus typed into the real widget and the real console: each side shows both its
    own and the other's messages as text (more places: tests/test_xss.py)."""
    from playwright.sync_api import expect

    from chalicelib import agents

    agent_id = f"a{secrets.token_hex(4)}"
    agents.create(agent_id, "Ada <i>Lovelace</i>", PASSWORD, site=site)
    dialogs: list[str] = []
    console = open_page("/console/", init=GUARD)
    console.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    console.fill("#login-agent", agent_id)
    console.fill("#login-password", PASSWORD)
    console.click("#login-submit")
    expect(console.locator("#shift-toggle")).to_be_enabled()
    console.click("#shift-toggle")
    expect(console.locator("#shift-toggle")).to_have_attribute("aria-pressed", "true")

    page = open_page(init=GUARD)
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    w(page, ".launcher").click()
    for payload in CORPUS:  # the first starts the chat; the others queue behind it
        w(page, ".input").fill(payload)
        w(page, ".input").press("Enter")
    n = len(CORPUS)
    expect(w(page, f'.log [data-seq="{n}"]')).to_have_count(1)
    expect(w(page, ".status")).to_have_text("You're chatting with Ada <i>Lovelace</i>")
    console.click("#conversations [data-conversation]")
    expect(console.locator(f'#messages [data-seq="{n}"]')).to_have_count(1)
    for payload in CORPUS:
        console.fill("#reply-input", payload)
        console.click("#reply-send")
    expect(w(page, f'.log [data-seq="{2 * n}"]')).to_have_count(1)

    expected = [(str(i + 1), text) for i, text in enumerate(CORPUS + CORPUS)]
    assert log_texts(page) == expected
    assert [(e.get_attribute("data-seq"), e.text_content())
            for e in console.locator("#messages [data-seq]").all()] == expected
    markup = "img, svg, script, iframe, a, style, b, i"
    assert shadow_eval(page, f"return root.querySelectorAll('.log :is({markup}), .status :is({markup})')"
                             ".length") == 0
    assert console.locator(f"#messages :is({markup})").count() == 0
    for each in (page, console):
        assert_inert(each, dialogs)


def test_proactive_invitation_can_be_dismissed_or_accepted(stack, site, agent, open_page):
    from playwright.sync_api import expect

    console = agent(name="Ada")
    page = open_page()
    w(page, ".launcher").click()  # a visitor who opened the chat once keeps a socket
    page.wait_for_function("() => localStorage.getItem('ctc.token')")
    page.keyboard.press("Escape")
    visitor = visitor_id(page)

    invited = console.request({"action": "invite", "visitor": visitor, "text": "Hello?"}, "invited")
    expect(w(page, ".invite")).to_be_visible()
    w(page, ".invite .ghost").click()
    answer = console.expect("invitation_answer")
    assert (answer["id"], answer["accepted"]) == (invited["id"], False)
    expect(w(page, ".invite")).to_be_hidden()

    text = '<img src=x onerror="window.__xss=1">Need a hand choosing a pack?'
    invited = console.request({"action": "invite", "visitor": visitor, "text": text}, "invited")
    expect(w(page, ".invite .t")).to_have_text(text)
    expect(w(page, ".invite .who")).to_have_text("Ada")
    assert w(page, ".invite img").count() == 0
    w(page, ".invite .btn:not(.ghost)").click()
    assert console.expect("invitation_answer")["accepted"] is True
    conv = console.expect("assigned")["conversation"]
    expect(w(page, ".panel")).to_be_visible()
    expect(w(page, ".status")).to_have_text("You're chatting with Ada")
    expect(w(page, '.log [data-seq="1"] .t')).to_have_text(text)  # the invitation opens the chat, as text
    console.say(conv, "Happy to help!")
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("Happy to help!")
    assert w(page, ".log img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"


def test_prechat_form_faq_links_and_the_sites_colour(stack, site, agent, open_page):
    from playwright.sync_api import expect

    admin(stack, site, {"name": "Northwind", "widget": {
        "color": "#ffcc00", "greeting": "Ask us <b>anything</b>", "prechat": True, "faq": [
            {"title": "Returns & <b>refunds</b>", "url": "https://shop.example/returns",
             "keywords": ["refund", "money back"]},
            {"title": "Delivery times", "url": "https://shop.example/delivery",
             "keywords": ["shipping", "parcel"]},
            {"title": "Sizing guide", "url": "https://shop.example/sizes", "keywords": ["size", "fit"]},
        ]}})
    console = agent(name="Ada")
    page = open_page()
    w(page, ".launcher").click()
    expect(w(page, ".prechat")).to_be_visible()
    expect(w(page, ".head h2")).to_have_text("Chat with Northwind")
    expect(w(page, ".greet")).to_have_text("Ask us <b>anything</b>")
    # A light brand colour gets dark text (contrast), computed, not assumed.
    colours = w(page, ".launcher").evaluate("e => [getComputedStyle(e).backgroundColor, "
                                            "getComputedStyle(e).color]")
    assert colours == ["rgb(255, 204, 0)", "rgb(0, 0, 0)"]

    w(page, ".input").fill("How do I get a REFUND? My parcel never came")
    expect(w(page, ".faq a")).to_have_text(["Returns & <b>refunds</b>", "Delivery times"])
    assert w(page, ".faq a").first.get_attribute("href") == "https://shop.example/returns"
    assert w(page, ".faq b").count() == 0
    w(page, ".input").fill("Where is the size chart")
    expect(w(page, ".faq a")).to_have_text(["Sizing guide"])

    w(page, '.prechat input[name="name"]').fill("Sam Rivera")
    w(page, '.prechat input[name="email"]').fill("sam@example.com")
    w(page, ".input").press("Enter")
    assigned = console.expect("assigned")
    assert assigned["summary"]["visitor_name"] == "Sam Rivera"
    assert assigned["summary"]["email"] == "sam@example.com"
    assert assigned["summary"]["preview"] == "Where is the size chart"  # the start's first line
    expect(w(page, ".prechat")).to_be_hidden()
    expect(w(page, ".faqs")).to_be_hidden()


def test_queue_position_is_shown_as_an_ordinal(agent, visitor, open_page):
    from playwright.sync_api import expect

    agent(max_chats=1)
    visitor().start()  # takes the only seat
    visitor().start()  # first in line
    page = open_page()
    w(page, ".launcher").click()
    w(page, ".input").fill("Anyone there?")
    w(page, ".input").press("Enter")
    expect(w(page, ".status")).to_have_text("You are 2nd in line")


# ------------------------------------------------------------------ after hours


PARIS = ZoneInfo("Europe/Paris")
HOURS = {"timezone": "Europe/Paris",
         "week": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}}


def test_after_hours_says_when_we_are_back_and_leaves_a_message_by_email(stack, site, open_page,
                                                                        monkeypatch):
    from playwright.sync_api import expect

    from chalicelib import clock
    from chalicelib.hours import to_ms

    saturday_3pm = to_ms(datetime(2026, 11, 28, 15, 0, tzinfo=PARIS))
    team = f"team-{site}@shop.example"
    admin(stack, site, {"hours": HOURS, "team_email": team, "name": "Northwind"})
    monkeypatch.setattr(clock, "now_ms", lambda: saturday_3pm)
    stack.poller.drain()
    stack.ses.clear()

    page = open_page(timezone_id="America/New_York")  # Monday 09:00 in Paris is 03:00 there
    page.clock.set_fixed_time(saturday_3pm / 1000)
    w(page, ".launcher").click()
    expect(w(page, ".away-text")).to_have_text("We're away — back Monday 03:00")
    expect(w(page, ".compose")).to_be_hidden()
    honeypot = w(page, 'input[name="website"]')
    assert (honeypot.get_attribute("tabindex"), honeypot.get_attribute("aria-hidden")) == ("-1", "true")
    assert honeypot.evaluate("e => e.getBoundingClientRect().right") < 0  # off-screen

    form = w(page, ".leave")
    form.locator('input[name="name"]').fill("Ana")
    form.locator('input[name="email"]').fill("ana@example")  # the browser accepts it, the server not
    form.locator("textarea").fill("Do you ship to Canada?")
    screenshot(page, "widget-offline")
    form.locator('button[type="submit"]').click()
    expect(form.locator(".err")).to_have_text("Please give a valid email address so we can answer.")
    honeypot.evaluate("e => { e.value = 'http://spam.example'; }")  # what a bot does
    form.locator('input[name="email"]').fill("ana@example.org")
    form.locator('button[type="submit"]').click()
    expect(form.locator(".err")).to_have_text("This message looks automated and was not accepted.")
    honeypot.evaluate("e => { e.value = ''; }")
    form.locator('button[type="submit"]').click()
    expect(w(page, ".thanks")).to_have_text("Thanks — we'll reply to ana@example.org by email")

    stack.poller.drain()
    (to_team,) = [e for e in stack.ses.emails() if team in e["destination"]["to"]]
    assert to_team["replyTo"] == ["ana@example.org"]
    assert "Do you ship to Canada?" in to_team["body"]["text"]
    assert f"{stack.gateway.http_url}/" in to_team["body"]["text"]  # the page it was written on
    assert [e for e in stack.ses.emails() if "ana@example.org" in e["destination"]["to"]]


def test_without_a_websocket_the_message_is_left_over_rest(stack, site, open_page):
    from playwright.sync_api import expect

    stack.poller.drain()
    stack.ses.clear()
    page = open_page(None)
    page.route_web_socket(re.compile(r"/ws"), lambda ws: None)  # a proxy that eats WebSockets
    page.goto(f"{stack.gateway.http_url}/billing.html")  # a signed-in customer: ChatWidget.identify()
    w(page, ".launcher").wait_for()
    page.get_by_role("button", name="Ask us in the chat").click()  # ChatWidget.open()
    # Open hours but nobody on shift: no time to promise.
    expect(w(page, ".away-text")).to_have_text("We'll reply by email as soon as we can")
    form = w(page, ".leave")
    expect(form.locator('input[name="email"]')).to_have_value("sam.rivera@example.com")
    expect(form.locator('input[name="name"]')).to_have_value("Sam Rivera")
    form.locator("textarea").fill("Sent without a socket")
    form.locator('button[type="submit"]').click()
    expect(w(page, ".thanks")).to_have_text("Thanks — we'll reply to sam.rivera@example.com by email")
    stack.poller.drain()
    (mail,) = [e for e in stack.ses.emails() if "Sent without a socket" in e["body"]["text"]]
    assert mail["replyTo"] == ["sam.rivera@example.com"] and f"{stack.gateway.http_url}/billing.html" in \
        mail["body"]["text"]


# ------------------------------------------------------------------ too long: told, kept, never sent


def _send_frame_room(text_bytes_per_char: int, chars: int) -> int:
    """How many characters over the limit the widget should report for ``chars`` characters
    that are ``text_bytes_per_char`` bytes each once JSON-escaped: the server's character cap
    and, inside a ``send`` frame with the longest ids, its frame cap in bytes."""
    from chalicelib.protocol import MAX_FRAME_BYTES, MAX_TEXT_CHARS

    base = len(json.dumps({"action": "send", "conversation": "c" * 40, "id": "i" * 53, "text": ""},
                          separators=(",", ":")))
    return chars - min(MAX_TEXT_CHARS, (MAX_FRAME_BYTES - base) // text_bytes_per_char)


def test_an_over_long_message_is_not_sent_the_visitor_is_told_and_keeps_it(stack, site, agent, open_page):
    """Over the limit (the server's 4,000 characters, or the frame's bytes with characters
    JSON spells in 6 bytes): the widget says how many characters too many, keeps the text and
    sends no frame at all: the socket stays open and the next message is seq 2."""
    from playwright.sync_api import expect

    from chalicelib.protocol import MAX_FRAME_BYTES, MAX_TEXT_CHARS

    console = agent(name="Ada")
    page = open_page()
    sent: list[str | bytes] = []  # every frame the page sends, from its first
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    conv = chat(page, console, "Hello")
    (socket,) = page.sockets
    page.wait_for_timeout(200)
    before = len(sent)
    frames_in = stack.gateway.counters["frames_in"]
    box, error, count = w(page, ".input"), w(page, ".compose .err"), w(page, ".compose .count")

    # Pasted: the live hint says it (no Enter needed), in the alert line.
    pasted = "x" * (MAX_TEXT_CHARS + 5)
    box.fill(pasted)
    expect(error).to_have_text("Message too long (5 characters over)")
    assert error.get_attribute("role") == "alert"
    box.press("Enter")
    expect(error).to_have_text("Message too long (5 characters over)")
    expect(box).to_have_value(pasted)  # nothing lost
    expect(w(page, ".log > li")).to_have_count(1)  # no pending bubble either

    # Near the limit: a polite count of what is left; the alert is gone.
    box.fill("x" * (MAX_TEXT_CHARS - 10))
    expect(count).to_have_text("10 characters left")
    assert count.get_attribute("role") == "status"
    expect(error).to_be_empty()
    box.press("End")
    box.press_sequentially("xxxxxxxxxxx")  # typed one by one past the limit
    expect(error).to_have_text("Message too long (1 character over)")
    expect(count).to_be_empty()

    # Under 4,000 characters but over the frame budget in bytes (JSON spells \x01 "\u0001").
    controls = "\x01" * 3500
    over = _send_frame_room(6, 3500)
    assert 0 < over < 3500 and len(json.dumps(controls)) > MAX_FRAME_BYTES
    box.fill(controls)
    box.press("Enter")
    expect(error).to_have_text(f"Message too long ({over} characters over)")
    expect(box).to_have_value(controls)

    console.quiet("message", conversation=conv)
    since = sent[before:]
    assert not [f for f in since if isinstance(f, bytes) or json.loads(f)["action"] == "send"], since
    assert stack.gateway.counters["frames_in"] - frames_in == len(since)  # only typing frames arrived
    assert not socket.is_closed()

    # Back under the limit: it goes, on the same socket, as the chat's second message.
    box.fill("Short again")
    box.press("Enter")
    expect(error).to_be_empty()
    expect(box).to_have_value("")
    assert console.expect("message", conversation=conv)["seq"] == 2
    assert page.sockets == [socket] and not socket.is_closed()
    assert max(len(f.encode()) for f in sent if isinstance(f, str)) <= MAX_FRAME_BYTES


def test_an_over_long_offline_message_is_refused_before_any_request_in_french(stack, site, open_page):
    """The leave-a-message form: the same check in the widget's other language, with neither
    the socket's ``leave_message`` nor the REST fallback tried; 4,000 characters do go."""
    from playwright.sync_api import expect

    from chalicelib.protocol import MAX_TEXT_CHARS

    stack.ses.clear()
    page = open_page(locale="fr-FR")
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    w(page, ".launcher").click()
    expect(w(page, ".away-text")).to_have_text("Nous vous répondrons par e-mail dès que possible")
    (socket,) = page.sockets
    sent: list[str | bytes] = []
    socket.on("framesent", lambda payload: sent.append(payload))
    form = w(page, ".leave")
    form.locator('input[name="email"]').fill("lea@example.org")
    text = "é" * (MAX_TEXT_CHARS + 1)
    form.locator("textarea").fill(text)
    form.locator('button[type="submit"]').click()
    expect(form.locator(".err")).to_have_text("Message trop long (1 caractère en trop)")
    expect(form.locator("textarea")).to_have_value(text)
    expect(w(page, ".thanks")).to_be_hidden()
    page.wait_for_timeout(300)
    assert not [f for f in sent if "leave_message" in str(f)] and not posted

    form.locator("textarea").fill("é" * (MAX_TEXT_CHARS - 3))
    expect(form.locator(".count")).to_have_text("Encore 3 caractères")
    expect(form.locator(".err")).to_be_empty()
    form.locator('button[type="submit"]').click()
    expect(w(page, ".thanks")).to_have_text("Merci — nous vous répondrons à lea@example.org par e-mail")
    assert not socket.is_closed()


# ------------------------------------------------------------------ robustness


def test_reconnects_after_the_gateway_restarts_with_nothing_lost_or_doubled(stack, site, agent, clients,
                                                                          open_page):
    from playwright.sync_api import expect

    console = agent(name="Ada")
    page = open_page()
    conv = chat(page, console, "Before the restart")
    console.say(conv, "Reply before the restart")
    expect(w(page, '.log [data-seq="2"]')).to_have_count(1)

    gateway = stack.gateway
    gateway.stop()
    try:
        expect(w(page, ".conn")).to_have_text("Reconnecting…")
        w(page, ".input").fill("Written while offline")
        w(page, ".input").press("Enter")
        expect(w(page, ".log [data-pending]")).to_have_count(1)
    finally:
        gateway.start()  # same port
    back = Client(gateway.ws_url, {"token": console.token})
    clients.append(back)
    back.request({"action": "hello"}, "welcome")
    back.say(conv, "Reply after the restart")  # before or after the widget is back: either way
    page.evaluate("window.dispatchEvent(new Event('online'))")  # the browser noticing the network
    expect(w(page, '.log [data-seq="4"]')).to_have_count(1)
    expect(w(page, ".log [data-pending]")).to_have_count(0)
    expect(w(page, ".conn")).to_be_hidden()
    seqs = [seq for seq, _ in log_texts(page)]
    assert seqs == ["1", "2", "3", "4"]
    assert sorted(text for _, text in log_texts(page)) == sorted([
        "Before the restart", "Reply before the restart", "Written while offline", "Reply after the restart"])
    stored = back.request({"action": "sync", "conversation": conv, "after": 0}, "messages")["items"]
    assert [(str(m["seq"]), m["text"]) for m in stored] == log_texts(page)  # stored once each
    assert len(page.sockets) >= 2


def test_heartbeat_and_a_fresh_connection_before_the_two_hour_limit(stack, agent, open_page):
    from playwright.sync_api import expect

    console = agent(name="Ada")
    page = open_page(None)
    page.clock.install()
    page.goto(f"{stack.gateway.http_url}/")
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    conv = chat(page, console, "Still there in two hours?")
    page.clock.fast_forward("04:30")  # idle for 4.5 minutes: a ping keeps API Gateway's 10 min at bay
    wait_until(page, lambda: any('"ping"' in frame for frame in sent))
    assert len(page.sockets) == 1
    page.clock.fast_forward("01:46:00")  # 110 minutes in: replaced before API Gateway cuts it at 2 h
    wait_until(page, lambda: len(page.sockets) == 2 and page.sockets[0].is_closed())
    console.say(conv, "Yes, on a fresh connection")
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("Yes, on a fresh connection")


def test_an_evicted_tab_waits_to_be_seen_or_used_before_it_reconnects(stack, site, clients, open_page):
    """The visitor opens ten more tabs (at the cap the newest evicts the oldest: this page's).
    Told ``evicted``, the page does not come back while hidden or idle (coming back would
    evict the next oldest tab, and so on for ever); it reconnects once when shown again, and
    once when the person clicks into the widget."""
    hide = ("Object.defineProperty(document, 'visibilityState', {configurable: true, value: %r});"
            "document.dispatchEvent(new Event('visibilitychange'));")
    page = open_page("/")
    w(page, ".launcher").click()  # opens the chat: connects, and the token is kept
    wait_until(page, lambda: page.evaluate("localStorage.getItem('ctc.token')"))
    token = page.evaluate("localStorage.getItem('ctc.token')")
    connects = lambda: stack.gateway.counters["invoke:$connect"]  # noqa: E731

    def evict() -> None:
        sockets = len(page.sockets)
        for _ in range(10):
            tab = Client(stack.gateway.ws_url, {"token": token})
            clients.append(tab)
            tab.request({"action": "hello"}, "welcome")
        wait_until(page, lambda: page.sockets[-1].is_closed())
        before = connects()
        page.wait_for_timeout(2500)  # a reconnect (backoff from 0.5 s) would have come by now
        assert connects() == before and len(page.sockets) == sockets, "reconnected after eviction"

    def comes_back(trigger: Callable[[], Any]) -> None:
        sockets = len(page.sockets)  # counted before the trigger: the reconnect can be that quick
        trigger()
        wait_until(page, lambda: len(page.sockets) == sockets + 1 and not page.sockets[-1].is_closed())
        page.wait_for_timeout(1000)
        assert len(page.sockets) == sockets + 1  # once

    page.evaluate(hide % "hidden")  # hidden: the oldest tab, in the background
    evict()
    comes_back(lambda: page.evaluate(hide % "visible"))
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # idle, visible
    evict()
    comes_back(lambda: w(page, ".panel").click())  # the person uses the open chat


# ------------------------------------------------------------------ accessibility


def focused(page: Any) -> str | None:
    """The class of the focused element inside the widget (None if focus is elsewhere)."""
    return page.evaluate("""([selector]) => {
      const host = document.querySelector(selector);
      const inner = document.activeElement === host ? host.shadowRoot.activeElement : null;
      return inner ? inner.className || inner.tagName : null;
    }""", [W])


def test_keyboard_only_with_a_focus_trap_escape_and_focus_return(agent, open_page):
    from playwright.sync_api import expect

    console = agent(name="Ada")
    page = open_page()
    for _ in range(20):  # Tab through the shop to the launcher
        page.keyboard.press("Tab")
        if focused(page) == "launcher":
            break
    assert focused(page) == "launcher"
    page.keyboard.press("Enter")
    expect(w(page, ".panel")).to_be_visible()
    page.wait_for_function(f"() => document.querySelector('{W}').shadowRoot.activeElement?.matches('.input')")
    panel = w(page, ".panel")
    assert (panel.get_attribute("role"), panel.get_attribute("aria-modal")) == ("dialog", "true")
    assert panel.get_attribute("aria-label")
    log = w(page, "[role=log]")  # implicitly polite; the <ol> of messages inside (an <ol> may not be a log)
    assert log.get_attribute("aria-label") == "Messages" and log.locator("ol.log").count() == 1

    inside = "return root.querySelector('.panel').contains(root.activeElement)"
    seen = set()
    for key in ["Tab"] * 7 + ["Shift+Tab"] * 7:  # round and round, never out
        page.keyboard.press(key)
        assert shadow_eval(page, inside), key
        seen.add(focused(page))
    assert {"input", "btn send", "x close", "mute"} <= seen
    while focused(page) != "input":
        page.keyboard.press("Tab")
    page.keyboard.type("Typed without a mouse")
    page.keyboard.press("Enter")
    assert console.expect("assigned")["summary"]["preview"] == "Typed without a mouse"

    page.keyboard.press("Escape")
    expect(w(page, ".panel")).to_be_hidden()
    assert focused(page) == "launcher"  # focus goes back where it came from
    page.keyboard.press("Enter")
    expect(w(page, ".panel")).to_be_visible()
    assert shadow_eval(page, inside)


def test_mobile_is_full_screen_and_speaks_french(open_page):
    from playwright.sync_api import expect

    page = open_page(viewport={"width": 375, "height": 667}, locale="fr-FR", is_mobile=True, has_touch=True,
                     reduced_motion="reduce")
    expect(w(page, ".launcher")).to_contain_text("Discuter avec nous")
    w(page, ".launcher").tap()
    expect(w(page, ".panel")).to_be_visible()
    assert w(page, ".panel").evaluate("e => getComputedStyle(e).animationName") == "none"  # reduced motion
    box = w(page, ".panel").bounding_box()
    assert {k: round(v) for k, v in box.items()} == {"x": 0, "y": 0, "width": 375, "height": 667}
    expect(w(page, ".launcher")).to_be_hidden()
    expect(w(page, ".away-text")).to_have_text("Nous vous répondrons par e-mail dès que possible")
    expect(w(page, ".leave button[type=submit]")).to_have_text("Envoyer le message")
    screenshot(page, "widget-mobile")
    w(page, ".close").tap()
    expect(w(page, ".panel")).to_be_hidden()
    expect(w(page, ".launcher")).to_be_visible()
