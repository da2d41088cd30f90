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
from botocore.awsrequest import AWSResponse
from botocore.retries import standard

from chalicelib import auth, aws, clock, config, conversations, fanout, mail, offline
from chalicelib.models import MailModel
from infra import admin
from infra.local.faults import FaultProxy, dynamodb_error, rest_error, route_app_through
from infra.local.gateway import LocalLambdaContext
from infra.local.sqs import _record
from tests.client import Client, eventually, http_error, rest, settle
from tests.test_messages import _chat, _conns, _stored

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
    guest, console, conv = _chat(visitor, agent)
    throttled = faults.inject("UpdateItem", dynamodb_error("throughput"), times=2)
    failing = faults.inject("PutItem", dynamodb_error("internal"))
    ack = guest.say(conv, "through the storm")
    assert ack["type"] == "ack" and ack["seq"] == 1
    assert throttled.used == 2 and failing.used == 1  # every fault was met, and retried
    assert console.expect("message", conversation=conv)["text"] == "through the storm"
    console.quiet("message")
    assert _stored(conv) == [(1, "through the storm")]


@pytest.mark.parametrize("kind", ["throttling", "unavailable"])
def test_when_retries_run_out_the_client_resends_and_it_is_stored_once(visitor, agent, faults, kind):
    guest, console, conv = _chat(visitor, agent)
    exhausted = faults.inject("UpdateItem", dynamodb_error(kind), times=aws.POLICIES["dynamodb"].attempts)
    message_id = guest.next_id()
    refused = guest.say(conv, "please resend me", message_id)
    assert refused["type"] == "error" and refused["code"] == "retry"
    assert exhausted.used == aws.POLICIES["dynamodb"].attempts
    assert _stored(conv) == [] and console.request(
        {"action": "sync", "conversation": conv, "after": 0}, "messages")["summary"]["seq"] == 0
    console.quiet("message")
    ack = guest.say(conv, "please resend me", message_id)  # the client's idempotent resend
    assert ack["type"] == "ack" and ack["seq"] == 1
    assert console.expect("message", conversation=conv)["seq"] == 1
    console.quiet("message")
    assert _stored(conv) == [(1, "please resend me")]


def test_retries_running_out_between_the_two_writes_are_healed_by_the_resend(visitor, agent, faults):
    """The conversation took a seq but the message could not be stored: the resend stores it
    under that seq; the next message follows it."""
    guest, console, conv = _chat(visitor, agent)
    faults.inject("PutItem", dynamodb_error("internal"), times=aws.POLICIES["dynamodb"].attempts)
    message_id = guest.next_id()
    assert guest.say(conv, "half way", message_id)["code"] == "retry"
    assert _stored(conv) == []
    assert guest.say(conv, "half way", message_id)["seq"] == 1
    assert guest.say(conv, "and on")["seq"] == 2
    assert [m["text"] for m in (console.expect("message", seq=1), console.expect("message", seq=2))] == [
        "half way", "and on"]
    assert _stored(conv) == [(1, "half way"), (2, "and on")]


def test_writes_applied_but_answered_with_a_5xx_are_not_applied_twice(visitor, agent, faults):
    """DynamoDB did the write, then the answer was an error, so botocore retried it. The
    UpdateItem retry is recognised as a resend; the PutItem retry finds this very call's own
    write, and the message is still delivered (it was not, before the ``attempt`` mark)."""
    guest, console, conv = _chat(visitor, agent)
    update = faults.inject("UpdateItem", dynamodb_error("internal"), forward_first=True)
    put = faults.inject("PutItem", dynamodb_error("internal"), forward_first=True)
    ack = guest.say(conv, "said once")
    assert ack["type"] == "ack" and ack["seq"] == 1 and update.used == put.used == 1
    assert console.expect("message", conversation=conv)["text"] == "said once"
    console.quiet("message")
    assert guest.say(conv, "said twice")["seq"] == 2  # the seq was taken once, not twice
    assert _stored(conv) == [(1, "said once"), (2, "said twice")]


def test_a_write_whose_connection_drops_is_retried_safely(visitor, agent, faults):
    guest, console, conv = _chat(visitor, agent)
    faults.inject("PutItem", hang_up=True, forward_first=True)
    assert guest.say(conv, "lost answer")["seq"] == 1
    assert console.expect("message", conversation=conv)["text"] == "lost answer"
    assert _stored(conv) == [(1, "lost answer")]


def test_no_retry_starts_that_could_outlast_the_invocation(visitor, agent, faults, stack, monkeypatch):
    """With less time left than a retry could take, the handler answers "resend" at once
    rather than be killed by the Lambda timeout halfway."""
    guest, console, conv = _chat(visitor, agent)
    policy = aws.POLICIES["dynamodb"]
    monkeypatch.setattr(stack.gateway, "lambda_timeout", policy.attempt_seconds + aws.RESERVE_SECONDS)
    once = faults.inject("UpdateItem", dynamodb_error("throughput"), times=1)
    message_id = guest.next_id()
    assert guest.say(conv, "short on time", message_id)["code"] == "retry"  # one fault was enough
    assert once.used == 1 and _stored(conv) == []
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
    guest, console, conv = _chat(visitor, agent)
    known = set(_conns(conv))
    second_console = agent(agent_id=console.agent_id)
    (second,) = set(_conns(conv)) - known
    visitor(token=guest.welcome["token"])
    (tab,) = set(_conns(conv)) - known - {second}
    stack.gateway.drop(tab)
    blip = management.inject(post_to(second), rest_error(500, "InternalFailure"))
    assert guest.say(conv, "hello all")["type"] == "ack"
    assert console.expect("message", conversation=conv)["text"] == "hello all"
    assert second_console.expect("message", conversation=conv)["text"] == "hello all"  # retried
    assert blip.used == 1
    eventually(lambda: tab not in _conns(conv))  # the gone tab is forgotten
    assert second in _conns(conv)
    broken = management.inject(post_to(second), rest_error(502, "BadGateway"),
                               times=aws.POLICIES["apigatewaymanagementapi"].attempts)
    ack = guest.say(conv, "second")  # the sender's ack does not depend on a failing recipient
    assert ack["type"] == "ack" and ack["seq"] == 2
    assert broken.spent.wait(5)  # every attempt failed (posts run beside the ack)
    assert console.expect("message", conversation=conv)["seq"] == 2
    second_console.quiet("message")
    assert second in _conns(conv)  # a 5xx is not "gone": it stays, and catches up
    assert guest.say(conv, "third")["seq"] == 3
    assert second_console.expect("message", conversation=conv)["seq"] == 3  # a gap: it syncs
    page = second_console.request({"action": "sync", "conversation": conv, "after": 1}, "messages")
    assert [m["text"] for m in page["items"]] == ["second", "third"]

