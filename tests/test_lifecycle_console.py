"""The console in Chromium as a visitor leaves: "Visitor left" on the chat and in the waiting
list, then the abandonment timer's close (chalicelib/abandonment.py), as the agent sees it."""

from __future__ import annotations

from chalicelib.lifecycle import ABANDON_DEFAULTS
from tests.support.clock import Clock
from tests.support.flows import gone


def test_the_console_shows_the_visitor_leaving_then_the_abandoned_close(stack, site, console, visitor,
                                                                        monkeypatch):
    """In Chromium: "Visitor left" on the chat (header and list) and in the waiting list, then
    the timer's close with its note, as the agent sees it."""
    from playwright.sync_api import expect

    from chalicelib import clock
    from tests.support.browser import screenshot

    timer = Clock(monkeypatch, clock.now_ms())  # starts at real time: the page ticks on its own clock
    ada = console("Ada", max_chats=1)
    guest = visitor()
    conv = guest.start()
    guest.say(conv, "Do you have this in blue?")
    title = ada.locator("#conv-title")
    expect(title).to_contain_text("Visitor online")
    waiting = visitor()
    queued = waiting.start()
    waiting.say(queued, "Hello, anyone?")
    row = ada.locator(f'#queue [data-conversation="{queued}"]')
    expect(row.locator("[data-testid=presence]")).to_have_text("Visitor online")

    gone(guest, conv)
    gone(waiting, queued)
    # A page change looks like this for a second: not "left" until it lasts (console.js AWAY_AFTER_MS).
    expect(title.locator("[data-testid=presence].away")).to_have_count(0)
    expect(title.locator("[data-testid=presence]")).to_have_text("Visitor left just now", timeout=20_000)
    chat = ada.locator(f'#conversations [data-conversation="{conv}"]')
    expect(chat.locator("[data-testid=presence]")).to_have_text("Visitor left just now")
    expect(row.locator("[data-testid=presence]")).to_have_text("Visitor left just now")
    screenshot(ada, "console-visitor-left")

    timer.advance(ABANDON_DEFAULTS["assigned_after_seconds"] + 1)
    stack.gateway.run_schedules()
    expect(title).to_contain_text("closed: visitor left")
    expect(title.locator("[data-testid=presence]")).to_have_count(0)
    expect(ada.locator("#messages .msg.system")).to_have_text("The visitor left; chat closed after 15 min.")
    expect(ada.locator("#queue")).to_contain_text("Nobody is waiting.")
    screenshot(ada, "console-visitor-left-closed")
