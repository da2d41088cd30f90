"""The demo page (visitor) and the agent console in a real browser, against the local stack.

Drives Debian's Chromium (/usr/bin/chromium) with Playwright; ``playwright install`` is not
needed. Without Chromium the tests skip, except in CI (CI=true), where they must run.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=2</script>"
BOLD = "<b>bold?</b>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() and os.environ.get("CI") != "true":
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


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


def test_visitor_and_agent_chat_render_text_literally_and_resume(stack, site, page_factory):
    from playwright.sync_api import expect

    from chalicelib import agents

    base = stack.gateway.http_url
    agent_id = f"a{secrets.token_hex(4)}"
    agent_name = "Ada <i>Lovelace</i>"  # markup in a name is text too
    agents.create(agent_id, agent_name, PASSWORD, site=site)

    console = page_factory()
    console.goto(f"{base}/console/")
    console.fill("#login-agent", agent_id)
    console.fill("#login-password", PASSWORD)
    console.click("#login-submit")
    expect(console.locator("#shift-toggle")).to_be_enabled()
    console.click("#shift-toggle")
    expect(console.locator("#shift-toggle")).to_have_attribute("aria-pressed", "true")

    guest = page_factory()
    guest.goto(f"{base}/?site={site}")
    guest.click("#chat-open")
    expect(guest.locator("#chat-status")).to_have_text(f"You're chatting with {agent_name}")
    for seq, payload in ((1, IMG), (2, SCRIPT)):
        guest.fill("#chat-input", payload)
        guest.click("#chat-send")
        expect(guest.locator(f'#chat-log [data-seq="{seq}"]')).to_have_text(payload)

    # The agent's first chat opens by itself; clicking it is what an agent would do anyway.
    console.click("#conversations [data-conversation]")
    expect(console.locator('#messages [data-seq="2"]')).to_have_count(1)
    assert texts(console, "#messages [data-seq]") == [("1", IMG), ("2", SCRIPT)]
    console.fill("#reply-input", BOLD)
    console.click("#reply-send")
    expect(console.locator('#messages [data-seq="3"]')).to_have_text(BOLD)
    expect(guest.locator('#chat-log [data-seq="3"]')).to_have_text(BOLD)

    for page, log in ((guest, "#chat-log"), (console, "#messages")):
        assert page.locator(f"{log} img, {log} script, {log} b, {log} i").count() == 0
        assert page.evaluate("typeof window.__xss") == "undefined"
    assert console.locator("#agent-name").text_content() == f"{agent_name} ({agent_id})"

    # A reload resumes the same conversation: every message once, in order.
    guest.reload()
    expect(guest.locator("#chat-status")).to_have_text(f"You're chatting with {agent_name}")
    expect(guest.locator('#chat-log [data-seq="3"]')).to_have_count(1)
    assert texts(guest, "#chat-log > *") == [("1", IMG), ("2", SCRIPT), ("3", BOLD)]
    assert guest.evaluate("typeof window.__xss") == "undefined"

    # The agent sees the visitor come back and still gets their messages.
    guest.fill("#chat-input", "still there?")
    guest.click("#chat-send")
    expect(console.locator('#messages [data-seq="4"]')).to_have_text("still there?")
    assert len(texts(console, "#messages > ol > *")) == 4


def test_visitor_with_an_expired_token_starts_over_as_a_new_visitor(stack, site, page_factory):
    from playwright.sync_api import expect

    from chalicelib import auth

    expired = auth.issue(auth.VISITOR, f"v{secrets.token_hex(6)}", site, ttl=60, now=time.time() - 3600)
    guest = page_factory()
    guest.goto(f"{stack.gateway.http_url}/?site={site}")
    # An expired stored token and a chat to resume: the server refuses the handshake.
    guest.evaluate("([token]) => { localStorage.setItem('ctc.token', token); "
                   "localStorage.setItem('ctc.conv', 'conversation123'); }", [expired])
    guest.reload()
    expect(guest.locator("#chat-status")).to_have_text("Your previous chat has ended.")
    assert guest.evaluate("localStorage.getItem('ctc.token')") is None
    guest.click("#chat-restart")
    expect(guest.locator("#chat-status")).to_have_text("You are number 1 in line")
    token = guest.evaluate("localStorage.getItem('ctc.token')")
    assert token and token != expired and auth.verify(token).site == site
