"""The widget in every state a visitor can see, audited with axe-core in real Chromium, and
the states issue 16 added: "End chat" asks first, the chat that ended stays readable after a
reload with earlier conversations listed, and when nobody is on shift the visitor is told at
once and can continue by email.

The widget talks to the real local stack. Where a state needs a frame only another branch's
backend sends today (``no_agents``, ``by_email``: the nowait helper's), the page's WebSocket
is routed through the test (Playwright's ``route_web_socket``): every frame still goes to the
real gateway and back, and the test adds the one frame the backend would send.
``test_nobody_on_shift_end_to_end`` runs the same story with no help once that backend is in.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from chalicelib import protocol
from chalicelib.models import META, VisitorModel, visitor_key
from tests.support.browser import W, assert_accessible, chat, log_texts, screenshot, visitor_id, w
from tests.support.flows import configure_site


def _relay(page: Any, hold: tuple[str, ...] = ()) -> dict[str, Any]:
    """Route the page's WebSocket through the test to the real gateway. Client frames whose
    action is in ``hold`` are kept back (listed in ``held``) instead of going to the server;
    ``to_page(frame)`` delivers a server frame of the test's own."""
    state: dict[str, Any] = {"routes": [], "held": []}

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message) if isinstance(message, str) else {}
            if frame.get("action") in hold:
                state["held"].append(frame)
            else:
                server.send(message)

        ws.on_message(from_page)
        state["routes"].append(ws)

    page.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    state["to_page"] = lambda frame: state["routes"][-1].send(json.dumps(frame))
    return state


def audit(page: Any, state: str) -> None:
    """axe over the widget as it is at rest: once its opening animation (a fade) is over, so
    contrast is measured on the colours people read, not a frame of the fade."""
    page.wait_for_function(f"() => document.querySelector('{W}').shadowRoot.getAnimations()"
                           ".every(a => a.playState !== 'running')")
    assert_accessible(page, state, W)


def _open_conversation(page: Any) -> str:
    """The id of the widget visitor's open conversation (from their item in the table)."""
    return str(VisitorModel.get(visitor_key(visitor_id(page)), META, consistent_read=True).conv)


def test_every_state_from_launcher_to_history_is_accessible(stack, site, agent, open_page):
    from playwright.sync_api import expect

    console = agent(name="Ada")
    page = open_page("/", bypass_csp=True)
    audit(page, "closed launcher")
    w(page, ".launcher").click()
    expect(w(page, ".input")).to_be_visible()
    audit(page, "open idle")

    conv = chat(page, console, "Do you ship to Norway?")
    console.say(conv, "We do, in 3 days.")
    expect(w(page, ".log")).to_contain_text("We do, in 3 days.")
    audit(page, "chatting")

    # "End chat" is not in the header beside the close button, and asks first: one tap cannot end a chat.
    assert w(page, ".head button").count() == 2  # mute and close, nothing else
    end = w(page, ".bar .ghost:has-text('End chat')")
    end.click()
    confirm = w(page, "[role=group]")
    expect(confirm).to_be_visible()
    expect(confirm).to_contain_text("End this chat?")
    expect(w(page, "button:has-text('Keep chatting')")).to_be_focused()  # the safe choice
    audit(page, "end-chat confirmation")
    screenshot(page, "widget-end-confirm")
    console.quiet("closed", conversation=conv)  # asking ended nothing
    w(page, "button:has-text('Keep chatting')").click()
    expect(confirm).to_be_hidden()
    expect(end).to_be_focused()
    end.click()
    confirm.locator("button:has-text('End chat')").click()
    assert console.expect("closed", conversation=conv)["by"] == "visitor"
    expect(w(page, ".status")).to_have_text("You ended the chat. Thanks for talking to us!")
    expect(w(page, ".after")).to_be_visible()
    expect(w(page, ".restart")).to_be_focused()
    audit(page, "ended, rating")

    # Rating buttons say what they mean in words (no emoji font needed); icons are SVG.
    assert [b.inner_text() for b in w(page, ".rate button").all()] == ["Good", "Not good"]
    assert w(page, ".mute svg").count() == 1 and w(page, ".mute").get_attribute("aria-label") == "Mute sounds"

    # A reload: the chat that just ended is still there, read-only, with its ending line.
    page.reload()
    expect(w(page, ".panel")).to_be_visible()
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("We do, in 3 days.")
    assert log_texts(page) == [("1", "Do you ship to Norway?"), ("2", "We do, in 3 days.")]
    expect(w(page, ".status")).to_contain_text("ended")
    expect(w(page, ".after")).to_be_hidden()  # rating and transcript were this tab's, then
    expect(w(page, ".compose")).to_be_hidden()
    audit(page, "ended chat after a reload")

    # A new chat; then the earlier one is listed and opens read-only.
    w(page, ".restart").click()
    past = w(page, "h3:has-text('Previous conversations') + ul button")
    expect(past).to_have_count(1)
    expect(past).to_contain_text("Do you ship to Norway?")
    audit(page, "previous conversations")
    screenshot(page, "widget-history")
    past.click()
    expect(w(page, '.log [data-seq="2"] .t')).to_have_text("We do, in 3 days.")
    expect(w(page, ".compose")).to_be_hidden()
    w(page, ".restart").click()
    expect(w(page, ".input")).to_be_visible()
    expect(w(page, ".log li")).to_have_count(0)


def test_queued_then_nobody_on_shift_offers_email_and_says_where_the_answer_goes(
        stack, site, agent, visitor, open_page):
    from playwright.sync_api import expect

    console = agent(max_chats=1)
    busy = visitor()
    busy.start()
    console.expect("assigned")
    page = open_page(None, bypass_csp=True)
    relay = _relay(page, hold=("continue_by_email",))
    page.goto(stack.gateway.http_url + "/")
    w(page, ".launcher").click()
    w(page, ".input").fill("Is anyone there?")
    w(page, ".input").press("Enter")
    expect(w(page, ".status")).to_have_text("You are 1st in line")
    audit(page, "queued")
    conv = _open_conversation(page)

    # What the backend sends the moment nobody is left on shift (contract frame, nowait).
    relay["to_page"]({"type": "no_agents", "conversation": conv,
                      "message": "Our team has gone for the day.", "email": "pat@example.org"})
    offer = w(page, ".away:has(form)").filter(has_text="Our team has gone for the day.")
    expect(offer).to_be_visible()
    expect(w(page, ".status")).not_to_contain_text("in line")  # no place in a line that does not move
    email = offer.locator("input[type=email]")
    expect(email).to_have_value("pat@example.org")  # the address the chat already has
    audit(page, "no_agents offer")
    screenshot(page, "widget-no-agents")

    # A bad address is refused in the page, nothing sent.
    email.fill("not an address")
    offer.locator("button:has-text('Continue by email')").click()
    expect(w(page, ".compose .err")).not_to_be_empty()
    assert relay["held"] == []
    email.fill("robin@example.org")
    offer.locator("button:has-text('Continue by email')").click()
    for _ in range(50):
        if relay["held"]:
            break
        page.wait_for_timeout(100)
    assert relay["held"] == [{"action": "continue_by_email", "conversation": conv,
                              "email": "robin@example.org", "ref": "cbe"}]
    relay["to_page"]({"type": "by_email", "conversation": conv, "email": "robin@example.org",
                      "summary": {"id": conv, "status": "queued", "by_email": True,
                                  "email": "robin@example.org"}})
    done = w(page, ".note").filter(has_text="We'll answer at robin@example.org; you can close this page")
    expect(done).to_be_visible()
    expect(offer.locator("form")).to_be_hidden()
    expect(w(page, ".log")).to_contain_text("Is anyone there?")  # the chat stays readable
    audit(page, "by_email")
    screenshot(page, "widget-by-email")

    # Closed with a reason (the summary's, from the lifecycle): the ending line says which.
    relay["to_page"]({"type": "closed", "conversation": conv, "by": None,
                      "summary": {"id": conv, "status": "closed", "reason": "moved_to_email"}})
    expect(w(page, ".status")).to_have_text("Moved to email.")
    expect(w(page, ".log")).to_contain_text("Is anyone there?")


def test_prechat_offline_and_mobile_states_are_accessible_and_the_launcher_can_sit_left(
        stack, site, agent, open_page):
    from playwright.sync_api import expect

    configure_site(stack, site, {"widget": {"prechat": True}})
    agent()
    page = open_page("/", bypass_csp=True)
    w(page, ".launcher").click()
    expect(w(page, ".prechat")).to_be_visible()
    audit(page, "pre-chat form")

    phone = open_page("/", bypass_csp=True, viewport={"width": 375, "height": 700}, is_mobile=True,
                      has_touch=True)
    w(phone, ".launcher").click()
    expect(w(phone, ".input")).to_be_visible()
    assert w(phone, ".panel").bounding_box()["width"] == 375
    audit(phone, "mobile viewport")

    # Launcher position "left" (the site's widget setting; the embed's config wins, as here).
    left = open_page("/", init="window.ChatWidget = {position: 'left'};")
    assert w(left, ".launcher").bounding_box()["x"] < 100
    assert w(page, ".launcher").bounding_box()["x"] > 600  # the default: right
    w(left, ".launcher").click()
    assert w(left, ".panel").bounding_box()["x"] < 100


def test_offline_form_is_accessible(stack, site, open_page):
    from playwright.sync_api import expect

    page = open_page("/", bypass_csp=True)  # no agent on shift: the site is away
    w(page, ".launcher").click()
    expect(w(page, "form.leave")).to_be_visible()
    audit(page, "offline form")


@pytest.mark.skipif("continue_by_email" not in protocol.SCHEMAS,
                    reason="needs the nowait helper's backend (continue_by_email, no_agents): "
                           "runs once that is merged")
def test_nobody_on_shift_end_to_end(stack, site, agent, visitor, open_page):
    """The real story, no injected frames: a visitor waits, the last agent goes off shift, the
    widget offers email at once, the visitor gives an address and is told where the answer goes."""
    from playwright.sync_api import expect

    console = agent(max_chats=1)
    busy = visitor()
    busy.start()
    console.expect("assigned")
    page = open_page("/", bypass_csp=True)
    w(page, ".launcher").click()
    w(page, ".input").fill("Still open?")
    w(page, ".input").press("Enter")
    expect(w(page, ".status")).to_have_text("You are 1st in line")
    console.request({"action": "shift", "on": False}, "shift")
    offer = w(page, ".away:has(form)").filter(has_text="Continue by email")
    expect(offer).to_be_visible()
    expect(w(page, ".status")).not_to_contain_text("in line")
    offer.locator("input[type=email]").fill("kim@example.org")
    offer.locator("button:has-text('Continue by email')").click()
    told = "We'll answer at kim@example.org; you can close this page"
    expect(w(page, ".note").filter(has_text=told)).to_be_visible()
    expect(w(page, ".log")).to_contain_text("Still open?")
