"""The XSS corpus (tests/support/xss_corpus.py) at both ends, in Chromium, everywhere people's text is
shown: what a visitor sends, in the real agent console (queue, chat list, messages, visitor
context, notes); what an agent or admin sends, in the real widget (messages, the agent's
name, snippets, the site's name and greeting). Nothing runs, everything reads as typed.

The hostile visitor is a raw WebSocket client: an attacker is not limited to what the widget
lets them type (a page title, a referrer, a pre-chat name are all theirs to choose).
The messages typed in the widget itself are covered by tests/test_widget.py.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.browser import W, sign_in_console
from tests.support.client import Client, rest
from tests.support.flows import PASSWORD
from tests.support.xss_corpus import CORPUS, GUARD, assert_inert

NAME = '<img src=x onerror="window.__xss=20">Zoë "Z" O\'Brien'
# A deliverable address (RFC 5322 dot-atom: validate.email_address refuses "javascript:..." up front now,
# ":" being no part of one) that is still a trap for a naive single-quoted attribute.
EMAIL = "x'/onfocus='window.__xss=21'/autofocus/'@evil.example"
URL = 'https://shop.example/search?q="><svg/onload=window.__xss=22>'
TITLE = "</title><script>window.__xss=23</script>Cheap shoes"
REFERRER = "javascript:window.__xss=24"
NOTE = '<img src=x onerror="window.__xss=25"> note'


@pytest.fixture
def pages(browser: Any, stack: Any) -> Iterator[tuple[Callable[[str], Any], list[str]]]:
    """Guarded pages (own context each) and the dialogs any of them tried to open."""
    contexts: list[Any] = []
    dialogs: list[str] = []
    errors: list[str] = []

    def open_page(path: str) -> Any:
        context = browser.new_context(locale="en-GB")
        contexts.append(context)
        context.add_init_script(GUARD)
        page = context.new_page()
        page.set_default_timeout(10_000)
        # The console's own leave warning (open chats) is not a payload's: leave, as a person
        # reloading on purpose would; anything else a page opens is recorded and dismissed.
        page.on("dialog", lambda d: d.accept() if d.type == "beforeunload"
                else (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(stack.gateway.http_url + path)
        return page

    yield open_page, dialogs
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def _console(open_page: Callable[[str], Any], agent_id: str) -> Any:
    return sign_in_console(open_page("/console/"), agent_id)


def _texts(page: Any, selector: str) -> list[str]:
    return [e.text_content() for e in page.locator(selector).all()]


def test_visitor_payloads_are_text_in_the_console(stack, site, clients, pages):
    """Queue preview, chat list, messages, visitor context (name, email, page, referrer,
    pages of the visit), the transcript line, and a note the agent writes."""
    from playwright.sync_api import expect

    from chalicelib import agents

    open_page, dialogs = pages
    agent_id = f"a{secrets.token_hex(4)}"
    agents.create(agent_id, "Ada", PASSWORD, site=site, max_chats=1)
    console = _console(open_page, agent_id)

    def visitor() -> Client:
        client = Client(stack.gateway.ws_url, {"site": site})
        clients.append(client)
        client.welcome = client.request({"action": "hello"}, "welcome")
        return client

    busy = visitor()  # takes the agent's only place, so the attacker waits in the queue
    busy_conv = busy.start()
    expect(console.locator(f'#conversations [data-conversation="{busy_conv}"]')).to_have_count(1)

    attacker = visitor()
    attacker.send({"action": "page", "url": URL, "title": TITLE, "referrer": REFERRER})
    attacker.send({"action": "start", "name": NAME, "email": EMAIL})
    conv = attacker.expect("conversation")["conversation"]
    for text in CORPUS:
        assert attacker.say(conv, text)["type"] == "ack"
    console.reload()  # the queue as a console loads it (it is pushed on changes, not per line)
    expect(console.locator("#queue .preview")).to_have_text(CORPUS[0][:140])

    busy.send({"action": "close", "conversation": busy_conv})  # the attacker's turn
    item = console.locator(f'#conversations [data-conversation="{conv}"]')
    expect(item).to_have_count(1)
    item.click()
    expect(console.locator(f'#messages [data-seq="{len(CORPUS)}"]')).to_have_count(1)
    assert _texts(console, "#messages [data-seq]") == CORPUS
    expect(item).to_contain_text(NAME)
    expect(item.locator(".preview")).to_have_text(CORPUS[-1][:140])
    expect(console.locator("#ctx-name")).to_have_text(NAME)
    expect(console.locator("#ctx-email")).to_have_text(EMAIL)
    expect(console.locator("#ctx-visitor")).to_have_text(attacker.welcome["visitor"])  # for erasure
    expect(console.locator("#ctx-page")).to_have_text(TITLE)
    assert console.locator("#ctx-page a").get_attribute("href") == URL  # http(s) only is linked
    expect(console.locator("#ctx-pages li")).to_have_count(1)
    expect(console.locator("#ctx-pages li a")).to_have_text(TITLE)
    expect(console.locator("#ctx-referrer")).not_to_contain_text("direct or unknown")
    assert console.locator("#ctx-referrer a").count() == 0  # a javascript: referrer is never a link
    expect(console.locator("body")).to_contain_text(f"Email the transcript to {EMAIL}")
    console.fill("#note-input", NOTE)
    console.click("#note-add")
    expect(console.locator('#notes [data-testid="note"]')).to_contain_text(NOTE)
    assert console.locator("#messages :is(img, svg, script, iframe, a, style, b, i, details)").count() == 0
    assert_inert(console, dialogs)


def test_agent_and_admin_payloads_are_text_in_the_widget(stack, site, pages):
    """An agent whose display name is markup sends the corpus and a snippet from the real
    console; the site's admin set a markup name, greeting and snippet. The widget shows it
    all as text, and the console's snippet menu does too."""
    from playwright.sync_api import expect

    from chalicelib import agents

    open_page, dialogs = pages
    snippet = '<img src=x onerror="window.__xss=30">Thanks for waiting!'
    site_name = '<i>Shop</i><img src=x onerror="window.__xss=31">'
    greeting = "<script>window.__xss=32</script>Hello & welcome"
    agent_name = 'Ada <img src=x onerror="window.__xss=33"> "Byron"'
    boss = f"boss{secrets.token_hex(3)}"
    agents.create(boss, "Boss", PASSWORD, role="admin", site=site)
    token = Client.login(stack.gateway.http_url, boss, PASSWORD)
    status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}", {
        "name": site_name, "widget": {"greeting": greeting},
        "console": {"snippets": [{"shortcut": "wait", "text": snippet}]}}, token)
    assert status == 200, body
    agent_id = f"a{secrets.token_hex(4)}"
    agents.create(agent_id, agent_name, PASSWORD, site=site)
    console = _console(open_page, agent_id)

    page = open_page(f"/?site={site}")
    page.locator(f"{W} .launcher").click()
    shadow = f"{W} .panel"
    expect(page.locator(shadow)).to_contain_text(greeting)
    expect(page.locator(shadow)).to_contain_text(site_name)
    page.locator(f"{W} .input").fill("hello")
    page.locator(f"{W} .input").press("Enter")
    expect(page.locator(f"{W} .status")).to_have_text(f"You're chatting with {agent_name}")

    console.click("#conversations [data-conversation]")
    for text in CORPUS:
        console.fill("#reply-input", text)
        console.click("#reply-send")
    console.fill("#reply-input", "/wait")
    menu = console.locator('#snippet-menu [data-testid="snippet"] .tx')
    expect(menu).to_have_text(snippet)
    console.locator("#reply-input").press("Enter")  # takes the highlighted snippet
    expect(console.locator("#reply-input")).to_have_value(snippet)
    console.click("#reply-send")

    n = len(CORPUS) + 2
    expect(page.locator(f'{W} .log [data-seq="{n}"]')).to_have_count(1)
    log = [(li.locator(".t").text_content()) for li in page.locator(f"{W} .log > li").all()]
    assert log == ["hello", *CORPUS, snippet]
    names = {e.text_content() for e in page.locator(f"{W} .log .who").all()}
    assert names == {agent_name}
    markup = "img, svg, script, iframe, a, style, b, i, details"
    assert page.locator(f"{W} .log :is({markup})").count() == 0
    assert page.locator(f"{W} .status :is({markup})").count() == 0
    for each in (page, console):
        assert_inert(each, dialogs)
