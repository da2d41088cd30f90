"""The site is the company's from the first minute (issue 16): the site id ("default") never
reaches a visitor or a customer, and the company name comes from make dev / make deploy /
infra.admin (a flag, a prompt at a terminal, never a prompt nobody can answer).

Mail is read back from aws-ses-v2-local (fixture ``mailbox``); visitors are real WebSocket
clients on the local stand-in; the commands' name handling runs against DynamoDB Local.
"""

from __future__ import annotations

import io
import json
import secrets
from typing import Any

import pytest

from chalicelib import sites
from chalicelib.models import SiteModel
from infra import admin, company
from infra.deploy import DeployError
from infra.deploy.site import company_name, ensure_admin_here
from tests.support.client import Client, confirmation_link, rest
from tests.support.flows import mails_to

# Every test here leaves offline messages and transcripts from 127.0.0.1: give the allowances back.
pytestmark = pytest.mark.usefixtures("address_counters")


def _visible_mail(mails: list[dict[str, Any]]) -> str:
    """Everything a reader of these mails sees: subjects and bodies."""
    return "\n".join(m["subject"] + "\n" + m["body"]["text"] for m in mails)


def _chat_with_transcript(stack: Any, visitor: Any, agent: Any, email: str) -> list[dict[str, Any]]:
    """A chat, closed by the visitor with its transcript asked for; the link opened. The
    mails the visitor got: the confirmation, then the transcript."""
    import urllib.request

    console = agent()
    guest = visitor()
    guest.send({"action": "start", "email": email})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    guest.say(conv, "Where is my parcel?")
    guest.request({"action": "close", "conversation": conv, "transcript": True}, "closed")
    with urllib.request.urlopen(confirmation_link(mails_to(stack, email)[0]), timeout=10) as page:
        assert page.status == 200
    return mails_to(stack, email)


def _offline_mails(stack: Any, site: str, email: str) -> str:
    status, _ = rest(stack.gateway.http_url, "POST", "/offline",
                     {"site": site, "email": email, "text": "Do you ship to Norway?"})
    assert status == 202
    to_visitor = mails_to(stack, email)
    assert len(to_visitor) == 1
    return _visible_mail(to_visitor)


def test_an_unnamed_site_never_shows_its_id_to_visitors_or_in_mail(stack, site, visitor, agent, mailbox):
    mailbox("nobody@example.org")  # drains earlier tests' mail
    mails = _chat_with_transcript(stack, visitor, agent, "ida@example.org")
    assert len(mails) == 2 and "Where is my parcel?" in mails[1]["body"]["text"]  # confirmation, transcript
    text = _visible_mail(mails)
    assert site not in text
    assert f"Your chat with {sites.NEUTRAL_NAME}" in text

    offline = _offline_mails(stack, site, "olaf@example.org")
    assert site not in offline and f"Thank you for writing to {sites.NEUTRAL_NAME}" in offline

    status, config = rest(stack.gateway.http_url, "GET", f"/sites/{site}/widget")
    assert status == 200 and config["name"] is None
    assert site not in json.dumps(config)  # the page's embed code names it; nothing to show


def test_a_named_site_carries_its_name_everywhere(stack, site, visitor, agent, mailbox):
    sites.update(site, {"name": "Acme Shoes"})
    mailbox("nobody@example.org")
    text = _visible_mail(_chat_with_transcript(stack, visitor, agent, "jo@example.org"))
    assert "Your chat with Acme Shoes" in text and "Confirm your email address - Acme Shoes" in text
    assert site not in text
    offline = _offline_mails(stack, site, "kai@example.org")
    assert "Thank you for writing to Acme Shoes" in offline and site not in offline
    status, config = rest(stack.gateway.http_url, "GET", f"/sites/{site}/widget")
    assert status == 200 and config["name"] == "Acme Shoes" and site not in json.dumps(config)


def test_a_rule_invitation_comes_from_the_company_never_the_site_id(stack, site, visitor, agent):
    rule = {"id": "look", "text": "Need a size?", "url_contains": "shoes", "min_pages": 1}
    sites.update(site, {"widget": {"presence": True}, "console": {"rules": [rule]}})
    agent()
    guest = visitor()
    guest.send({"action": "page", "url": "https://shop.example/shoes/1"})
    stack.gateway.run_schedules()  # the minute timer catches any rule the page event did not fire
    invitation = guest.expect("invitation")
    assert invitation["from"]["name"] == sites.NEUTRAL_NAME and site not in json.dumps(invitation)


def test_the_console_settings_route_shows_the_name_unset_and_clears_it(stack, site):
    from chalicelib import agents
    from tests.support.flows import PASSWORD

    boss = f"boss{secrets.token_hex(3)}"
    agents.create(boss, "Boss", PASSWORD, role="admin", site=site)
    token = Client.login(stack.gateway.http_url, boss, PASSWORD)
    http = stack.gateway.http_url
    status, doc = rest(http, "GET", f"/sites/{site}", None, token)
    assert status == 200 and doc["name"] is None and doc["display_name"] == sites.NEUTRAL_NAME
    assert rest(http, "PUT", f"/sites/{site}", {"name": "  Acme  "}, token)[1]["name"] == "Acme"
    status, refused = rest(http, "PUT", f"/sites/{site}", {"name": "Acme\nBcc: x@example.org"}, token)
    assert status == 400 and refused["message"].startswith("name:")
    assert sites.get(site).name == "Acme"  # refused: nothing changed
    status, doc = rest(http, "PUT", f"/sites/{site}", {"name": ""}, token)
    assert status == 200 and doc["name"] is None and sites.get(site).name is None


# ------------------------------------------------------------------ make dev / deploy / admin


def test_a_run_nobody_watches_never_prompts(stack, new_site, monkeypatch):
    def no_prompt(_: str) -> str:
        raise AssertionError("prompted in a non-interactive run")

    monkeypatch.setenv("CI", "true")
    site_id = new_site("c")
    assert company.apply(site_id, None, ask=no_prompt).name is None  # neutral until named
    assert company.apply(site_id, "Acme Shoes", ask=no_prompt).name == "Acme Shoes"
    assert company.apply(site_id, None, ask=no_prompt).name == "Acme Shoes"  # kept on the next run
    monkeypatch.delenv("CI")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal either
    assert company.interactive() is False
    assert company.apply(site_id, None, ask=no_prompt).name == "Acme Shoes"


def test_at_a_terminal_the_name_is_asked_for_and_enter_keeps_it(stack, new_site):
    site_id = new_site("c")
    answers = iter(["x" * 101, "Northwind Traders"])  # a refused name is asked again
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    assert company.apply(site_id, None, ask=ask, can_ask=True).name == "Northwind Traders"
    assert len(asked) == 2 and f"[{sites.NEUTRAL_NAME}]" in asked[0]
    assert company.apply(site_id, None, ask=lambda p: "", can_ask=True).name == "Northwind Traders"
    assert company.apply(site_id, "Acme", ask=ask, can_ask=True).name == "Acme"  # the flag wins


def test_admin_create_site_and_site_take_company(stack, capsys):
    site_id = f"adm{secrets.token_hex(4)}"
    try:
        assert admin.main(["create-site", site_id, "--company", "Acme Shoes"]) == 0
        assert sites.get(site_id).name == "Acme Shoes"
        assert json.loads(capsys.readouterr().out)["name"] == "Acme Shoes"
        assert admin.main(["site", site_id, "--company", "Acme Boots"]) == 0
        assert sites.get(site_id).name == "Acme Boots"
        assert admin.main(["site", site_id, "--company", "A\x07"]) == 1
        assert sites.get(site_id).name == "Acme Boots"
    finally:
        SiteModel("SITE", site_id).delete()


def test_deploys_first_admin_names_the_site_and_a_redeploy_keeps_it(stack, monkeypatch):
    monkeypatch.setenv("ADMIN_PASSWORD", "a long enough password")
    site_id = f"dep{secrets.token_hex(4)}"
    try:
        assert ensure_admin_here(site_id, f"ad{site_id}", "Admin", None, "Acme Shoes")["created"]
        assert sites.get(site_id).name == "Acme Shoes"
        ensure_admin_here(site_id, f"ad{site_id}", "Admin", None, None)
        assert sites.get(site_id).name == "Acme Shoes"
        assert company_name("Acme") == "Acme"
        with pytest.raises(DeployError, match="name:"):
            company_name("x" * 101)
    finally:
        from chalicelib import agents

        agents.disable(site_id, f"ad{site_id}")
        SiteModel("SITE", site_id).delete()
