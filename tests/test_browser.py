"""The demo shop's chat widget (visitor) and the agent console in a real browser, against the
local stack. The widget's own features are covered in tests/test_widget.py.

Drives Debian's Chromium (/usr/bin/chromium) with Playwright; ``playwright install`` is not
needed. Without Chromium the tests skip, except in CI (CI=true), where they must run.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import W, sign_in_console
from tests.support.flows import PASSWORD
from tests.support.xss_corpus import IMG, SCRIPT

BOLD = "<b>bold?</b>"


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Any]:
    """New pages, each in its own context (own storage, like two different people)."""
    contexts: list[Any] = []
    errors: list[str] = []

    def new_page() -> Any:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield new_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def texts(page: Any, selector: str) -> list[tuple[str | None, str | None]]:
    """(data-seq, textContent) of each element matching selector, in document order."""
    return [(e.get_attribute("data-seq"), e.text_content()) for e in page.query_selector_all(selector)]


def widget_texts(page: Any) -> list[tuple[str | None, str | None]]:
    """(data-seq, message text) of each message in the widget, in order."""
    return [(li.get_attribute("data-seq"), li.locator(".t").text_content())
            for li in page.locator(f"{W} .log > li").all()]


def test_visitor_and_agent_chat_render_text_literally_and_resume(stack, site, page_factory):
    from playwright.sync_api import expect

    from chalicelib import agents

    base = stack.gateway.http_url
    agent_id = f"a{secrets.token_hex(4)}"
    agent_name = "Ada <i>Lovelace</i>"  # markup in a name is text too
    agents.create(agent_id, agent_name, PASSWORD, site=site)

    console = page_factory()
    console.goto(f"{base}/console/")
    sign_in_console(console, agent_id)

    guest = page_factory()
    guest.goto(f"{base}/?site={site}")  # the demo shop passes ?site= to the widget
    guest.click(f"{W} .launcher")
    for seq, payload in ((1, IMG), (2, SCRIPT)):
        guest.fill(f"{W} .input", payload)
        guest.click(f"{W} .send")
        expect(guest.locator(f'{W} .log [data-seq="{seq}"] .t')).to_have_text(payload)
    expect(guest.locator(f"{W} .status")).to_have_text(f"You're chatting with {agent_name}")

    # The agent's first chat opens by itself; clicking it is what an agent would do anyway.
    console.click("#conversations [data-conversation]")
    expect(console.locator('#messages [data-seq="2"]')).to_have_count(1)
    assert texts(console, "#messages [data-seq]") == [("1", IMG), ("2", SCRIPT)]
    console.fill("#reply-input", BOLD)
    console.click("#reply-send")
    expect(console.locator('#messages [data-seq="3"]')).to_have_text(BOLD)
    expect(guest.locator(f'{W} .log [data-seq="3"] .t')).to_have_text(BOLD)

    for page, log in ((guest, f"{W} .log"), (console, "#messages")):
        assert page.locator(f"{log} img, {log} script, {log} b, {log} i").count() == 0
        assert page.evaluate("typeof window.__xss") == "undefined"
    assert console.locator("#agent-name").text_content() == f"{agent_name} ({agent_id})"

    # A reload resumes the same conversation: every message once, in order.
    guest.reload()
    expect(guest.locator(f"{W} .status")).to_have_text(f"You're chatting with {agent_name}")
    expect(guest.locator(f'{W} .log [data-seq="3"]')).to_have_count(1)
    assert widget_texts(guest) == [("1", IMG), ("2", SCRIPT), ("3", BOLD)]
    assert guest.evaluate("typeof window.__xss") == "undefined"

    # The agent sees the visitor come back and still gets their messages.
    guest.fill(f"{W} .input", "still there?")
    guest.click(f"{W} .send")
    expect(console.locator('#messages [data-seq="4"]')).to_have_text("still there?")
    assert len(texts(console, "#messages > ol > *")) == 4


def test_visitor_with_an_expired_token_starts_over_as_a_new_visitor(stack, site, page_factory):
    from playwright.sync_api import expect

    from chalicelib import auth

    expired = auth.issue(auth.VISITOR, f"v{secrets.token_hex(6)}", site, ttl=60, now=time.time() - 3600)
    guest = page_factory()
    guest.goto(f"{stack.gateway.http_url}/?site={site}")
    # A returning visitor whose stored token expired: the server refuses the handshake, the
    # widget forgets the token and comes back as a new visitor with a fresh one.
    guest.evaluate("([token]) => localStorage.setItem('ctc.token', token)", [expired])
    guest.reload()
    guest.wait_for_function("([old]) => (localStorage.getItem('ctc.token') || old) !== old", arg=[expired])
    token = guest.evaluate("localStorage.getItem('ctc.token')")
    assert auth.verify(token).site == site
    guest.click(f"{W} .launcher")  # nobody on shift: the leave-a-message form
    expect(guest.locator(f"{W} .away-text")).to_have_text("We'll reply by email as soon as we can")
