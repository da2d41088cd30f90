"""Items a visitor can grow stay bounded in bytes, and one chat that cannot be written does
not stop the line (issue 15: bounded everywhere). State is checked in DynamoDB Local."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from websockets.exceptions import ConnectionClosed

from chalicelib import config, conversations, frames, protocol, telemetry, visitors
from chalicelib.models import (
    CONVERSATION_MAX_BYTES,
    ITEM_LIMIT,
    META,
    VISITOR_MAX_BYTES,
    AgentModel,
    ConnectionModel,
    ConversationModel,
    VisitorModel,
    agent_key,
    connection_key,
    conversation_key,
    item_bytes,
    visitor_key,
)
from tests.support.client import Client, eventually


def _client() -> Any:
    return ConversationModel._get_connection().connection.client


def raw_item(pk: str) -> dict[str, Any]:
    """An item as DynamoDB stores it (wire form), to measure it."""
    return dict(_client().get_item(TableName=config.settings().table_name,
                                   Key={"pk": {"S": pk}, "sk": {"S": META}}, ConsistentRead=True)["Item"])


def fill_to_the_limit(pk: str, room: int) -> None:
    """Grow an item directly in DynamoDB Local until only ``room`` bytes are left, the way a
    stranger's appends would have left it."""
    size = item_bytes(raw_item(pk))
    name = "zz"
    filler = "x" * (ITEM_LIMIT - size - len(name) - room)
    _client().update_item(TableName=config.settings().table_name, Key={"pk": {"S": pk}, "sk": {"S": META}},
                          UpdateExpression="SET #z = :z", ExpressionAttributeNames={"#z": name},
                          ExpressionAttributeValues={":z": {"S": filler}})


def test_a_chat_that_cannot_be_written_does_not_stop_the_line(visitor, agent):
    """The oldest waiting chat has grown to 400 KB: routing skips it (and counts it), routes
    the next ones, and the agent's place reserved for it is given back."""
    guests = [visitor() for _ in range(3)]
    convs = [g.start() for g in guests]  # nobody on shift: all three wait
    fill_to_the_limit(conversation_key(convs[0]), room=8)
    lines: list[str] = []
    remove = telemetry.add_sink(lines.append)
    try:
        console = agent(max_chats=2)  # comes on shift: the line drains
        got = {console.expect("assigned", timeout=10)["conversation"] for _ in range(2)}
        # metrics are written when the invocation ends, just after its frames went out
        eventually(lambda: any('"RoutingFailures"' in line for line in lines))
    finally:
        remove()
    assert got == {convs[1], convs[2]}
    held = AgentModel.get(agent_key(console.agent_id), META, consistent_read=True)
    assert set(held.convs or ()) == {convs[1], convs[2]}  # no place kept for the stuck chat
    assert ConversationModel.get(conversation_key(convs[0]), META, consistent_read=True).status == "queued"


def test_a_visitor_inventing_client_ids_cannot_grow_the_conversation(visitor, agent, app_settings):
    """Thousands of invented client ids (the longest allowed, the largest counters): only the
    visitor's share is kept, resends still dedupe, and the agent can still write."""
    app_settings(messages_per_second=0)  # the flood limit is not what bounds this
    guest = visitor()
    conv = guest.start()
    ids = [f"{secrets.token_urlsafe(30)}:999999999999" for _ in range(1000)]
    for message_id in ids:
        guest.send({"action": "send", "conversation": conv, "id": message_id, "text": "x"})
    replies = {message_id: guest.expect_reply(message_id, timeout=60) for message_id in ids}
    acked = [m for m, r in replies.items() if r["type"] == "ack"]
    assert len(acked) == conversations.MAX_CLIENTS
    assert {r.get("code") for r in replies.values() if r["type"] == "error"} == {"conflict"}
    size = item_bytes(raw_item(conversation_key(conv)))
    assert size <= CONVERSATION_MAX_BYTES, size
    again = guest.say(conv, "x", acked[0])  # a resend of a kept client: the same message
    assert again["type"] == "ack" and again["seq"] == replies[acked[0]]["seq"]
    console = agent()
    console.expect("assigned", conversation=conv)
    assert console.say(conv, "Hello, how can I help?")["type"] == "ack"  # agents keep their share
    assert guest.expect("message", conversation=conv)["text"] == "Hello, how can I help?"


def test_a_page_flood_of_four_byte_characters_keeps_the_visitor_item_small(visitor):
    """Page after page with the largest address, title and referrer allowed, all in 4-byte
    characters: the visit's history is kept in brief, the item stays within its budget, and
    every page is still recorded (no ``retry``)."""
    guest = visitor()
    key = visitor_key(guest.welcome["visitor"])
    wide = "\U0001f600"  # 4 bytes in UTF-8
    for n in range(visitors.MAX_PAGES + 5):
        url = f"https://shop.example/{n:03d}/" + wide * ((protocol.MAX_URL_BYTES - 26) // 4)
        guest.send({"action": "page", "url": url, "title": wide * 300, "ref": "page",
                    "referrer": "https://elsewhere.example/" + wide * ((protocol.MAX_URL_BYTES - 26) // 4),
                    "tz": "America/Argentina/ComodRivadavia"})
        eventually(lambda url=url: (VisitorModel.get(key, META, consistent_read=True).current_page()
                                    or {}).get("url") == url)
    assert not [f for f in guest.backlog if f.get("type") == "error"]
    item = VisitorModel.get(key, META, consistent_read=True)
    assert len(item.pages) == visitors.MAX_PAGES
    size = item_bytes(raw_item(key))
    assert size <= VISITOR_MAX_BYTES, size


def _hung_up(tab: Client, timeout: float = 5.0) -> bool:
    """True when the server closes ``tab`` within ``timeout`` (frames already on their way
    are read and dropped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            tab.ws.recv(timeout=0.2)
        except TimeoutError:
            continue
        except ConnectionClosed:
            return True
    return False


def _tabs_of(visitor_id: str) -> set[str]:
    return set(VisitorModel.get(visitor_key(visitor_id), META, consistent_read=True).conns or ())


def test_one_visitor_opening_fifty_tabs_keeps_the_newest_ten(visitor, agent):
    """A script opens 50 more sockets with one visitor token, each writing in the chat (so
    each leaves flood-control slots): both items keep only the newest tabs and stay within
    budget, the newest tabs work both ways, the evicted ones are hung up."""
    guest = visitor()
    conv = guest.start()
    console = agent()
    console.expect("assigned", conversation=conv)
    token, who = guest.welcome["token"], guest.welcome["visitor"]
    tabs = [guest]
    for n in range(50):
        tab = visitor(token=token)
        assert tab.welcome["visitor"] == who and tab.welcome["conversation"]["id"] == conv
        tab.client_id, tab.counter = guest.client_id, n + 1  # one client id: not what is bounded here
        assert tab.say(conv, f"tab {n}")["type"] == "ack"
        tabs.append(tab)
    limit = config.settings().visitor_tabs
    assert len(_tabs_of(who)) == limit
    item = ConversationModel.get(conversation_key(conv), META, consistent_read=True)
    assert len(item.connections_of("v:")) == limit
    raw = raw_item(conversation_key(conv))
    assert len([a for a in raw if a.startswith("rl#")]) <= (limit + 1) * config.settings().messages_per_second
    assert item_bytes(raw) <= CONVERSATION_MAX_BYTES
    assert item_bytes(raw_item(visitor_key(who))) <= VISITOR_MAX_BYTES
    newest, evicted = tabs[-limit:], tabs[:-limit]
    assert console.say(conv, "Still there?")["type"] == "ack"
    for tab in newest:
        assert tab.expect("message", conversation=conv, text="Still there?")
        assert tab.request({"action": "hello"}, "welcome")["visitor"] == who
    assert newest[-1].say(conv, "yes")["type"] == "ack"
    assert console.expect("message", conversation=conv, text="yes")
    assert all(_hung_up(tab) for tab in evicted)


def test_an_evicted_tab_is_told_before_it_is_hung_up(visitor):
    """At the cap, the newest tab's ``$connect`` posts ``evicted`` to the oldest tab, then
    closes it: the frame arrives before the socket closes (so the widget waits to be seen
    instead of reconnecting and evicting the next oldest)."""
    oldest = visitor()
    token = oldest.welcome["token"]
    others = [visitor(token=token) for _ in range(config.settings().visitor_tabs - 1)]
    newest = visitor(token=token)  # one too many: the oldest goes
    assert oldest.expect("evicted") == frames.evicted() == {"type": "evicted"}
    assert _hung_up(oldest)
    for tab in [*others, newest]:  # the others are neither told nor hung up
        tab.quiet("evicted", wait=0.2)
    assert newest.request({"action": "hello"}, "welcome")["visitor"] == oldest.welcome["visitor"]


def test_tabs_whose_disconnect_never_came_do_not_lock_the_visitor_out(stack, visitor, agent):
    """A visitor's ten tabs all vanished without a ``$disconnect``: the next one still gets
    in, takes the place of the oldest, and chats; the stale entries' items are gone."""
    guest = visitor()
    conv = guest.start()
    console = agent()
    console.expect("assigned", conversation=conv)
    token, who = guest.welcome["token"], guest.welcome["visitor"]
    for _ in range(config.settings().visitor_tabs - 1):
        visitor(token=token)
    stale = _tabs_of(who)
    assert len(stale) == config.settings().visitor_tabs
    for connection_id in sorted(stale):
        stack.gateway.drop(connection_id)
    fresh = visitor(token=token)  # hello and welcome
    assert fresh.welcome["conversation"]["id"] == conv
    gone = stale - _tabs_of(who)  # the oldest: off the visitor, its item deleted
    assert len(gone) == 1 and ConnectionModel.count(connection_key(min(gone))) == 0
    assert fresh.say(conv, "back again")["type"] == "ack"
    assert console.expect("message", conversation=conv, text="back again")
    assert console.say(conv, "welcome back")["type"] == "ack"
    assert fresh.expect("message", conversation=conv, text="welcome back")


def _send_utf8(client: Client, frame: dict[str, Any]) -> None:
    """As the widget and console send: raw UTF-8 (escaped, 4,000 emoji are 48 KB of JSON)."""
    client.send_raw(json.dumps(frame, ensure_ascii=False))


def _say_utf8(client: Client, conv: str, message_id: str, text: str) -> dict[str, Any]:
    for _ in range(10):
        _send_utf8(client, {"action": "send", "conversation": conv, "id": message_id, "text": text})
        reply = client.expect_reply(message_id, timeout=10)
        if reply.get("code") != "rate_limited":
            return reply
        time.sleep(float(reply["retry_after"]))
    return reply


def test_a_conversation_driven_to_its_worst_case_lives_its_whole_life_in_budget(
        stack, site, visitor, agent, address_counters):
    """Every field a visitor (and the agents) can grow, at its largest, in four-byte characters:
    the starting page, name and email at their byte limits, a full share of client ids with
    the longest messages from both sides, every tab allowed, a transfer with the longest note,
    three transcript requests to the longest addresses, the longest rating comment. After
    each later write of its life (assign, transfer, close, rate) the item is within its budget,
    and the admin's erasure still works on it."""
    from chalicelib import agents
    from tests.support.client import rest
    from tests.support.flows import PASSWORD

    wide = "\U0001f600"  # 4 bytes of UTF-8
    conv_key = ""
    sizes: dict[str, int] = {}

    def measure(step: str) -> None:
        sizes[step] = item_bytes(raw_item(conv_key))
        assert sizes[step] <= CONVERSATION_MAX_BYTES, (step, sizes)

    guest = visitor()
    page = "https://shop.example/p/" + wide * ((protocol.MAX_URL_BYTES - 23) // 4)
    _send_utf8(guest, {"action": "page", "url": page, "title": wide * (protocol.MAX_TITLE_BYTES // 4),
                       "referrer": "https://ref.example/" + wide * ((protocol.MAX_URL_BYTES - 20) // 4)})
    key = visitor_key(guest.welcome["visitor"])
    eventually(lambda: (VisitorModel.get(key, META, consistent_read=True).current_page()
                        or {}).get("url") == page)
    longest = "l" * 64 + "@" + ".".join(["d" * 63, "e" * 63, "f" * 53, "example"])  # 254 bytes
    assert len(longest) == protocol.MAX_EMAIL_BYTES
    _send_utf8(guest, {"action": "start", "name": wide * (protocol.MAX_NAME_BYTES // 4), "email": longest})
    conv = guest.expect("conversation")["conversation"]
    conv_key = conversation_key(conv)
    measure("started")

    first = agent(max_chats=2)
    first.expect("assigned", conversation=conv)
    measure("assigned")
    tabs = [visitor(token=guest.welcome["token"]) for _ in range(config.settings().visitor_tabs - 1)]
    def longest_id() -> str:
        return f"{secrets.token_urlsafe(30)}:{10**12 - 1}"

    for n in range(conversations.MAX_CLIENTS):  # the visitor's whole share of client ids
        tab = tabs[n % len(tabs)]
        assert _say_utf8(tab, conv, longest_id(), wide * 3998 + f"{n:02d}")["type"] == "ack"
    for n in range(conversations.MAX_CLIENTS):  # and the agents' own share
        assert _say_utf8(first, conv, longest_id(), wide * 3998 + f"{n:02d}")["type"] == "ack"
    measure("messages")

    second = agent(max_chats=2)
    _send_utf8(first, {"action": "transfer", "conversation": conv, "to": second.agent_id,
                       "note": wide * protocol.MAX_TEXT_CHARS})
    second.expect("transfer_offer", timeout=10)
    second.send({"action": "transfer_answer", "conversation": conv, "accept": True})
    second.expect("assigned", conversation=conv)
    measure("transferred")

    guest.request({"action": "close", "conversation": conv}, "closed")
    measure("closed")
    for n in range(3):  # the chat's three transcript requests, to the longest addresses
        address = f"{n}" + longest[1:]
        asked = guest.request({"action": "transcript", "conversation": conv, "id": f"worst-{n}",
                               "email": address}, "transcript_queued")
        assert asked["email"] == address
    _send_utf8(guest, {"action": "rate", "conversation": conv, "score": "down",
                       "comment": wide * protocol.MAX_COMMENT_CHARS})
    guest.expect("rated")
    measure("rated")
    assert ITEM_LIMIT - max(sizes.values()) > 300 * 1024, sizes  # room for every later write

    admin_id = f"adm{secrets.token_hex(3)}"
    agents.create(admin_id, "Admin", PASSWORD, role="admin", site=site)
    token = Client.login(stack.gateway.http_url, admin_id, PASSWORD)
    status, _ = rest(stack.gateway.http_url, "DELETE", f"/sites/{site}/visitors/{guest.welcome['visitor']}",
                     None, token)
    assert status == 200  # erasure rewrites or deletes the item: it still can
