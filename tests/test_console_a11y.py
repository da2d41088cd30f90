"""The agent console is accessible and legible (issue 16): axe-core (WCAG 2.1 A/AA and best
practice, ``tests.support.browser.assert_accessible``) over every view in real Chromium, the header on
one line at 1280 px with the longest name an agent may have, and report charts readable at
1280 px (axis labels large enough and never overlapping).

The console's CSP allows no injected script, so these contexts bypass it for axe alone.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from chalicelib import agents
from tests.support.browser import assert_accessible, screenshot
from tests.support.flows import PASSWORD
from tests.support.state import MON, WED, seed

WIDE = {"width": 1280, "height": 800}
LONGEST_NAME = "W" * 100  # agents.create allows 100 characters
LONGEST_ID = "w" * 40  # agents.AGENT_ID: 40 characters


@pytest.fixture
def sign_in(console):
    """An agent of this test's site, signed in to the console at 1280x800, CSP bypassed for axe."""

    def go(name: str = "Ada", *, role: str = "agent", shift: bool = True, agent_id: str | None = None) -> Any:
        return console(name, role=role, shift=shift, agent_id=agent_id, bypass_csp=True, viewport=WIDE)

    return go


def test_sign_in_is_accessible(open_page):
    page = open_page("/console/", bypass_csp=True, viewport=WIDE)
    page.wait_for_selector("#login-form")
    assert_accessible(page, "sign-in")
    page.click("#login-submit")  # empty: the browser's own validation, still accessible
    page.fill("#login-agent", "nobody")
    page.fill("#login-password", "wrong password")
    page.click("#login-submit")
    page.wait_for_function("() => document.querySelector('#login-error').textContent.length > 0")
    assert_accessible(page, "sign-in with an error")


def test_chats_waiting_list_and_transfer_dialog_are_accessible(stack, site, sign_in, visitor, agent):
    from playwright.sync_api import expect

    busy = agent(name="Bo", max_chats=1)  # on shift (the site is open) and full: the next one waits
    visitor().start()
    busy.expect("assigned")
    waiting = visitor()
    waiting.send({"action": "start"})
    conv = waiting.expect("conversation")["conversation"]
    waiting.say(conv, "Do you have these in size 44?")
    ada = sign_in("Ada", role="admin", shift=False)  # off shift: picks by hand
    expect(ada.locator("#queue [data-testid=queue-item]")).to_have_count(1)
    assert_accessible(ada, "chats: the waiting list")

    ada.locator("#queue [data-testid=accept]").first.click()
    expect(ada.locator("#messages")).to_contain_text("size 44")
    ada.fill("#reply-input", "Let me check.")
    ada.click("#reply-send")
    expect(ada.locator("#messages")).to_contain_text("Let me check.")
    assert_accessible(ada, "chats: an open chat with the visitor beside it")

    ada.click("#transfer-open")
    expect(ada.locator("#transfer-box")).to_be_visible()
    assert_accessible(ada, "chats: the transfer form")

    ada.click("#help-open")
    expect(ada.locator("#help")).to_be_visible()
    assert_accessible(ada, "the keyboard shortcuts dialog")


def test_visitors_team_history_and_settings_are_accessible(stack, site, sign_in, visitor):
    from playwright.sync_api import expect

    from chalicelib import sites

    sites.update(site, {"widget": {"presence": True, "faq": [{"title": "Sizes", "url": "https://shop.example/sizes"}]},
                        "console": {"snippets": [{"shortcut": "hi", "text": "Hello!"}],
                                    "rules": [{"id": "r1", "text": "Help?", "url_contains": "shoes",
                                               "min_pages": 2}]}})
    boss = sign_in("Boss", role="admin")
    guest = visitor()
    guest.send({"action": "page", "url": "https://shop.example/shoes", "title": "Shoes"})

    boss.click("#views [data-view=visitors]")
    expect(boss.locator("#visitors-list tr")).not_to_have_count(0)
    assert_accessible(boss, "visitors")

    boss.click("#views [data-view=team]")
    expect(boss.locator("#ov-agent-list tr")).to_have_count(1)
    assert_accessible(boss, "team")

    boss.click("#views [data-view=history]")
    boss.fill("#history-text", "shoes")
    boss.press("#history-text", "Enter")
    expect(boss.locator("#history-state")).not_to_be_empty()
    assert_accessible(boss, "history")

    boss.click("#views [data-view=settings]")
    expect(boss.locator("[data-testid=site-name]")).to_be_visible()
    expect(boss.locator("#agents-list tr")).to_have_count(1)
    assert_accessible(boss, "settings")
    boss.fill("[data-testid=site-team-email]", "not an address")
    boss.click("[data-testid=site-save]")
    expect(boss.locator("#site-team-email-error")).not_to_be_empty()
    assert_accessible(boss, "settings with a refused field")


def test_reports_are_accessible_and_their_charts_legible_at_1280(stack, site, sign_in):
    from playwright.sync_api import expect

    ids = {"alice": f"alice{secrets.token_hex(3)}", "bob": f"bob{secrets.token_hex(3)}"}
    for key, name in (("alice", "Alice"), ("bob", "Bob")):
        agents.create(ids[key], name, PASSWORD, site=site)
    seed(site, ids["alice"], ids["bob"])
    sue = sign_in("Sue", role="supervisor", shift=False)
    sue.click("[data-view=reports]")
    sue.fill("#rep-from", MON)
    sue.fill("#rep-to", WED)
    sue.click("[data-testid=rep-show]")
    expect(sue.locator("#rep-days tr")).to_have_count(3)
    assert_accessible(sue, "reports")

    # Every axis label: at least 11 px as drawn, inside its chart, and clear of its neighbours.
    labels = sue.evaluate("""() => [...document.querySelectorAll('.charts svg')].map(svg => {
        const box = svg.getBoundingClientRect();
        return {chart: svg.id, box: [box.left, box.top, box.right, box.bottom],
                labels: [...svg.querySelectorAll('text')].filter(t => t.textContent.trim()).map(t => {
                  const r = t.getBoundingClientRect();
                  return {text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize)
                                                     * (box.width / svg.viewBox.baseVal.width || 1),
                          r: [r.left, r.top, r.right, r.bottom]};
                })};
    })""")
    assert len(labels) == 3 and all(chart["labels"] for chart in labels)
    for chart in labels:
        left, top, right, bottom = chart["box"]
        for label in chart["labels"]:
            assert label["size"] >= 11, f"{chart['chart']}: {label['text']!r} drawn at {label['size']:.1f} px"
            x0, y0, x1, y1 = label["r"]
            assert left - 1 <= x0 and x1 <= right + 1 and top - 1 <= y0 and y1 <= bottom + 1, \
                f"{chart['chart']}: {label['text']!r} leaves the chart"
        boxes = [label["r"] for label in chart["labels"]]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                overlap = min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5
                assert not overlap, f"{chart['chart']}: labels overlap at {a} and {b}"
    screenshot(sue, "console-reports")


def test_the_header_stays_on_one_line_at_1280_with_the_longest_name(stack, site, sign_in):
    from playwright.sync_api import expect

    boss = sign_in(LONGEST_NAME, role="admin", agent_id=LONGEST_ID)
    expect(boss.locator("#views [data-view=settings]")).to_be_visible()
    # The widest it gets: the alerts offer and a connection state shown too.
    boss.evaluate("() => { document.querySelector('#alerts').hidden = false; "
                  "document.querySelector('#conn-state').textContent = 'Reconnecting…'; }")
    one_line = boss.evaluate("""() => {
        const header = document.querySelector('header.top');
        const tops = [...header.children].filter(n => n.offsetParent !== null)
          .map(n => Math.round(n.getBoundingClientRect().top + n.getBoundingClientRect().height / 2));
        return {height: header.getBoundingClientRect().height, scroll: header.scrollWidth,
                width: header.clientWidth, rows: new Set(tops).size,
                name: getComputedStyle(document.querySelector('#agent-name')).textOverflow,
                title: document.querySelector('#agent-name').title};
    }""")
    assert one_line["rows"] == 1, one_line
    assert one_line["height"] <= 50, one_line  # one line of buttons, not two
    assert one_line["scroll"] <= one_line["width"], one_line  # nothing cut off at the right either
    assert one_line["title"].startswith(LONGEST_NAME)  # the whole name, on hover
    assert_accessible(boss, "the header with the longest name")


def test_an_agent_who_is_not_an_admin_sees_an_accessible_console(stack, site, sign_in):
    page = sign_in("Cy")
    assert_accessible(page, "chats, nothing open, as a plain agent")


def test_the_closed_site_banner_is_accessible(stack, site, sign_in, monkeypatch):
    from playwright.sync_api import expect

    from chalicelib import sites
    from chalicelib.hours import to_ms
    from tests.support.clock import SATURDAY, WEEKDAYS, Clock

    Clock(monkeypatch, to_ms(SATURDAY))
    sites.update(site, {"hours": WEEKDAYS})
    ada = sign_in("Ada")
    expect(ada.locator("[data-testid=site-closed]")).to_be_visible()
    assert_accessible(ada, "chats with the site-closed banner")
