"""After hours, with the clock under test control: status, offline messages, SES, SQS.

Saturday 28 November 2026, 15:00 in Paris: the bank closed at 12:30 and is back on Monday
at 09:00. Every email is read back from aws-ses-v2-local; the mail queue is moto's SQS,
consumed by the same poller that plays Lambda's event source mapping in ``make dev``.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from chalicelib import config, mail, offline, queue, sites
from chalicelib.hours import to_ms
from chalicelib.models import SiteModel
from infra import admin
from tests.support.client import rest
from tests.support.clock import Clock
from tests.support.flows import member_token

PARIS = ZoneInfo("Europe/Paris")
HOURS = {"timezone": "Europe/Paris",
         "week": {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
         | {"sat": [["09:00", "12:30"]]},
         "closures": [{"date": "2026-12-25", "note": "Christmas"}]}
SATURDAY_3PM = to_ms(datetime(2026, 11, 28, 15, 0, tzinfo=PARIS))
MONDAY_9AM = to_ms(datetime(2026, 11, 30, 9, 0, tzinfo=PARIS))
MONDAY_10AM = to_ms(datetime(2026, 11, 30, 10, 0, tzinfo=PARIS))


@pytest.fixture
def frozen_at():
    return SATURDAY_3PM


@pytest.fixture
def team(stack, site):
    """The site's admin sets hours and the team's address over REST."""
    _, token = member_token(stack, site)
    address = f"team-{site}@bank.example"
    status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}",
                        {"hours": HOURS, "team_email": address, "name": "Bank of Tests"}, token)
    assert status == 200 and body["team_email"] == address
    return address


def test_saturday_afternoon_is_offline_with_the_right_time_back(stack, site, team, frozen, visitor,
                                                                 agent):
    agent()  # someone is on shift, but the bank is closed
    guest = visitor()
    assert guest.welcome["status"] == {"online": False, "in_hours": False, "agents": True,
                                       "next_open": MONDAY_9AM}
    status, body = rest(stack.gateway.http_url, "GET", f"/sites/{site}/status")
    assert status == 200 and body["next_open"] == MONDAY_9AM and body["online"] is False


def test_status_is_pushed_when_the_last_agent_leaves_and_when_hours_end(stack, site, team, frozen,
                                                                        visitor, agent):
    frozen.now = to_ms(datetime(2026, 11, 30, 17, 58, tzinfo=PARIS))  # Monday, open till 18:00
    console = agent()
    guest = visitor()
    assert guest.welcome["status"]["online"] is True
    console.request({"action": "shift", "on": False}, "shift")
    pushed = guest.expect("status")
    assert pushed["online"] is False and pushed["in_hours"] is True and pushed["next_open"] is None
    console.request({"action": "shift", "on": True}, "shift")
    assert guest.expect("status")["online"] is True
    frozen.advance(3 * 60)  # 18:01: nobody did anything, the minute timer notices
    stack.gateway.run_schedules()
    closed = guest.expect("status")
    tuesday_9am = to_ms(datetime(2026, 12, 1, 9, 0, tzinfo=PARIS))
    assert closed == {"type": "status", "online": False, "in_hours": False, "agents": True,
                      "next_open": tuesday_9am}
    stack.gateway.run_schedules()
    guest.quiet("status")  # pushed once per change, not once per minute


def test_message_left_over_websocket_reaches_the_team_and_the_visitor(site, team, frozen, visitor,
                                                                      mailbox):
    guest = visitor()
    guest.send({"action": "leave_message", "email": "ana@example.org", "name": "Ana",
                "text": "Can I open an account online?", "page": "https://bank.example/accounts",
                "ref": "m1"})
    left = guest.expect("message_left")
    assert left["ref"] == "m1" and left["id"]
    (to_team,) = mailbox(team)
    assert to_team["replyTo"] == ["ana@example.org"]
    assert to_team["subject"] == "[Bank of Tests] Message from Ana"
    text = to_team["body"]["text"]
    assert "Can I open an account online?" in text and "https://bank.example/accounts" in text
    assert "Sat 28 Nov 2026 15:00 CET" in text
    (confirmation,) = mailbox("ana@example.org")
    assert confirmation["replyTo"] == [team]
    assert "We are back Mon 30 Nov 2026 09:00 CET" in confirmation["body"]["text"]


def test_message_left_over_rest_is_stored_first_and_acknowledged_202(stack, site, team, frozen,
                                                                     mailbox):
    status, body = rest(stack.gateway.http_url, "POST", "/offline",
                        {"site": site, "email": "bo@example.org", "text": "Lost my card",
                         "page": "https://bank.example/cards"})
    assert status == 202
    stored = offline.OfflineMessageModel.get(f"OFFLINE#{body['id']}", "META", consistent_read=True)
    assert stored.text == "Lost my card" and stored.due_pk is None  # queued, mark cleared
    (to_team,) = mailbox(team)
    assert to_team["replyTo"] == ["bo@example.org"] and "Lost my card" in to_team["body"]["text"]
    assert len(mailbox("bo@example.org")) == 1


@pytest.mark.parametrize(("doc", "code"), [
    ({"text": "hi"}, "bad_email"),
    ({"email": "not-an-address", "text": "hi"}, "bad_email"),
    ({"email": "a@example.org", "text": "   "}, "bad_text"),
    ({"email": "a@example.org", "text": "x" * 4001}, "bad_text"),
    ({"email": "a@example.org", "text": "hi", "page": "javascript:alert(1)"}, "bad_page"),
    ({"email": "a@example.org", "text": "hi", "website": "http://spam.example"}, "spam"),
    ({"email": "a@example.org", "text": "hi", "name": "Eve\nBcc: all@example.org"}, "bad_name"),
])
def test_bad_offline_messages_are_refused_clearly_and_nothing_is_stored(stack, site, doc, code,
                                                                       dynamodb_calls):
    dynamodb_calls.clear()
    status, body = rest(stack.gateway.http_url, "POST", "/offline", {"site": site, **doc})
    assert status == 400 and body["code"] == code and body["message"]
    assert "PutItem" not in dynamodb_calls


def test_offline_messages_are_rate_limited_per_address_and_per_visitor(stack, site, visitor,
                                                                      app_settings):
    from chalicelib import auth, limits

    # Earlier tests in the run may have left messages from this address in this window.
    key = limits.OFFLINE_PER_NETWORK.counter_key(auth.fingerprint('127.0.0.1'))
    try:
        earlier = int(limits.CounterModel.get(key, "META", consistent_read=True).hits)
    except limits.CounterModel.DoesNotExist:
        earlier = 0
    app_settings(offline_per_ip_per_hour=earlier + 3)
    doc = {"site": site, "email": "c@example.org", "text": "hello"}
    answers = [rest(stack.gateway.http_url, "POST", "/offline", doc)[0] for _ in range(4)]
    assert answers == [202, 202, 202, 429]
    app_settings(offline_per_ip_per_hour=100)
    guest = visitor()
    for n in range(config.settings().offline_per_visitor_per_hour):
        guest.send({"action": "leave_message", "email": "c@example.org", "text": f"again {n}"})
        guest.expect("message_left")
    guest.send({"action": "leave_message", "email": "c@example.org", "text": "one more"})
    refusal = guest.expect("error")
    assert refusal["code"] == "rate_limited" and refusal["message"]


def test_ses_down_delays_the_mail_then_delivers_it_exactly_once(stack, site, team, frozen, mailbox):
    stack.ses.stop()
    try:
        status, _ = rest(stack.gateway.http_url, "POST", "/offline",
                         {"site": site, "email": "dee@example.org", "text": "Are you there?"})
        assert status == 202
        failed = stack.poller.counters[f"failed:{config.settings().mail_queue_name}"]
        assert stack.poller.poll_once() == 1  # attempted, failed, left on the queue for retry
        assert stack.poller.counters[f"failed:{config.settings().mail_queue_name}"] == failed + 1
    finally:
        stack.ses.start()
    assert len(mailbox(team)) == 1
    assert len(mailbox("dee@example.org")) == 1


def test_a_redelivered_job_never_sends_a_second_email(stack, site, team, frozen, mailbox):
    _status, body = rest(stack.gateway.http_url, "POST", "/offline",
                        {"site": site, "email": "eve@example.org", "text": "Twice?"})
    assert len(mailbox(team)) == 1
    queue.enqueue(mail.OfflineJob(body["id"]))  # SQS delivers at least once
    queue.enqueue(mail.OfflineJob(body["id"]))
    assert len(mailbox(team)) == 1 and len(mailbox("eve@example.org")) == 1


def test_a_poisoned_job_lands_in_the_dlq_and_can_be_redriven(stack, site, team, frozen, mailbox):
    """A job that fails every attempt (here the site's stored hours cannot be read) is parked
    in the dead-letter queue, and sent once re-driven after the fault is fixed. (A job whose
    record is gone is not a failure: it is dropped, see tests/test_privacy.py.)"""
    S = SiteModel
    good_hours = sites.get(site).hours
    S("SITE", site).update(actions=[S.hours.set("{not json")])
    stored = f"m{secrets.token_hex(6)}"
    offline.OfflineMessageModel(f"OFFLINE#{stored}", site=site, email="fay@example.org",
                                text="found again", created_at=frozen.now).save()
    queue.enqueue(mail.OfflineJob(stored))
    assert mailbox(team) == []
    parked = [d for d in admin.dead_letters() if json.loads(d["body"]).get("id") == stored]
    assert len(parked) == 1 and parked[0]["receives"] >= config.settings().mail_max_receives
    S("SITE", site).update(actions=[S.hours.set(good_hours)])
    assert parked[0]["id"] in admin.redrive([parked[0]["id"]])
    (to_team,) = mailbox(team)
    assert "found again" in to_team["body"]["text"]


def test_a_crash_between_store_and_queue_is_healed_by_the_sweep(stack, site, team, frozen, mailbox,
                                                               monkeypatch):
    def crash(job):
        raise ConnectionError("the process died here")

    monkeypatch.setattr(queue, "enqueue", crash)
    status, _body = rest(stack.gateway.http_url, "POST", "/offline",
                        {"site": site, "email": "gus@example.org", "text": "Stored, not queued"})
    assert status == 202  # stored, so acknowledged
    monkeypatch.undo()
    Clock(monkeypatch, frozen.now)  # undo() also released the frozen clock
    assert mailbox(team) == []
    stack.gateway.run_schedules()  # too soon: it may still be on its way
    assert mailbox(team) == []
    frozen.now += (config.settings().unqueued_after_seconds + 1) * 1000
    Clock(monkeypatch, frozen.now)
    stack.gateway.run_schedules()
    (to_team,) = mailbox(team)
    assert "Stored, not queued" in to_team["body"]["text"]


def test_unanswered_lines_in_a_waiting_chat_are_mailed_as_one_digest(stack, site, team, frozen,
                                                                     visitor, mailbox):
    guest = visitor()
    conv = guest.start()  # nobody on shift: the chat waits
    for line in ("Hello?", "I need help with a transfer", "It is urgent"):
        guest.say(conv, line)
    frozen.advance(config.settings().digest_quiet_seconds / 2)
    stack.gateway.run_schedules()
    assert mailbox(team) == []  # still typing, maybe
    frozen.advance(config.settings().digest_quiet_seconds)
    stack.gateway.run_schedules()
    (digest,) = mailbox(team)
    assert digest["subject"] == "[Bank of Tests] Unanswered chat (3 messages)"
    for line in ("Hello?", "I need help with a transfer", "It is urgent"):
        assert line in digest["body"]["text"]
    stack.gateway.run_schedules()
    assert len(mailbox(team)) == 1  # not again
    guest.say(conv, "Anyone?")
    frozen.advance(config.settings().digest_quiet_seconds + 1)
    stack.gateway.run_schedules()
    later = mailbox(team)
    assert len(later) == 2 and "Anyone?" in later[1]["body"]["text"]
    assert "It is urgent" not in later[1]["body"]["text"]


def test_agent_reply_to_an_offline_conversation_is_emailed_and_kept(stack, site, team, frozen,
                                                                    visitor, agent, mailbox):
    guest = visitor()
    conv = guest.start()
    guest.say(conv, "Please call me back")
    guest.send({"action": "leave_message", "email": "hal@example.org", "text": "Or email me"})
    guest.expect("message_left")
    guest.close()
    frozen.now = MONDAY_10AM
    console = agent()  # Monday: the waiting chat is routed to the first agent on shift
    assert console.expect("assigned")["conversation"] == conv
    console.say(conv, "Good morning! Happy to help.")
    replies = [e for e in mailbox("hal@example.org") if "replied" in e["subject"]]
    assert len(replies) == 1 and "Good morning! Happy to help." in replies[0]["body"]["text"]
    page = console.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [m["text"] for m in page["items"]] == ["Please call me back", "Good morning! Happy to help."]


def test_a_site_nobody_configured_still_gets_its_digest_at_the_default_address(stack, site, frozen,
                                                                             visitor, mailbox):
    guest = visitor()
    conv = guest.start()
    guest.say(conv, "Is anybody there?")
    frozen.advance(config.settings().digest_quiet_seconds + 1)
    stack.gateway.run_schedules()
    digests = [e for e in mailbox(config.settings().team_email) if "Is anybody there?" in e["body"]["text"]]
    # Not the site id, even to the team: their reply by email keeps the subject ("Re: [...]").
    assert len(digests) == 1
    assert digests[0]["subject"] == f"[{sites.NEUTRAL_NAME}] Unanswered chat (1 message)"
