"""The console's Settings for what visitors see (issue 16): company name, team email, greeting,
colour, launcher position, pre-chat fields, offline message; refusals next to their field and
nothing saved; and the banner agents on shift get while the site shows visitors "We're away".

Real Chromium on the local stack; the server's clock is frozen (``tests.support.clock.Clock``) for the
business-hours cases, and the minute timer is never needed: status flips are pushed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import sites
from chalicelib.hours import to_ms
from tests.support.browser import screenshot
from tests.support.client import rest
from tests.support.clock import SATURDAY, WEEKDAYS, Clock
from tests.support.flows import member_token


def test_an_admin_names_the_company_and_shapes_the_widget_in_settings(stack, site, console):
    from playwright.sync_api import expect

    boss = console("Boss", role="admin")
    boss.click("#views [data-view=settings]")
    form = boss.locator("#site-form")
    name = form.locator("[data-testid=site-name]")
    expect(name).to_have_value("")
    expect(name).to_have_attribute("placeholder", sites.NEUTRAL_NAME)  # what visitors read meanwhile

    name.fill("Acme Shoes")
    form.locator("[data-testid=site-team-email]").fill("not an address")
    form.locator("[data-testid=site-greeting]").fill("Hi! Questions about sizes?")
    form.locator("[data-testid=site-color]").fill("#224466")
    form.locator("[data-testid=site-position-left]").check()
    form.locator("[data-testid=site-prechat-name]").select_option("required")
    form.locator("[data-testid=site-prechat-email]").select_option("optional")
    form.locator("[data-testid=site-offline]").fill("We're at the workshop; leave us a line.")
    form.locator("[data-testid=site-save]").click()

    # Refused by the server: its words next to the field, the field marked, nothing saved.
    error = boss.locator("#site-team-email-error")
    expect(error).to_contain_text("team_email: not a valid email address")
    expect(form.locator("[data-testid=site-team-email]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("[data-testid=site-team-email]")).to_be_focused()
    expect(form.locator(".status[data-for=site]")).to_contain_text("Not saved")
    assert sites.get(site).name is None and sites.get(site).widget is None

    form.locator("[data-testid=site-team-email]").fill("help@acme.example")
    form.locator("[data-testid=site-save]").click()
    expect(form.locator(".status[data-for=site]")).to_have_text("Saved. Visitors see it now.")
    expect(error).to_be_empty()
    saved = sites.get(site)
    widget = sites.widget(saved)
    assert saved.name == "Acme Shoes" and saved.team_email == "help@acme.example"
    assert widget["greeting"] == "Hi! Questions about sizes?" and widget["color"] == "#224466"
    assert widget["position"] == "left" and widget["prechat"] is True
    assert widget["prechat_fields"] == {"name": "required", "email": "optional"}
    assert widget["offline_message"] == "We're at the workshop; leave us a line."

    # What the widget reads (public) carries it; a reload of the console shows it again.
    status, config = rest(stack.gateway.http_url, "GET", f"/sites/{site}/widget")
    assert status == 200 and config["name"] == "Acme Shoes" and config["position"] == "left"
    boss.reload()
    boss.click("#views [data-view=settings]")
    expect(name).to_have_value("Acme Shoes")
    expect(form.locator("[data-testid=site-position-left]")).to_be_checked()
    expect(form.locator("[data-testid=site-prechat-name]")).to_have_value("required")
    boss.set_viewport_size({"width": 1280, "height": 800})
    boss.locator("#settings-title").scroll_into_view_if_needed()
    screenshot(boss, "console-settings")

    # Asking nothing before the first message turns the form off.
    form.locator("[data-testid=site-prechat-name]").select_option("off")
    form.locator("[data-testid=site-prechat-email]").select_option("off")
    form.locator("[data-testid=site-save]").click()
    expect(form.locator(".status[data-for=site]")).to_have_text("Saved. Visitors see it now.")
    assert sites.widget(sites.get(site))["prechat"] is False


@pytest.mark.parametrize(("doc", "field"), [
    ({"widget": {"position": "top"}}, "widget.position"),
    ({"widget": {"offline_message": "x" * 501}}, "widget.offline_message"),
    ({"widget": {"prechat_fields": {"name": "maybe"}}}, "widget.prechat_fields"),
    ({"widget": {"prechat_fields": {"phone": "required"}}}, "widget.prechat_fields"),
    ({"widget": {"prechat_fields": ["name"]}}, "widget.prechat_fields"),
    ({"name": "x" * 101}, "name"),
    ({"name": "Acme\r\nBcc: all@example.org"}, "name"),
    ({"name": 7}, "name"),
    ({"team_email": "nope", "name": "Fine"}, "team_email"),
])
def test_bad_settings_are_refused_with_the_field_named_and_change_nothing(stack, site, doc, field):
    _, token = member_token(stack, site)
    before = sites.public(sites.get(site))
    status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}", doc, token)
    assert status == 400 and body["message"].startswith(field + ":")
    assert sites.public(sites.get(site)) == before


def test_only_admins_change_settings(stack, site):
    _, token = member_token(stack, site, role="agent")
    status, _ = rest(stack.gateway.http_url, "PUT", f"/sites/{site}", {"name": "Mine now"}, token)
    assert status == 403 and sites.get(site).name is None


def test_agents_on_shift_see_when_visitors_read_were_away_and_why(stack, site, admin, console,
                                                                   monkeypatch):
    from playwright.sync_api import expect

    clock = Clock(monkeypatch, to_ms(SATURDAY))
    admin({"hours": WEEKDAYS})
    ada = console("Ada")  # goes on shift on a Saturday
    banner = ada.locator("[data-testid=site-closed]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Your site shows visitors “We're away” (outside business hours)")
    expect(banner).to_contain_text("Open again")
    ada.set_viewport_size({"width": 1280, "height": 800})
    screenshot(ada, "console-closed-banner")

    admin({"hours": None})  # open around the clock: the flip is pushed to the console
    expect(banner).to_be_hidden()

    today = datetime.fromtimestamp(clock.now / 1000, UTC).date().isoformat()
    every_day = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    admin({"hours": {"timezone": "UTC", "week": every_day,
                        "closures": [{"date": today, "note": "Stocktaking"}]}})
    expect(banner).to_contain_text("(closed today: Stocktaking)")

    ada.click("#shift-toggle")  # nobody on shift: visitors read "We're away", but nobody waits in vain
    expect(ada.locator("#shift-toggle")).to_have_attribute("aria-pressed", "false")
    expect(banner).to_be_hidden()
    clock.advance(timedelta(days=3).total_seconds())  # Tuesday: open again
    ada.click("#shift-toggle")
    expect(ada.locator("#shift-toggle")).to_have_attribute("aria-pressed", "true")
    expect(banner).to_be_hidden()


def test_abandonment_timers_are_edited_in_settings(stack, site, console):
    from playwright.sync_api import expect

    if "abandon" not in sites.CONSOLE_DEFAULTS:
        pytest.skip("console.abandon comes with the conversation lifecycle (the life branch)")
    boss = console("Boss", role="admin")
    boss.click("#views [data-view=settings]")
    form = boss.locator("#site-form")
    expect(form.locator("[data-testid=site-abandon-queued]")).to_be_visible()
    form.locator("[data-testid=site-abandon-queued]").fill("300")
    form.locator("[data-testid=site-abandon-assigned]").fill("1200")
    form.locator("[data-testid=site-save]").click()
    expect(form.locator(".status[data-for=site]")).to_have_text("Saved. Visitors see it now.")
    abandon = sites.console(sites.get(site))["abandon"]
    assert abandon["queued_after_seconds"] == 300 and abandon["assigned_after_seconds"] == 1200
