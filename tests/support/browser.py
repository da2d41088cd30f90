"""Headless Chromium for the tests of what people see, as a pytest plugin (tests/conftest.py
loads it): the ``browser``, ``open_page`` (a page per person, its widget on the test's site),
``console`` (an agent signed in to the console), and the helpers every browser test shares.

Debian's Chromium (``/usr/bin/chromium``) driven by Playwright; ``playwright install`` cannot
download here. Without Chromium the browser tests skip, except in CI where they must run.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.client import Client
from tests.support.flows import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# As root, without the background-networking flags Chromium keeps calling hosts it cannot reach.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = ROOT / "tests" / "artifacts"
W = "[data-chat-widget]"  # the widget's host; Playwright's CSS selectors pierce its shadow root

# An init script counting beeps: widget and console synthesise them with WebAudio (one
# oscillator per beep, see widget/chatlink.js), so a test can hear without a sound card.
COUNT_BEEPS = """(() => {
  window.__beeps = 0;
  const Ctx = window.AudioContext;
  if (!Ctx) return;
  const make = Ctx.prototype.createOscillator;
  Ctx.prototype.createOscillator = function () { window.__beeps += 1; return make.apply(this, arguments); };
})();"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module: Playwright's sync API keeps an event loop running in
    this thread while it is open, which other modules' ``asyncio.run`` cannot share."""
    if not CHROMIUM.exists() and os.environ.get("CI") != "true":
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser: Any, stack: Any, site: str, app_settings: Callable[..., Any]) -> Iterator[Any]:
    """``open_page(path, init=..., **context_options)``: a page in a fresh browser context (its
    own storage: another person) whose widget talks to this test's site. ``path=None`` opens
    nothing yet; a shop page waits for the widget's launcher; the console gets a desktop-sized
    window. ``page.sockets`` lists the WebSockets the page opened. No JavaScript error may
    happen on any of them."""
    app_settings(offline_per_ip_per_hour=1000)  # every test comes from 127.0.0.1
    contexts: list[Any] = []
    errors: list[str] = []

    def new_page(path: str | None = "/", *, init: str = "", **options: Any) -> Any:
        console = path is not None and path.startswith("/console")
        options.setdefault("locale", "en-GB")
        if console:
            options.setdefault("viewport", {"width": 1360, "height": 820})
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
            if not console:
                page.locator(f"{W} .launcher").wait_for()
        return page

    yield new_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def console(open_page: Any, site: str) -> Any:
    """``console(name, role=, max_chats=, shift=, agent_id=, **page_options)``: create an agent
    on this test's site and sign them in to the console in a browser (on shift unless
    ``shift=False``); ``page_options`` go to the browser context (viewport, bypass_csp)."""

    from chalicelib import agents

    def sign_in(name: str, *, role: str = "agent", max_chats: int | None = None, shift: bool = True,
                agent_id: str | None = None, **page_options: Any) -> Any:
        agent_id = agent_id or f"{name[:4].lower()}{secrets.token_hex(3)}"
        agents.create(agent_id, name, PASSWORD, role=role, max_chats=max_chats, site=site)
        page = sign_in_console(open_page("/console/", **page_options), agent_id, shift=shift)
        page.agent_id = agent_id
        return page

    return sign_in


def sign_in_console(page: Any, agent_id: str, *, shift: bool = True) -> Any:
    """Sign ``agent_id`` in on a console page (open at /console/) and, unless ``shift=False``,
    go on shift; returns the page."""
    from playwright.sync_api import expect

    page.fill("#login-agent", agent_id)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#shift-toggle")).to_be_enabled()
    if shift:
        page.click("#shift-toggle")
        expect(page.locator("#shift-toggle")).to_have_attribute("aria-pressed", "true")
    return page


def w(page: Any, selector: str) -> Any:
    """A locator inside the widget."""
    return page.locator(f"{W} {selector}")


def log_texts(page: Any) -> list[tuple[str | None, str | None]]:
    """(data-seq, text) of every message in the widget, in order."""
    return [(li.get_attribute("data-seq"), li.locator(".t").text_content())
            for li in w(page, ".log > li").all()]


def visitor_id(page: Any) -> str:
    """The visitor behind the widget's stored token (its subject claim)."""
    token = page.evaluate("localStorage.getItem('ctc.token')")
    payload = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["s"])


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


def leave_message(page: Any, email: str, text: str) -> None:
    """With nobody on shift, open the widget and leave a message with its form; wait for the
    thanks."""
    from playwright.sync_api import expect

    if not w(page, ".panel").is_visible():
        w(page, ".launcher").click()
    # Connected first (the welcome's token stored): sent then, the message is the visitor's,
    # in their history; a form sent before goes over REST without a token, as nobody's. (The
    # page's CSP forbids wait_for_function.)
    wait_until(page, lambda: page.evaluate("localStorage.getItem('ctc.token')"))
    form = w(page, ".leave")
    form.locator('input[name="email"]').fill(email)
    form.locator("textarea").fill(text)
    form.locator('button[type="submit"]').click()
    expect(w(page, ".thanks")).to_contain_text(email)


def take_and_reply(page: Any, text: str) -> Any:
    """In the console: take the (only) message under Messages and answer it in the
    conversation it becomes; that conversation's list entry."""
    from playwright.sync_api import expect

    item = page.locator("#inbox [data-testid=inbox-item]")
    expect(item).to_have_count(1)
    item.locator("[data-testid=take]").click()
    chat = page.locator("#conversations [data-testid=conversation]")
    expect(chat).to_have_count(1)
    expect(page.locator("#inbox [data-testid=inbox-item]")).to_have_count(0)
    page.fill("#reply-input", text)
    page.press("#reply-input", "Enter")
    expect(page.locator('#messages [data-seq="2"]')).to_contain_text(text)
    return chat


def wait_until(page: Any, check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Poll a Python-side condition while the page keeps running."""
    for _ in range(int(timeout * 10)):
        if check():
            return
        page.wait_for_timeout(100)
    raise AssertionError("condition not reached in time")


def screenshot(page: Any, name: str) -> None:
    """``tests/artifacts/<name>.png`` always; ``docs/<name>.png`` (the README's pictures) only
    with UPDATE_SCREENSHOTS=1 or when missing, so test runs do not churn tracked images."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    docs = ROOT / "docs" / f"{name}.png"
    if os.environ.get("UPDATE_SCREENSHOTS") == "1" or not docs.exists():
        shutil.copyfile(path, docs)


AXE = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"  # pinned in infra/local/package.json
# WCAG 2.0/2.1 A and AA, and axe's best practices (landmarks, headings, region): what a
# demanding customer's accessibility audit runs.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def axe_violations(page: Any, context: str | None = None) -> list[dict[str, Any]]:
    """Run axe-core (Deque's engine, the one browser audits use) in the page as it is now and
    return its violations, each with rule id, impact, help and the offending nodes' targets.
    It reaches into open shadow roots, so the widget is audited inside its host too.
    ``context`` limits the audit to one CSS selector (default: the whole document)."""
    if not AXE.exists():
        raise AssertionError(f"{AXE} missing: make setup installs axe-core into .tools/")
    if not page.evaluate("() => !!window.axe"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async ([context, tags]) => {
          const r = await window.axe.run(context || document,
                                         {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
          const node = n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').slice(0, 200);
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.slice(0, 5).map(node)}));
        }""", [context, AXE_TAGS])
    return list(result)


def assert_accessible(page: Any, state: str, context: str | None = None) -> None:
    """No axe violations in ``state`` (named in the failure, with each rule and node)."""
    found = axe_violations(page, context)
    assert not found, f"axe found {len(found)} violation(s) in {state}:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in found)
