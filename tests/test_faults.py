"""Faults injected against the real local parts, each with the outcome it must have.

DynamoDB and SES faults are injected on the wire by ``infra.local.faults.FaultProxy`` (in front
of DynamoDB Local, aws-ses-v2-local and the gateway's ``@connections`` API), answering the way
the real services do when they throttle or fail, so botocore's own error handling runs. A
Lambda killed mid-handler is a ``BaseException`` raised at the exact point: nothing after it
runs, as when the runtime stops an invocation. See docs/resilience.md for the behaviour.

Also covered elsewhere, not repeated here: SES stopped outright
(``test_after_hours.py::test_ses_down_delays_the_mail_then_delivers_it_exactly_once``), a job
enqueued twice (``::test_a_redelivered_job_never_sends_a_second_email``), the widget across a
gateway restart (``test_widget.py::test_reconnects_after_the_gateway_restarts_...``), a start
that died halfway (``test_security.py::test_a_start_that_died_halfway_...``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any
from urllib.parse import quote

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.retries import standard
from websockets.exceptions import InvalidStatus

from chalicelib import auth, aws, clock, config, conversations, fanout, mail, offline
from chalicelib.models import (
    META,
    ConnectionModel,
    MailModel,
    VisitorModel,
    connection_key,
    visitor_key,
)
from infra import admin
from infra.local.faults import FaultProxy, dynamodb_error, rest_error, route_app_through
from infra.local.gateway import LocalLambdaContext
from infra.local.sqs import _record
from tests.support.client import Client, eventually, settle
from tests.support.flows import start_chat
from tests.support.state import connections, stored

SES_SEND = "POST /v2/email/outbound-emails"


@pytest.fixture(scope="module")
def dynamo(stack):
    """The app's DynamoDB traffic goes through a fault proxy for this module."""
    proxy = FaultProxy(stack.dynamodb.endpoint).start()
    route_app_through(dynamodb=proxy.endpoint)
    yield proxy
    route_app_through(dynamodb=stack.dynamodb.endpoint)
    proxy.stop()


@pytest.fixture
def faults(dynamo, stack):
    """A quiet gateway (earlier tests' $disconnects done), no rules left over after."""
    settle(stack)
    yield dynamo
    dynamo.clear()


@pytest.fixture
def ses(stack):
    proxy = FaultProxy(stack.ses.endpoint).start()
    route_app_through(ses=proxy.endpoint)
    stack.poller.drain()  # earlier tests' jobs
    stack.ses.clear()
    yield proxy
    route_app_through(ses=stack.ses.endpoint)
    proxy.stop()


@pytest.fixture
def management(stack, monkeypatch):
    """Posts to connections go through a fault proxy in front of the gateway."""
    proxy = FaultProxy(stack.gateway.management_endpoint).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI", proxy.endpoint)
    yield proxy
    proxy.stop()


def post_to(connection_id: str) -> str:
    return f"POST /@connections/{quote(connection_id, safe='')}"


def emails_to(stack, address: str) -> list[dict[str, Any]]:
    return [e for e in stack.ses.emails() if address in e["destination"]["to"]]


# ------------------------------------------------------------------ DynamoDB


def test_throttling_and_5xx_are_retried_and_the_message_goes_through_once(visitor, agent, faults):
    guest, console, conv = start_chat(visitor, agent)
    throttled = faults.inject("UpdateItem", dynamodb_error("throughput"), times=2)
    failing = faults.inject("PutItem", dynamodb_error("internal"))
    ack = guest.say(conv, "through the storm")
    assert ack["type"] == "ack" and ack["seq"] == 1
    assert throttled.used == 2 and failing.used == 1  # every fault was met, and retried
    assert console.expect("message", conversation=conv)["text"] == "through the storm"
    console.quiet("message")
    assert stored(conv) == [(1, "through the storm")]


@pytest.mark.parametrize("kind", ["throttling", "unavailable"])
def test_when_retries_run_out_the_client_resends_and_it_is_stored_once(visitor, agent, faults, kind):
    guest, console, conv = start_chat(visitor, agent)
    exhausted = faults.inject("UpdateItem", dynamodb_error(kind), times=aws.POLICIES["dynamodb"].attempts)
    message_id = guest.next_id()
    refused = guest.say(conv, "please resend me", message_id)
    assert refused["type"] == "error" and refused["code"] == "retry"
    assert exhausted.used == aws.POLICIES["dynamodb"].attempts
    assert stored(conv) == [] and console.request(
        {"action": "sync", "conversation": conv, "after": 0}, "messages")["summary"]["seq"] == 0
    console.quiet("message")
    ack = guest.say(conv, "please resend me", message_id)  # the client's idempotent resend
    assert ack["type"] == "ack" and ack["seq"] == 1
    assert console.expect("message", conversation=conv)["seq"] == 1
    console.quiet("message")
    assert stored(conv) == [(1, "please resend me")]


def test_retries_running_out_between_the_two_writes_are_healed_by_the_resend(visitor, agent, faults):
    """The conversation took a seq but the message could not be stored: the resend stores it
    under that seq; the next message follows it."""
    guest, console, conv = start_chat(visitor, agent)
    faults.inject("PutItem", dynamodb_error("internal"), times=aws.POLICIES["dynamodb"].attempts)
    message_id = guest.next_id()
    assert guest.say(conv, "half way", message_id)["code"] == "retry"
    assert stored(conv) == []
    assert guest.say(conv, "half way", message_id)["seq"] == 1
    assert guest.say(conv, "and on")["seq"] == 2
    assert [m["text"] for m in (console.expect("message", seq=1), console.expect("message", seq=2))] == [
        "half way", "and on"]
    assert stored(conv) == [(1, "half way"), (2, "and on")]


def test_writes_applied_but_answered_with_a_5xx_are_not_applied_twice(visitor, agent, faults):
    """DynamoDB did the write, then the answer was an error, so botocore retried it. The
    UpdateItem retry is recognised as a resend; the PutItem retry finds this very call's own
    write, and the message is still delivered (it was not, before the ``attempt`` mark)."""
    guest, console, conv = start_chat(visitor, agent)
    update = faults.inject("UpdateItem", dynamodb_error("internal"), forward_first=True)
    put = faults.inject("PutItem", dynamodb_error("internal"), forward_first=True)
    ack = guest.say(conv, "said once")
    assert ack["type"] == "ack" and ack["seq"] == 1 and update.used == put.used == 1
    assert console.expect("message", conversation=conv)["text"] == "said once"
    console.quiet("message")
    assert guest.say(conv, "said twice")["seq"] == 2  # the seq was taken once, not twice
    assert stored(conv) == [(1, "said once"), (2, "said twice")]


def test_a_write_whose_connection_drops_is_retried_safely(visitor, agent, faults):
    guest, console, conv = start_chat(visitor, agent)
    faults.inject("PutItem", hang_up=True, forward_first=True)
    assert guest.say(conv, "lost answer")["seq"] == 1
    assert console.expect("message", conversation=conv)["text"] == "lost answer"
    assert stored(conv) == [(1, "lost answer")]


def test_no_retry_starts_that_could_outlast_the_invocation(visitor, agent, faults, stack, monkeypatch):
    """With less time left than a retry could take, the handler answers "resend" at once
    rather than be killed by the Lambda timeout halfway."""
    guest, _console, conv = start_chat(visitor, agent)
    policy = aws.POLICIES["dynamodb"]
    monkeypatch.setattr(stack.gateway, "lambda_timeout", policy.attempt_seconds + aws.RESERVE_SECONDS)
    once = faults.inject("UpdateItem", dynamodb_error("throughput"), times=1)
    message_id = guest.next_id()
    assert guest.say(conv, "short on time", message_id)["code"] == "retry"  # one fault was enough
    assert once.used == 1 and stored(conv) == []
    monkeypatch.undo()
    assert guest.say(conv, "short on time", message_id)["seq"] == 1


def test_backoff_grows_per_attempt_is_capped_and_waits_longer_when_throttled(monkeypatch):
    monkeypatch.setattr(aws.random, "random", lambda: 1.0)  # the top of each jitter range
    policy = aws.POLICIES["dynamodb"]
    handler = aws._Retries(policy)

    operation = aws.client("dynamodb").meta.service_model.operation_model("PutItem")

    def Context(attempt: int, code: str, status: int) -> standard.RetryContext:
        return standard.RetryContext(
            attempt_number=attempt, operation_model=operation,
            parsed_response={"Error": {"Code": code}, "ResponseMetadata": {}},
            http_response=AWSResponse("http://dynamodb", status, {}, None))

    throttle = [handler.pause(Context(n, "ProvisionedThroughputExceededException", 400), None)
                for n in range(1, policy.attempts + 1)]
    server = [handler.pause(Context(n, "InternalServerError", 500), None)
              for n in range(1, policy.attempts + 1)]
    assert throttle[:-1] == [policy.throttle_base * 2 ** i for i in range(policy.attempts - 1)]
    assert server[:-1] == [policy.base * 2 ** i for i in range(policy.attempts - 1)]
    assert throttle[-1] is None and server[-1] is None  # attempts used up
    assert handler.pause(Context(1, "ValidationException", 400), None) is None  # not transient
    assert handler.pause(Context(1, "ConditionalCheckFailedException", 400), None) is None
    with aws.deadline(1000 * (policy.attempt_seconds + aws.RESERVE_SECONDS)):
        assert handler.pause(Context(1, "InternalServerError", 500), None) is None
    with aws.deadline(60_000):
        assert handler.pause(Context(1, "InternalServerError", 500), None) == policy.base
    every = {aws.policy_for(s).attempts * (aws.policy_for(s).attempt_seconds + aws.policy_for(s).cap)
             for s in aws.POLICIES}
    assert all(bound < 60 for bound in every)  # no single call outlives the mail consumer


# ------------------------------------------------------------ fan-out (@connections)


def test_a_gone_tab_and_a_failing_console_during_fan_out(visitor, agent, management, stack):
    guest, console, conv = start_chat(visitor, agent)
    known = set(connections(conv))
    second_console = agent(agent_id=console.agent_id)
    (second,) = set(connections(conv)) - known
    visitor(token=guest.welcome["token"])
    (tab,) = set(connections(conv)) - known - {second}
    stack.gateway.drop(tab)
    blip = management.inject(post_to(second), rest_error(500, "InternalFailure"))
    assert guest.say(conv, "hello all")["type"] == "ack"
    assert console.expect("message", conversation=conv)["text"] == "hello all"
    assert second_console.expect("message", conversation=conv)["text"] == "hello all"  # retried
    assert blip.used == 1
    eventually(lambda: tab not in connections(conv))  # the gone tab is forgotten, everywhere
    assert ConnectionModel.count(connection_key(tab)) == 0
    visitor_item = VisitorModel.get(visitor_key(guest.welcome["visitor"]), META, consistent_read=True)
    assert tab not in (visitor_item.conns or set())
    assert second in connections(conv)
    broken = management.inject(post_to(second), rest_error(502, "BadGateway"),
                               times=aws.POLICIES["apigatewaymanagementapi"].attempts)
    ack = guest.say(conv, "second")  # the sender's ack does not depend on a failing recipient
    assert ack["type"] == "ack" and ack["seq"] == 2
    assert broken.spent.wait(5)  # every attempt failed (posts run beside the ack)
    assert console.expect("message", conversation=conv)["seq"] == 2
    second_console.quiet("message")
    assert second in connections(conv)  # a 5xx is not "gone": it stays, and catches up
    assert guest.say(conv, "third")["seq"] == 3
    assert second_console.expect("message", conversation=conv)["seq"] == 3  # a gap: it syncs
    page = second_console.request({"action": "sync", "conversation": conv, "after": 1}, "messages")
    assert [m["text"] for m in page["items"]] == ["second", "third"]



# ------------------------------------------------------------------ SES and SQS


def _left(site: str, email: str, text: str) -> str:
    """An offline message stored and queued, as the REST route and the widget do it."""
    message_id = offline.leave(site, {"email": email, "text": text})
    offline.dispatch(message_id)
    return message_id


def test_ses_failing_for_a_while_delays_the_mail_then_sends_it_once(stack, site, ses):
    _left(site, "ida@example.org", "Anyone there?")
    attempts = aws.POLICIES["sesv2"].attempts
    outage = ses.inject(SES_SEND, rest_error(503, "ServiceUnavailable"), times=2 * attempts)
    failed = stack.poller.counters[f"failed:{config.settings().mail_queue_name}"]
    assert stack.poller.poll_once() == 1 and stack.poller.poll_once() == 1  # two deliveries
    assert stack.poller.counters[f"failed:{config.settings().mail_queue_name}"] == failed + 2
    assert outage.used == 2 * attempts and stack.ses.emails() == []  # each retried in-call too
    stack.poller.drain()  # SES is back
    assert len(emails_to(stack, config.settings().team_email)) == 1
    assert len(emails_to(stack, "ida@example.org")) == 1


def test_ses_down_past_the_redrive_limit_parks_the_job_and_a_redrive_sends_it_once(stack, site, ses):
    message_id = _left(site, "jan@example.org", "Still there?")
    ses.inject(SES_SEND, rest_error(500, "InternalFailure"), times=10**6)
    stack.poller.drain()  # every delivery fails; after MAIL_MAX_RECEIVES the job is parked
    parked = [d for d in admin.dead_letters() if json.loads(d["body"]).get("id") == message_id]
    assert len(parked) == 1 and stack.ses.emails() == []  # delayed, not lost
    ses.clear()
    assert admin.redrive([parked[0]["id"]]) == [parked[0]["id"]]
    stack.poller.drain()
    (to_team,) = emails_to(stack, config.settings().team_email)
    assert "Still there?" in to_team["body"]["text"]
    assert len(emails_to(stack, "jan@example.org")) == 1


def test_an_email_whose_answer_is_lost_is_not_sent_again(stack, ses):
    """SES took the email, then the connection broke: botocore must not resend it (there is
    no idempotency key on SendEmail), and a redelivered job waits for the lease."""
    key = f"fault:{os.urandom(4).hex()}"
    email = mail.Email(to="kim@example.org", subject="Once", text="Only once, please.")
    ses.inject(SES_SEND, hang_up=True, forward_first=True)
    with pytest.raises(ConnectionClosedError):  # the outcome is unknown to us
        mail.send_once(key, email)
    assert len(emails_to(stack, "kim@example.org")) == 1
    with pytest.raises(mail.Busy):  # SQS redelivers: the lease holds it back
        mail.send_once(key, email)
    assert len(emails_to(stack, "kim@example.org")) == 1
    refused = f"fault:{os.urandom(4).hex()}"  # by contrast, a refusal certainly sent nothing:
    ses.inject(SES_SEND, rest_error(400, "TooManyRequestsException"), times=aws.POLICIES["sesv2"].attempts)
    with pytest.raises(ClientError):
        mail.send_once(refused, email)
    assert mail.send_once(refused, email) is True  # the lease was released: sent at once
    assert len(emails_to(stack, "kim@example.org")) == 2
    assert MailModel.get(f"MAIL#{refused}", META).sent_at is not None


def test_the_same_job_delivered_twice_at_once_sends_one_email(stack, site, ses):
    _left(site, "lou@example.org", "Twice at once?")
    sqs = stack.sqs.client()
    url = sqs.get_queue_url(QueueName=config.settings().mail_queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60,
                                     MessageSystemAttributeNames=["All"])["Messages"]
    event = {"Records": [_record(message, arn)]}
    handler = stack.app_module.app.handler_map["send_mail"]

    def consume() -> Any:
        return handler(event, LocalLambdaContext("clicktochat-local-send_mail", timeout_s=60))

    slow = ses.inject(SES_SEND, hold=True)  # the first consumer is mid-send...
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=consume()))
    first.start()
    try:
        eventually(lambda: slow.used == 1)
        with pytest.raises(BatchProcessingError, match="Busy"):  # ...when the same record
            consume()  # reaches a second one: it fails, so SQS will deliver it again later
    finally:
        slow.release()
        first.join(30)
    assert results["first"] == {"batchItemFailures": []}
    assert consume() == {"batchItemFailures": []}  # its retry finds both emails sent
    assert len(emails_to(stack, config.settings().team_email)) == 1
    assert len(emails_to(stack, "lou@example.org")) == 1
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


# ------------------------------------------------------- gateway crash, killed Lambdas


def test_a_gateway_crash_mid_conversation_loses_nothing(visitor, agent, stack, clients, faults):
    """The gateway process dies (no $disconnect for anyone) and comes back: both sides
    reconnect with their tokens and resume; the dead connections are forgotten on first use."""
    guest, console, conv = start_chat(visitor, agent)
    guest.say(conv, "before the crash")
    console.say(conv, "reply before the crash")
    dead = set(connections(conv))
    for connection_id in dead:
        stack.gateway.drop(connection_id)
    stack.gateway.stop()
    stack.gateway.start()
    back = visitor(token=guest.welcome["token"])
    assert back.welcome["conversation"]["id"] == conv and back.welcome["conversation"]["seq"] == 2
    desk = Client(stack.gateway.ws_url, {"token": console.token})
    clients.append(desk)
    assert conv in [c["id"] for c in desk.request({"action": "hello"}, "welcome")["conversations"]]
    assert back.say(conv, "after the restart")["seq"] == 3
    assert desk.expect("message", conversation=conv)["seq"] == 3
    eventually(lambda: not dead & set(connections(conv)))
    page = desk.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [(m["seq"], m["text"]) for m in page["items"]] == [
        (1, "before the crash"), (2, "reply before the crash"), (3, "after the restart")]


class Killed(BaseException):
    """The Lambda runtime ending an invocation (timeout): nothing after this point runs, no
    handler catches it."""


def kill_once(monkeypatch, module: Any, name: str) -> list[int]:
    """The next call of ``module.name`` kills its invocation; returns the list it marks."""
    real = getattr(module, name)
    killed: list[int] = []

    def dying(*args: Any, **kwargs: Any) -> Any:
        if not killed:
            killed.append(1)
            raise Killed(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, dying)
    return killed


def test_killed_between_the_two_writes_the_resend_completes_it(visitor, agent, faults, stack,
                                                                monkeypatch):
    """Builds on test_messages.py's crash-between-writes case with a real invocation killed
    there, while the other side keeps talking."""
    guest, console, conv = start_chat(visitor, agent)
    settle(stack)
    killed = kill_once(monkeypatch, conversations, "put_or_old")
    message_id = guest.next_id()
    guest.send({"action": "send", "conversation": conv, "id": message_id, "text": "cut short"})
    eventually(lambda: killed)
    assert console.say(conv, "meanwhile")["seq"] == 2  # the conversation is not stuck
    assert guest.expect("message", conversation=conv)["seq"] == 2
    ack = guest.say(conv, "cut short", message_id)  # no ack came: the client resends
    assert ack["type"] == "ack" and ack["seq"] == 1
    assert console.expect("message", conversation=conv)["text"] == "cut short"
    assert guest.say(conv, "and later")["seq"] == 3
    page = console.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [(m["seq"], m["text"]) for m in page["items"]] == [
        (1, "cut short"), (2, "meanwhile"), (3, "and later")]


def test_killed_after_storing_before_fan_out_the_resend_delivers_it(visitor, agent, faults,
                                                                    stack, monkeypatch):
    """Stored, then killed before anyone was told. The resend is acknowledged with the same
    seq, not stored again, and delivered: the server cannot tell this from a lost ack, so it
    delivers on every resend (clients keep one message per seq)."""
    guest, console, conv = start_chat(visitor, agent)
    settle(stack)
    killed = kill_once(monkeypatch, fanout, "deliver")
    message_id = guest.next_id()
    guest.send({"action": "send", "conversation": conv, "id": message_id, "text": "stored, untold"})
    eventually(lambda: killed)
    assert stored(conv) == [(1, "stored, untold")]
    ack = guest.say(conv, "stored, untold", message_id)
    assert ack["type"] == "ack" and ack["seq"] == 1
    told = console.expect("message", conversation=conv)
    assert (told["seq"], told["id"], told["text"]) == (1, message_id, "stored, untold")
    assert guest.say(conv, "next")["seq"] == 2
    assert console.expect("message", conversation=conv)["seq"] == 2
    page = console.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [(m["seq"], m["text"]) for m in page["items"]] == [(1, "stored, untold"), (2, "next")]
    assert stored(conv) == [(1, "stored, untold"), (2, "next")]


# ------------------------------------------------------------------ clock skew


def test_client_clocks_never_date_or_order_anything(visitor, agent):
    """Clients may send any time they like (here hours ahead and behind): it is ignored.
    Order is the server's seq, every ts is the server's clock."""
    guest, console, conv = start_chat(visitor, agent)
    hours = 5 * 3600 * 1000
    before = clock.now_ms()
    ahead = guest.next_id()
    guest.send({"action": "send", "conversation": conv, "id": ahead, "text": "from the future",
                "ts": before + hours, "sent_at": before + hours})
    assert guest.expect_reply(ahead)["seq"] == 1
    behind = console.next_id()
    console.send({"action": "send", "conversation": conv, "id": behind, "text": "from the past",
                  "ts": before - hours, "sent_at": before - hours})
    assert console.expect_reply(behind)["seq"] == 2
    after = clock.now_ms()
    page = guest.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert [m["text"] for m in page["items"]] == ["from the future", "from the past"]
    assert all(before <= m["ts"] <= after for m in page["items"])


def test_token_expiry_is_judged_by_the_server_clock(stack, site):
    """Tokens carry the server's expiry and are checked against the server's clock; the
    client never states a time, so a skewed client clock cannot stretch or cut them."""
    now = time.time()
    ttl = config.settings().visitor_token_ttl
    still_valid = auth.issue(auth.VISITOR, f"v{os.urandom(4).hex()}", site, ttl=ttl, now=now - ttl + 600)
    expired = auth.issue(auth.VISITOR, f"v{os.urandom(4).hex()}", site, ttl=ttl, now=now - ttl - 600)
    assert Client(stack.gateway.ws_url, {"token": still_valid}).request({"action": "ping"}, "pong")
    with pytest.raises(InvalidStatus) as refused:
        Client(stack.gateway.ws_url, {"token": expired})
    assert refused.value.response.status_code == 403
