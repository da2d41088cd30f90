"""What the widget sends besides messages: pages, pre-chat answers, invitations, config."""

from __future__ import annotations

import secrets

from chalicelib import agents
from chalicelib.models import META, VisitorModel, visitor_key
from chalicelib.visitors import MAX_PAGES
from tests.support.client import Client, eventually, rest
from tests.support.flows import PASSWORD


def _visitor(client):
    return VisitorModel.get(visitor_key(client.welcome["visitor"]), META, consistent_read=True)


def test_page_views_reach_the_agent_of_the_conversation_and_are_kept(visitor, agent):
    console = agent()
    guest = visitor()
    guest.send({"action": "page", "url": "https://shop.example/", "title": "Home"})
    # frames of one connection are handled concurrently (as on Lambda): let this one land
    eventually(lambda: _visitor(guest).page is not None)
    conv = guest.start()
    assert console.expect("assigned")["summary"]["id"] == conv
    guest.send({"action": "page", "url": "https://shop.example/pricing", "title": "Pricing",
                "referrer": "https://shop.example/"})
    seen = console.expect("page")
    assert seen["conversation"] == conv and seen["url"] == "https://shop.example/pricing"
    assert seen["title"] == "Pricing" and seen["visitor"] == guest.welcome["visitor"]
    assert [p["url"] for p in _visitor(guest).visit_pages()] == ["https://shop.example/", "https://shop.example/pricing"]
    guest.send({"action": "page", "url": "javascript:alert(1)"})
    assert guest.expect("error")["code"] == "bad_frame"


def test_the_pages_of_a_visit_are_bounded(visitor):
    guest = visitor()
    for n in range(MAX_PAGES + 3):
        guest.send({"action": "page", "url": f"https://shop.example/p/{n}", "ref": str(n)})
    guest.request({"action": "ping", "ref": "done"}, "pong", ref="done")
    vid = guest.welcome["visitor"]

    def pages():
        return VisitorModel.get(visitor_key(vid), META, consistent_read=True)

    eventually(lambda: pages().page is not None and len(pages().pages) == MAX_PAGES)
    eventually(lambda: pages().page.as_dict()["url"].startswith("https://shop.example/p/"))


def test_a_page_while_its_start_is_still_writing_the_chat_is_no_error(visitor):
    """On a page load the widget sends ``start`` and ``page`` together and they run at once:
    the visitor already points at the chat its start has not written yet."""
    guest = visitor()
    vid = guest.welcome["visitor"]
    VisitorModel(visitor_key(vid)).update(actions=[VisitorModel.conv.set("c" + secrets.token_hex(10))])
    guest.send({"action": "page", "url": "https://shop.example/checkout", "ref": "page"})
    eventually(lambda: VisitorModel.get(visitor_key(vid), META, consistent_read=True).page is not None)
    guest.quiet("error", wait=0.5)


def test_prechat_answers_go_with_the_conversation(visitor, agent):
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "name": "Zoé", "email": "zoe@example.org"})
    guest.expect("conversation")
    summary = console.expect("assigned")["summary"]
    assert summary["visitor_name"] == "Zoé" and summary["email"] == "zoe@example.org"
    other = visitor()
    other.send({"action": "start", "email": "nope"})
    assert other.expect("error")["code"] == "bad_frame"


def test_an_invitation_accepted_starts_a_chat_with_the_inviting_agent(visitor, agent):
    busy = agent(max_chats=2)
    inviter = agent(max_chats=2)  # on shift with room: the chat is theirs (test_invitations: otherwise)
    guest = visitor()
    invited = inviter.request({"action": "invite", "visitor": guest.welcome["visitor"],
                               "text": "Can I help you decide?"}, "invited")
    card = guest.expect("invitation")
    assert card["text"] == "Can I help you decide?" and card["id"] == invited["id"]
    guest.send({"action": "invitation", "id": card["id"], "accept": True})
    answer = inviter.expect("invitation_answer")
    assert answer["accepted"] is True
    assigned = inviter.expect("assigned")
    assert assigned["summary"]["agent"] == inviter.welcome["agent"]["name"]
    busy.quiet("assigned")
    guest.send({"action": "invitation", "id": card["id"], "accept": True})
    assert guest.expect("error")["code"] == "not_found"  # answered once


def test_a_dismissed_invitation_tells_the_agent_and_starts_nothing(visitor, agent):
    inviter = agent()
    guest = visitor()
    inviter.request({"action": "invite", "visitor": guest.welcome["visitor"], "text": "Hi!"}, "invited")
    card = guest.expect("invitation")
    second_tab = visitor(token=guest.welcome["token"])
    guest.send({"action": "invitation", "id": card["id"], "accept": False})
    assert inviter.expect("invitation_answer")["accepted"] is False
    assert second_tab.expect("invitation_closed")["id"] == card["id"]
    inviter.quiet("assigned")
    guest.send({"action": "invite", "visitor": "x", "text": "visitors cannot invite"})
    assert guest.expect("error")["code"] == "forbidden"


def test_widget_config_is_public_and_only_admins_change_it(stack, site):
    http = stack.gateway.http_url
    status, body = rest(http, "GET", f"/sites/{site}/widget")
    assert status == 200 and body["prechat"] is False and body["faq"] == [] and "online" in body["status"]
    member = f"m{secrets.token_hex(3)}"
    agents.create(member, "Member", PASSWORD, site=site)
    token = Client.login(http, member, PASSWORD)
    faq = [{"title": "Shipping times", "url": "https://shop.example/help/shipping",
            "keywords": ["delivery", "ship"]}]
    assert rest(http, "PUT", f"/sites/{site}", {"widget": {"faq": faq}}, token)[0] == 403
    assert rest(http, "PUT", f"/sites/{site}", {"widget": {"faq": faq}})[0] == 401
    boss = f"b{secrets.token_hex(3)}"
    agents.create(boss, "Boss", PASSWORD, role="admin", site=site)
    admin_token = Client.login(http, boss, PASSWORD)
    status, _ = rest(http, "PUT", f"/sites/{site}", {"widget": {"faq": faq, "prechat": True,
                                                                "color": "#224466"}}, admin_token)
    assert status == 200
    status, body = rest(http, "GET", f"/sites/{site}/widget")
    assert body["faq"] == faq and body["prechat"] is True and body["color"] == "#224466"
    bad = rest(http, "PUT", f"/sites/{site}", {"widget": {"color": "red; background:url(x)"}},
               admin_token)
    assert bad[0] == 400 and "widget.color" in bad[1]["message"]
