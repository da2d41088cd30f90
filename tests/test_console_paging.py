"""The console in headless Chromium with lists longer than one 32 KB frame (it follows
``next``/``more``/``cursor`` to the end), a lost first ``welcome`` (asked again on the same
socket, no reconnect), and the admins' sign-in lock events in the Team view.

Hostile pages as in test_frame_budget (``tests.support.flows.queued_hostile_visitors``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib import agents, config, fanout
from tests.support.client import rest
from tests.support.flows import PASSWORD, queued_hostile_visitors


@pytest.fixture(autouse=True)
def many_chats_from_one_address(app_settings: Callable[..., config.Settings]) -> None:
    """Every test client is 127.0.0.1: the per-address limit on new chats is not tested here."""
    app_settings(conversations_per_ip_per_hour=0)


# The console also polls the whole queue while off shift (every 10 s, on focus): with those
# polls muted, what remains to bring the rest of the line is the welcome's ``next`` and ``more``.
MUTE_QUEUE_POLLS = """(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    try {
      const frame = JSON.parse(data);
      if (frame && frame.action === 'queue' && !frame.cursor) return undefined;
    } catch (e) { /* not ours */ }
    return send.call(this, data);
  };
})();"""


def _sign_in(page: Any, agent_id: str, timeout: float = 10_000) -> None:
    from playwright.sync_api import expect

    page.fill("#login-agent", agent_id)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#shift-toggle")).to_be_enabled(timeout=timeout)


def test_the_queue_view_follows_pages_to_every_waiting_chat(stack, site, visitor, open_page):
    from playwright.sync_api import expect

    convs = queued_hostile_visitors(visitor, 45)  # ~1.4 KB each as listed: over two frames
    agent_id = f"ada{secrets.token_hex(3)}"
    agents.create(agent_id, "Ada", PASSWORD, site=site)
    ada = open_page("/console/")
    ada.add_init_script(MUTE_QUEUE_POLLS)
    ada.reload()
    _sign_in(ada, agent_id)
    items = ada.locator("#queue [data-testid=queue-item]")
    expect(items).to_have_count(45, timeout=20_000)
    assert [i.get_attribute("data-conversation") for i in items.all()] == convs
    expect(ada.locator("#queue-count")).to_have_text("45")


def test_the_snippet_picker_offers_every_snippet_of_a_long_list(stack, site, visitor, console, admin):
    from playwright.sync_api import expect

    snippets = [{"shortcut": f"s{n}", "text": f"{n} " + "x" * 1990} for n in range(70)]  # ~140 KB
    admin({"console": {"snippets": snippets}})
    ada = console("Ada")
    guest = visitor()
    conv = guest.start()
    guest.say(conv, "Hello?")
    expect(ada.locator('#messages [data-seq="1"]')).to_have_text("Hello?")
    reply = ada.locator("#reply-input")
    first = ada.locator("#snippet-menu [data-testid=snippet]").first
    for snippet in snippets:  # the list order puts "/sN" first among those starting with it
        reply.fill("")
        reply.press_sequentially("/" + snippet["shortcut"])
        expect(first).to_have_attribute("data-shortcut", snippet["shortcut"])
    reply.press("Tab")
    expect(reply).to_have_value(snippets[-1]["text"])


def test_a_lost_first_welcome_is_asked_for_again_on_the_same_socket(stack, site, visitor, open_page,
                                                                   monkeypatch):
    from playwright.sync_api import expect

    agent_id = f"ada{secrets.token_hex(3)}"
    agents.create(agent_id, "Ada", PASSWORD, site=site)
    guest = visitor()
    conv = guest.start()  # waiting: the console must show it once welcomed
    dropped: list[str] = []
    post_all = fanout._post_all

    def lose_first_welcome(client: Any, connection_id: str, frames: list[bytes]) -> bool:
        if not dropped:
            kept = []
            for data in frames:
                frame = json.loads(data)
                if frame.get("type") == "welcome" and (frame.get("agent") or {}).get("id") == agent_id:
                    dropped.append(connection_id)  # lost on the way: the socket stays open
                else:
                    kept.append(data)
            frames = kept
        return post_all(client, connection_id, frames)

    monkeypatch.setattr(fanout, "_post_all", lose_first_welcome)
    connects = stack.gateway.counters["invoke:$connect"]
    page = open_page("/console/")
    # the widget link asks again after its hello timeout (10 s) and a ping the socket answers
    _sign_in(page, agent_id, timeout=25_000)
    assert dropped, "the first welcome was not dropped"
    expect(page.locator("#agent-name")).to_contain_text("Ada")
    expect(page.locator(f'#queue [data-testid=queue-item][data-conversation="{conv}"]')).to_have_count(1)
    assert stack.gateway.counters["invoke:$connect"] - connects == 1
    assert dropped[0] in stack.gateway.connection_ids()


def test_admins_see_sign_in_locks_in_the_team_view(stack, site, console, address_counters):
    from playwright.sync_api import expect

    boss = console("Boss", role="admin", shift=False)
    victim = f"vic{secrets.token_hex(3)}"
    agents.create(victim, "Victim", PASSWORD, site=site)
    for _ in range(agents.LOGIN_FAILURES + 5):
        status, _body = rest(stack.gateway.http_url, "POST", "/auth/login",
                             {"agent": victim, "password": "wrong password!"})
        if status == 429:
            break
        assert status in (400, 401, 403), status
    assert status == 429
    boss.click("#views [data-view=team]")
    row = boss.locator(f'#lock-list [data-testid=lock-row][data-agent="{victim}"]')
    expect(row).to_have_count(1)
    expect(row).to_contain_text("this account, from one source")
    assert "127.0.0.1" not in boss.locator("#lock-list").inner_text()
    (event,) = agents.lock_events(site)
    expect(row.locator("code")).to_have_attribute("title", event["source"])

