"""Privacy: nothing personal in the logs, retention by TTL, and a visitor's data exported and
erased on request (REST and the admin command), queued mail included.

Everything runs through the local stack: real WebSocket clients, the REST routes, the SQS
poller playing Lambda's trigger, aws-ses-v2-local, DynamoDB Local.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chalicelib import clock, config, mail, offline, queue
from chalicelib.models import (
    META,
    ConversationModel,
    CounterModel,
    MessageModel,
    OfflineMessageModel,
    VisitorModel,
    email_key,
    visitor_key,
)
from infra import admin
from infra.local.stack import Stack
from tests.support.client import Client, rest

LONG_PASSWORD = "correct horse battery staple"


def _admin(stack: Stack, site: str, password: str = LONG_PASSWORD) -> tuple[str, str]:
    """A fresh admin of ``site``: (agent id, bearer token)."""
    from chalicelib import agents

    admin_id = f"adm{secrets.token_hex(3)}"
    agents.create(admin_id, "Admin", password, role="admin", site=site)
    assert stack.gateway is not None
    return admin_id, Client.login(stack.gateway.http_url, admin_id, password)


def _ttl_seconds(item: Any) -> float:
    return float(item.ttl.timestamp())


def _mail_drained(stack: Stack) -> None:
    assert stack.poller is not None and stack.ses is not None
    stack.poller.drain()  # earlier tests' jobs
    stack.ses.clear()


# ---- logs -----------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class _Everything(logging.Formatter):
    """For records outside Powertools: the message, every extra field, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: repr(v) for k, v in record.__dict__.items() if k not in ("msg", "args")}
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return json.dumps({"message": text, **extras})


class Captured:
    def __init__(self, *handlers: _Collect) -> None:
        self.handlers = handlers

    def lines(self) -> list[str]:
        return [line for h in self.handlers for line in h.lines]


@pytest.fixture
def app_logs(stack: Stack) -> Iterator[Captured]:
    """Every log record emitted while the test runs, as the log line it would become: the
    app's Powertools logger (JSON on stdout in Lambda; same formatter, so appended keys and
    extras are included) at DEBUG, the app's and the stand-in's stdlib loggers at DEBUG, and
    any other library at INFO. Handlers run in the same process (the gateway's threads, the
    SQS poller, the schedule), so one handler on each logger sees them all."""
    assert stack.app_module is not None
    powertools = stack.app_module.logger
    ours = _Collect(powertools.registered_formatter)
    rest_of_it = _Collect(_Everything())
    named = {"clicktochat": ours, "": rest_of_it, "chalicelib": rest_of_it, "infra": rest_of_it,
             "app": rest_of_it}
    saved = {}
    for name, handler in named.items():
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if name == "" else logging.DEBUG)
    yield Captured(ours, rest_of_it)
    for name, handler in named.items():
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        logger.setLevel(saved[name])


def _leaks(lines: list[str], secrets_: dict[str, str]) -> dict[str, list[str]]:
    return {label: [line for line in lines if value in line]
            for label, value in secrets_.items() if any(value in line for line in lines)}


def test_no_message_text_email_password_or_token_in_the_logs(stack, site, clients, capfd, app_logs):
    """A whole day in one test, every log record captured: sign-in (right and wrong),
    admin REST calls, a visitor with pre-chat name and email, pages, messages both ways, a
    private note, offline messages (WebSocket and REST), a transcript mailed at close, the
    housekeeping timer, a refused token, bad frames, and finally export and erasure. None of
    the distinctive strings may appear in any log line; and log lines must exist, so the
    test cannot pass by capturing nothing."""
    assert stack.gateway is not None and stack.poller is not None
    http, tag = stack.gateway.http_url, secrets.token_hex(4)
    password, wrong = f"pw-{tag}-horse-battery", f"wrong-{tag}-guess"
    name, email = f"Zelda Secretname{tag}", f"zelda.{tag}@private.example"
    offline_email, team_email = f"olga.{tag}@private.example", f"team.{tag}@private.example"
    said = {"visitor message": f"visitor-words-{tag}", "agent message": f"agent-words-{tag}",
            "note": f"note-words-{tag}", "offline text (ws)": f"offline-ws-{tag}",
            "offline text (rest)": f"offline-rest-{tag}", "page title": f"Title-{tag}",
            "page path": f"/private-path-{tag}", "refused frame text": f"refused-words-{tag}"}
    _mail_drained(stack)

    admin_id, admin_token = _admin(stack, site, password)
    assert rest(http, "POST", "/auth/login", {"agent": admin_id, "password": wrong})[0] == 401
    assert rest(http, "PUT", f"/sites/{site}", {"team_email": team_email, "name": "Shop"},
                admin_token)[0] == 200
    assert rest(http, "GET", f"/sites/{site}/agents", None, admin_token)[0] == 200

    console = Client(stack.gateway.ws_url, {"token": admin_token})
    clients.append(console)
    console.request({"action": "hello"}, "welcome")
    console.request({"action": "shift", "on": True}, "shift")

    guest = Client(stack.gateway.ws_url, {"site": site})
    clients.append(guest)
    visitor_token = guest.request({"action": "hello"}, "welcome")["token"]
    guest.send({"action": "page", "url": f"https://shop.example{said['page path']}?q=1",
                "title": said["page title"], "tz": "Europe/Paris"})
    guest.send({"action": "start", "name": name, "email": email})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    assert guest.say(conv, said["visitor message"])["type"] == "ack"
    console.expect("message", conversation=conv)
    assert console.say(conv, said["agent message"])["type"] == "ack"
    console.request({"action": "note", "conversation": conv, "text": said["note"]}, "note")
    console.request({"action": "context", "conversation": conv}, "context")
    guest.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    guest.send({"action": "send", "conversation": "not-mine-123", "id": "abc:1",
                "text": said["refused frame text"]})
    guest.expect("error")
    guest.send_raw('{"action": "send", "text": "' + said["refused frame text"] + '"')  # broken JSON
    guest.expect("error")
    guest.request({"action": "leave_message", "email": email, "name": name,
                   "text": said["offline text (ws)"], "ref": "m1"}, "message_left")
    assert rest(http, "POST", "/offline", {"site": site, "email": offline_email,
                                           "text": said["offline text (rest)"],
                                           "token": visitor_token})[0] == 202
    guest.send({"action": "close", "conversation": conv, "transcript": True})
    guest.expect("closed", conversation=conv)
    stack.poller.drain()  # the offline messages and the transcript go out through SES
    assert stack.ses is not None and len(stack.ses.emails()) >= 5
    stack.gateway.run_schedules()
    with pytest.raises(InvalidStatus):
        Client(stack.gateway.ws_url, {"token": visitor_token[:-4] + "AAAA"})  # tampered: refused
    assert rest(http, "GET", f"/sites/{site}/visitors/{email}/export", None, admin_token)[0] == 200
    assert rest(http, "DELETE", f"/sites/{site}/visitors/{email}", None, admin_token)[0] == 200
    stack.poller.drain()
    for client in list(clients):
        client.close()
    out, err = capfd.readouterr()  # anything printed rather than logged
    secrets_ = {**said, "visitor name": name, "visitor email": email, "offline email": offline_email,
                "team email": team_email, "password": password, "wrong password": wrong,
                "admin token": admin_token, "visitor token": visitor_token,
                "admin token signature": admin_token.split(".")[1],
                "visitor token signature": visitor_token.split(".")[1]}
    assert _leaks([*app_logs.lines(), out, err], secrets_) == {}
    # Not vacuous: the app's own records of this flow were captured, with their keys.
    records = [json.loads(line) for line in app_logs.lines() if line.startswith('{"level"')]
    ours = [r for r in records if r.get("service") == config.SERVICE]
    assert any(r["message"] == "connected" and r.get("site") == site and r.get("role") == "visitor"
               for r in ours)
    assert any(r["message"] == "connection refused" for r in ours)
    assert any(r["message"] == "housekeeping" for r in ours)
    # ... and a leak would be caught: a record carrying a secret in an extra field shows up.
    stack.app_module.logger.info("probe", extra={"detail": email})
    assert "visitor email" in _leaks(app_logs.lines(), {"visitor email": email})


# ---- retention --------------------------------------------------------------------------------


def test_visitor_data_carries_its_expiry_set_by_retention_days(stack, site, visitor, agent,
                                                               app_settings):
    """Every item holding visitor data gets ``ttl`` = its write + RETENTION_DAYS (here set to
    7 to show the setting is read), in the write that creates or updates it."""
    app_settings(retention_days=7)
    console = agent()
    guest = visitor()
    before = time.time()
    guest.send({"action": "page", "url": "https://shop.example/a"})
    guest.send({"action": "start", "email": "ret@example.org"})
    conv = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=conv)
    guest.say(conv, "hello")
    console.request({"action": "note", "conversation": conv, "text": "n"}, "note")
    left = guest.request({"action": "leave_message", "email": "ret@example.org", "text": "later",
                          "ref": "r"}, "message_left")
    after = time.time()
    week = timedelta(days=7).total_seconds()
    key = f"CONV#{conv}"
    items = [ConversationModel.get(key, META), VisitorModel.get(visitor_key(guest.welcome["visitor"]), META),
             OfflineMessageModel.get(f"OFFLINE#{left['id']}", META),
             *MessageModel.query(key, MessageModel.sk > META)]
    assert {i.sk.split("#")[0] for i in items} >= {"META", "MSG", "NOTE"}
    for item in items:
        assert before + week - 1 <= _ttl_seconds(item) <= after + week + 1, item.pk


def test_the_table_expires_items_by_that_attribute(stack):
    """DynamoDB's TTL is on the attribute the models write, in the template and on the table."""
    from infra.deploy.template import load_template

    attribute = ConversationModel.ttl.attr_name
    assert {m.ttl.attr_name for m in (MessageModel, VisitorModel, OfflineMessageModel)} == {attribute}
    spec = load_template()["Resources"]["Table"]["Properties"]["TimeToLiveSpecification"]
    assert spec == {"AttributeName": attribute, "Enabled": True}
    client = ConversationModel._get_connection().connection.client
    described = client.describe_time_to_live(TableName=config.settings().table_name)["TimeToLiveDescription"]
    assert described["TimeToLiveStatus"] == "ENABLED" and described["AttributeName"] == attribute


def _expire(pk: str, sk: str = META) -> None:
    """Move an item's expiry into the past (DynamoDB would delete it, some day)."""
    past = datetime.now(UTC) - timedelta(days=1)
    MessageModel(pk, sk).update(actions=[MessageModel.ttl.set(past)])


def test_items_past_their_expiry_are_not_served(stack, site, visitor, agent):
    """Until DynamoDB gets round to deleting them, expired items are skipped where they are
    served: a resumed visitor's open chat, the messages a client syncs, a queued mail job."""
    console = agent()
    guest = visitor()
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    guest.say(conv, "old words")
    guest.say(conv, "new words")
    _expire(f"CONV#{conv}", "MSG#000000000001")
    synced = guest.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [m["text"] for m in synced["items"]] == ["new words"]

    _expire(f"CONV#{conv}")
    assert ConversationModel.get(f"CONV#{conv}", META).status != "closed"  # still stored
    again = visitor(token=guest.welcome["token"])
    assert again.welcome["visitor"] == guest.welcome["visitor"]
    assert again.welcome["conversation"] is None  # the expired chat is not resumed
    assert again.start() != conv

    _mail_drained(stack)
    message_id = offline.leave(site, {"email": "late@example.org", "text": "expired"})
    _expire(f"OFFLINE#{message_id}")
    queue.enqueue(mail.OfflineJob(message_id))
    assert stack.poller is not None and stack.ses is not None
    stack.poller.drain()
    assert stack.ses.emails() == []


# ---- export and erasure -----------------------------------------------------------------------


def _everything_about(visitor_id: str, email: str, site: str, convs: list[str], offline_ids: list[str],
                      conns: list[str]) -> list[str]:
    """Every key pattern that can hold this visitor's data, queried; what is still there."""
    found = []
    for pk in [visitor_key(visitor_id), *[f"CONV#{c}" for c in convs],
               *[f"OFFLINE#{o}" for o in offline_ids], *[f"CONN#{c}" for c in conns]]:
        found += [f"{i.pk} {i.sk}" for i in MessageModel.query(pk, consistent_read=True)]
    found += [i.pk for i in ConversationModel.visitor_index.query(visitor_id)]
    found += [i.pk for i in ConversationModel.email_index.query(email_key(site, email))]
    window = clock.now_ms() // 3_600_000
    for n in (window, window - 1):
        try:
            found.append(CounterModel.get(f"RATE#offline-visitor#{visitor_id}#{n}", META).pk)
        except CounterModel.DoesNotExist:
            pass
    queued = ConversationModel.queue_index.query(f"QUEUE#{site}")
    history = ConversationModel.queue_index.query(f"HIST#{site}")
    found += [c.pk for c in [*queued, *history] if c.id in convs]
    return found


def _table_mentions(*needles: str) -> list[dict[str, Any]]:
    """A scan of the whole table (test only) for any item mentioning one of ``needles``."""
    client = ConversationModel._get_connection().connection.client
    hits = []
    for page in client.get_paginator("scan").paginate(TableName=config.settings().table_name):
        hits += [item for item in page["Items"] if any(n in json.dumps(item) for n in needles)]
    return hits


@pytest.mark.usefixtures("address_counters")  # leaves a message from 127.0.0.1: a full allowance
def test_export_then_erase_a_visitor_with_an_open_chat_and_queued_mail(stack, site, visitor, agent,
                                                                      new_site):
    """An admin exports everything held about a visitor (by id, and by email), then erases it:
    the open chat ends cleanly for its agent, the visitor's tab is hung up, the mail already
    queued for them sends nothing, and nothing about them is left in the table."""
    assert stack.gateway is not None and stack.poller is not None and stack.ses is not None
    http, tag = stack.gateway.http_url, secrets.token_hex(4)
    email = f"erase.{tag}@private.example"
    _, admin_token = _admin(stack, site)
    _mail_drained(stack)
    console = agent()
    guest = visitor()
    visitor_id = guest.welcome["visitor"]
    guest.send({"action": "page", "url": f"https://shop.example/p-{tag}", "title": f"T-{tag}"})
    guest.send({"action": "start", "name": f"Name-{tag}", "email": email})
    first = guest.expect("conversation")["conversation"]
    console.expect("assigned", conversation=first)
    guest.say(first, f"first-chat-{tag}")
    guest.send({"action": "close", "conversation": first, "transcript": True})  # mail queued
    guest.expect("closed", conversation=first)
    console.expect("closed", conversation=first)
    conv = guest.start()
    console.expect("assigned", conversation=conv)
    guest.say(conv, f"visitor-said-{tag}")
    console.say(conv, f"agent-said-{tag}")
    console.request({"action": "note", "conversation": conv, "text": f"note-{tag}"}, "note")
    left = guest.request({"action": "leave_message", "email": email, "text": f"offline-{tag}",
                          "ref": "m"}, "message_left")["id"]  # mail queued, not yet sent
    conns = sorted(VisitorModel.get(visitor_key(visitor_id), META).conns or ())

    # Export: only admins of this site.
    path = f"/sites/{site}/visitors/{visitor_id}"
    assert rest(http, "GET", f"{path}/export", None, console.token)[0] == 403
    other = new_site("o")
    _, other_admin = _admin(stack, other)
    assert rest(http, "GET", f"/sites/{other}/visitors/{visitor_id}/export", None, other_admin)[0] == 404
    status, by_id = rest(http, "GET", f"{path}/export", None, admin_token)
    assert status == 200
    status, by_email = rest(http, "GET", f"/sites/{site}/visitors/{email}/export", None, admin_token)
    assert status == 200
    for export in (by_id, by_email):
        assert [v["id"] for v in export["visitors"]] == [visitor_id]
        # the offline message is a conversation of its own too (chalicelib.inbox)
        (left_conv,) = [c for c in export["conversations"] if c["id"] not in (first, conv)]
        assert len(export["conversations"]) == 3
        assert [m["text"] for m in left_conv["messages"]] == [f"offline-{tag}"]
        assert [m["text"] for m in export["offline_messages"]] == [f"offline-{tag}"]
    (record,) = [c for c in by_id["conversations"] if c["id"] == conv]
    assert [m["text"] for m in record["messages"]] == [f"visitor-said-{tag}", f"agent-said-{tag}"]
    assert [n["text"] for n in record["notes"]] == [f"note-{tag}"]
    pages = by_id["visitors"][0]["record"]["pages"]
    assert [p["url"] for p in pages] == [f"https://shop.example/p-{tag}"]
    assert by_id["visitors"][0]["connections"]

    # Erase (by email: it finds the visitor, and through them everything else).
    status, body = rest(http, "DELETE", f"/sites/{site}/visitors/{email}", None, admin_token)
    assert status == 200
    assert body["erased"] == {"visitors": 1, "conversations": 3, "messages": 5, "offline_messages": 1}
    closed = console.expect("closed", conversation=conv)
    assert closed["by"] == "erased" and tag not in json.dumps(closed)
    with pytest.raises((ConnectionClosed, AssertionError)):
        for _ in range(20):
            guest.expect("nothing", timeout=0.5)  # the tab is hung up
    welcome = console.request({"action": "hello"}, "welcome")  # the console carries on
    assert welcome["conversations"] == [] and welcome["agent"]["load"] == 0

    stack.poller.drain()  # the transcript and offline-message jobs: dropped, nothing sent
    assert stack.ses.emails() == []
    parked = [d["body"] for d in admin.dead_letters(1000)]  # dropped, not failed and parked
    assert not [b for b in parked if left in b or first in b]
    assert _everything_about(visitor_id, email, site, [first, conv], [left], conns) == []
    assert _table_mentions(visitor_id, email, f"-{tag}") == []
    assert rest(http, "GET", f"{path}/export", None, admin_token)[0] == 404

    # The old token resumes nothing: the visitor comes back as a new one.
    returning = visitor(token=guest.welcome["token"])
    assert returning.welcome["visitor"] != visitor_id
    assert returning.welcome["conversation"] is None


def test_erasing_a_waiting_chat_moves_the_queue(stack, site, visitor, agent):
    """A queued conversation erased: gone from the queue, the next visitor moves up."""
    _, admin_token = _admin(stack, site)
    first, second = visitor(), visitor()
    erased_conv = first.start()
    waiting = second.start()
    second.expect("queued", conversation=waiting, position=2)
    assert stack.gateway is not None
    status, _ = rest(stack.gateway.http_url, "DELETE",
                     f"/sites/{site}/visitors/{first.welcome['visitor']}", None, admin_token)
    assert status == 200
    second.expect("queued", conversation=waiting, position=1)
    console = agent()
    console.expect("assigned", conversation=waiting)
    assert erased_conv not in {c.id for c in ConversationModel.queue_index.query(f"QUEUE#{site}")}


def test_admin_command_exports_and_erases(stack, site, visitor, capsys, tmp_path):
    """``python -m infra.admin visitor export|erase SITE WHO``: the same as the REST routes."""
    guest = visitor()
    visitor_id = guest.welcome["visitor"]
    guest.send({"action": "start", "email": f"cli.{site}@example.org"})
    conv = guest.expect("conversation")["conversation"]
    guest.say(conv, "from the command line")
    out = tmp_path / "export.json"
    assert admin.main(["visitor", "export", site, f"cli.{site}@example.org", "-o", str(out)]) == 0
    exported = json.loads(out.read_text())
    assert [c["id"] for c in exported["conversations"]] == [conv]
    assert exported["conversations"][0]["messages"][0]["text"] == "from the command line"
    assert admin.main(["visitor", "erase", site, visitor_id]) == 1  # needs --yes
    assert admin.main(["visitor", "erase", site, visitor_id, "--yes"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["erased"]["conversations"] == 1
    assert list(MessageModel.query(f"CONV#{conv}")) == []
    assert admin.main(["visitor", "export", site, visitor_id]) == 1  # nothing held any more
