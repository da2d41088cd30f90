"""Rate limits: a flood of messages, a burst of new conversations, offline messages per
address. Each refusal is a clear ``rate_limited`` error frame with ``retry_after`` (seconds)
or an HTTP 429 with ``Retry-After``, and changes nothing.

The app's clock is frozen where a window matters, so no assertion depends on how fast this
machine is."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from chalicelib import config, limits
from chalicelib.errors import RATE_LIMITED
from chalicelib.models import (
    META,
    ConversationModel,
    MessageModel,
    VisitorModel,
    conversation_key,
    visitor_key,
)
from tests.support.browser import chat, w
from tests.support.client import eventually
from tests.support.clock import Clock
from tests.support.flows import start_chat


def _state(conv):
    item = ConversationModel.get(conversation_key(conv), META, consistent_read=True)
    texts = [m.text for m in MessageModel.query(item.pk, MessageModel.sk.startswith("MSG#"),
                                                 consistent_read=True)]
    return int(item.seq), texts


def _raw_item(conv):
    client = ConversationModel._get_connection().connection.client
    return client.get_item(TableName=config.settings().table_name, ConsistentRead=True,
                           Key={"pk": {"S": conversation_key(conv)}, "sk": {"S": META}})["Item"]


def test_a_flood_is_refused_inside_the_message_write_with_a_retry_hint(
        visitor, agent, monkeypatch, dynamodb_calls):
    assert config.settings().messages_per_second == 5
    frozen = Clock(monkeypatch)
    guest, console, conv = start_chat(visitor, agent)
    for n in range(5):
        assert guest.say(conv, f"quick {n}")["seq"] == n + 1  # a burst of 5 within one second
    dynamodb_calls.clear()
    guest.send({"action": "send", "conversation": conv, "id": guest.next_id(), "text": "sixth"})
    refusal = guest.expect_reply(f"{guest.client_id}:{guest.counter}")
    assert refusal["code"] == RATE_LIMITED and refusal["retry_after"] == 1 and refusal["message"]
    assert dynamodb_calls == ["UpdateItem"]  # no extra request: the check is in the write
    assert _state(conv) == (5, [f"quick {n}" for n in range(5)])
    # Another client id (or any counter) does not get around it: the slots are the connection's.
    guest.send({"action": "send", "conversation": conv, "id": "fresh-client:7", "text": "sneaky"})
    assert guest.expect_reply("fresh-client:7")["code"] == RATE_LIMITED
    # A resend of a stored message is still acknowledged, never refused.
    resend = guest.say(conv, "quick 4", message_id=f"{guest.client_id}:5")
    assert resend["type"] == "ack" and resend["seq"] == 5
    # The limit is per connection: the agent is not slowed.
    assert console.say(conv, "no rush")["seq"] == 6
    # After the hint, the very same refused frame goes through.
    frozen.advance(refusal["retry_after"])
    guest.send({"action": "send", "conversation": conv, "id": refusal["ref"], "text": "sixth"})
    assert guest.expect_reply(refusal["ref"])["seq"] == 7
    console.expect("message", text="sixth")
    assert _state(conv)[0] == 7


def test_flood_slots_leave_with_the_connection(visitor, agent):
    guest, _console, conv = start_chat(visitor, agent)
    guest.say(conv, "hello")
    tabs = [c for c, tag in _raw_item(conv)["conns"]["M"].items() if tag["S"].startswith("v:")]
    assert [n for n in _raw_item(conv) if n.startswith(f"rl#{tabs[0]}#")]
    guest.close()
    eventually(lambda: not [n for n in _raw_item(conv) if n.startswith(f"rl#{tabs[0]}#")])


def test_new_conversations_per_visitor_per_hour(visitor, agent, app_settings):
    app_settings(conversations_per_visitor_per_hour=2)
    agent(max_chats=10)
    guest = visitor()
    first = guest.start()
    guest.send({"action": "start"})  # the open one again: not a new conversation, not counted
    assert guest.expect("conversation")["conversation"] == first
    guest.request({"action": "close", "conversation": first}, "closed")
    second = guest.start()
    guest.request({"action": "close", "conversation": second}, "closed")
    guest.send({"action": "start", "ref": "third"})
    refusal = guest.expect("error")
    assert refusal["code"] == RATE_LIMITED and refusal["ref"] == "third"
    assert 1 <= refusal["retry_after"] <= 3600
    stored = VisitorModel.get(visitor_key(guest.welcome["visitor"]), META, consistent_read=True)
    assert stored.conv is None  # the refused start left nothing behind
    assert guest.request({"action": "hello"}, "welcome")["conversation"] is None
    other = visitor()  # another visitor is not affected
    assert other.start()


def test_new_conversations_per_network_whatever_the_visitor_identity(visitor, agent, app_settings):
    """Fresh identities (tokenless connects) do not get round the limit: it also counts per
    source address."""
    agent(max_chats=10)
    app_settings(conversations_per_ip_per_hour=1_000_000)
    assert visitor().start()  # counted from here on; its count tells us where we stand
    from chalicelib import auth, limits
    from chalicelib.models import CounterModel

    key = limits.counter_key(f"start-ip#{auth.fingerprint('127.0.0.1')}", 3600)
    used = int(CounterModel.get(key, META, consistent_read=True).hits)
    app_settings(conversations_per_ip_per_hour=used + 1)
    assert visitor().start()  # the last one this address may open this hour
    newcomer = visitor()  # a brand-new identity, same network
    newcomer.send({"action": "start", "ref": "again"})
    refusal = newcomer.expect("error")
    assert refusal["code"] == RATE_LIMITED and refusal["ref"] == "again" and refusal["retry_after"] >= 1
    stored = VisitorModel.get(visitor_key(newcomer.welcome["visitor"]), META, consistent_read=True)
    assert stored.conv is None
    app_settings(conversations_per_ip_per_hour=0)  # off: allowed again
    assert newcomer.start()


def _post(url: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_offline_messages_per_address_answer_429_with_retry_after(stack, site, visitor, app_settings,
                                                                   address_counters):
    url = f"{stack.gateway.http_url}/api/offline"
    doc = {"site": site, "email": "flood@example.org", "text": "hello"}
    status, _, _ = _post(url, doc)
    assert status == 202
    from chalicelib import auth, limits
    from chalicelib.models import CounterModel

    key = limits.counter_key(f"offline-ip#{auth.fingerprint('127.0.0.1')}", 3600)
    used = int(CounterModel.get(key, META, consistent_read=True).hits)
    app_settings(offline_per_ip_per_hour=used)  # the address is now at its limit
    status, headers, body = _post(url, {**doc, "text": "one more"})
    assert status == 429 and body["code"] == RATE_LIMITED and body["message"]
    assert 1 <= int(headers["Retry-After"]) <= 3600 and body["retry_after"] == int(headers["Retry-After"])
    assert int(CounterModel.get(key, META, consistent_read=True).hits) == used  # refusals are not counted
    guest = visitor()  # the widget's form over the socket: same address, same limit
    guest.send({"action": "leave_message", "email": "flood@example.org", "text": "and again",
                "ref": "lm"})
    refusal = guest.expect("error")
    assert refusal["code"] == RATE_LIMITED and refusal["ref"] == "lm" and refusal["retry_after"] >= 1


def test_failed_sign_ins_answer_429_with_retry_after(stack, agent, monkeypatch, address_counters):
    from chalicelib import agents

    console = agent()
    monkeypatch.setattr(agents, "LOGIN_FAILURES", 2)
    url = f"{stack.gateway.http_url}/api/auth/login"
    answers = [_post(url, {"agent": console.agent_id, "password": "wrong-password"})[0]
               for _ in range(2)]
    assert answers == [401, 401]
    status, headers, body = _post(url, {"agent": console.agent_id, "password": "wrong-password"})
    assert status == 429 and body["code"] == RATE_LIMITED
    assert 1 <= int(headers["Retry-After"]) <= limits.LOGIN_FAILURES_PER_SOURCE.window_seconds


def test_the_widget_slows_down_gently_and_sends_after_the_hint(stack, agent, open_page,
                                                               monkeypatch):
    from playwright.sync_api import expect

    frozen = Clock(monkeypatch)
    console = agent(name="Ada")
    page = open_page()
    conv = chat(page, console, "one")
    for text in ("two", "three", "four", "five", "six"):
        w(page, ".input").fill(text)
        w(page, ".input").press("Enter")
    for text in ("two", "three", "four", "five"):
        assert console.expect("message", conversation=conv)["text"] == text
    expect(w(page, ".status")).to_contain_text("You are sending quickly")  # "six" was refused
    console.quiet("message", wait=1.5)  # ... and is not sent while the window is still full
    frozen.advance(1)
    assert console.expect("message", conversation=conv)["text"] == "six"  # the same message, once
    expect(w(page, ".status")).not_to_contain_text("sending quickly")
    expect(w(page, '.log [data-seq="6"] .t')).to_have_text("six")


def _replies(client, n, prefix, timeout=20.0, refless=False):
    """The next ``n`` replies to frames whose ``ref`` starts with ``prefix``, in order
    (other frames stay in the backlog); with ``refless``, frames without a ref (``status``)
    count as replies too."""
    import time

    def ours(frame):
        return str(frame.get("ref", prefix if refless else "")).startswith(prefix)

    frames = [f for f in client.backlog if ours(f)]
    client.backlog = [f for f in client.backlog if not ours(f)]
    deadline = time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        try:
            frame = json.loads(client.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        (frames if ours(frame) else client.backlog).append(frame)
    return frames


def test_a_status_flood_is_refused_and_other_connections_are_not_slowed(
        visitor, agent, monkeypatch, dynamodb_calls):
    """2,000 ``status`` frames at full speed once slowed everyone's sends; now one connection
    gets its budget and the rest are refused, most of them without a DynamoDB request."""
    from chalicelib import limits
    from chalicelib.protocol import BUDGETS

    frozen = Clock(monkeypatch)
    budget = BUDGETS["query"]
    guest, console, conv = start_chat(visitor, agent)
    flooder = visitor(hello=False)
    flood = 300
    dynamodb_calls.clear()
    for n in range(flood):
        flooder.send({"action": "status", "ref": f"s{n}"})
    replies = _replies(flooder, flood, "s", refless=True)
    answered = [r for r in replies if r["type"] == "status"]
    refused = [r for r in replies if r.get("code") == RATE_LIMITED]
    assert len(replies) == flood and len(answered) == budget.limit
    assert len(refused) == flood - budget.limit
    assert all(1 <= r["retry_after"] <= budget.window_seconds and r["ref"].startswith("s")
               for r in refused)
    # Refused in memory: the flood cost DynamoDB about what its budget did (two or three
    # requests per answered frame), not 300 frames' worth; the slack is for other tests'
    # disconnects still settling in the background.
    assert len(dynamodb_calls) <= flood // 2
    # Meanwhile a legitimate chat on other connections goes on normally.
    assert guest.say(conv, "still here")["type"] == "ack"
    console.expect("message", text="still here")
    # A new container has no memory of the flood: the count on the connection item holds.
    limits.LOCAL.clear()
    flooder.send({"action": "status", "ref": "fresh-container"})
    again = flooder.expect("error")
    assert again["code"] == RATE_LIMITED and again["ref"] == "fresh-container"
    # The next window: answered again.
    frozen.advance(again["retry_after"])
    flooder.request({"action": "status"}, "status")


def test_every_action_has_a_budget_and_its_own_count(visitor, agent, monkeypatch):
    """Each action class is counted separately: a spent ``query`` budget does not stop a
    ``ping`` or a ``typing``, and each of those is limited too."""
    from chalicelib.protocol import ACTION_CLASS, BUDGETS, SCHEMAS

    assert set(ACTION_CLASS) | {"send"} == set(SCHEMAS)
    Clock(monkeypatch)
    guest, console, conv = start_chat(visitor, agent)
    fresh = visitor(hello=False)
    # (action, fields, class, connection, frames of that class it has sent already)
    for action, extra, cls, who, used in (
            ("hello", {}, "query", fresh, 0), ("ping", {}, "ping", fresh, 0),
            ("typing", {"conversation": conv, "on": True}, "signal", guest, 0),
            ("away", {"on": False}, "change", console, 1)):  # the fixture's "shift"
        n = BUDGETS[cls].limit - used + 5
        for i in range(n):
            who.send({"action": action, "ref": f"{action}{i}", **extra})
        # typing has no reply unless refused; the others answer every frame
        expected = 5 if action == "typing" else n
        replies = [r for r in _replies(who, expected, action, timeout=10) if r.get("type") == "error"]
        assert [r["code"] for r in replies] == [RATE_LIMITED] * 5, action


def test_named_limits_keep_their_stored_counter_keys():
    """The counters live in DynamoDB under these keys: one table names them (chalicelib.limits)
    and a renamed prefix would silently reset every live count."""
    assert [limits.STARTS_PER_VISITOR.key("v1"), limits.STARTS_PER_NETWORK.key("h"),
            limits.OFFLINE_PER_VISITOR.key("v1"), limits.OFFLINE_PER_NETWORK.key("h"),
            limits.TRANSCRIPTS_PER_PERSON.key("v:v1"),
            limits.LOGIN_FAILURES_PER_ACCOUNT_AND_SOURCE.key("ann#h"),
            limits.LOGIN_FAILURES_PER_SOURCE.key("h"), limits.LOGIN_FAILURES_PER_ACCOUNT.key("ann"),
            limits.MAILS_PER_NETWORK.key("h"), limits.MAILS_PER_SITE.key("s"),
            limits.MAILS_PER_DEPLOYMENT.key()] == [
        "start#v1", "start-ip#h", "offline-visitor#v1", "offline-ip#h", "transcript#v:v1",
        "login#ann#h", "login-ip#h", "login#ann", "mail-net#h", "mail-site#s", "mail-all"]
    logins = (limits.LOGIN_FAILURES_PER_SOURCE, limits.LOGIN_FAILURES_PER_ACCOUNT,
              limits.LOGIN_FAILURES_PER_ACCOUNT_AND_SOURCE)
    assert {lim.window_seconds for lim in logins} == {900}
    assert limits.MAILS_PER_SITE.window_seconds == limits.STARTS_PER_VISITOR.window_seconds == 3600
