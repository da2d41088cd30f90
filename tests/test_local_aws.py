"""Tests for the local SES and SQS stand-ins (``infra/local/ses.py``, ``infra/local/sqs.py``).

Unmodified boto3 clients find both through the standard ``AWS_ENDPOINT_URL_<SERVICE>``
variables, the way the app will; the SQS poller drives ``tests/support/echo_app.py``'s ``jobs``
handler (body ``fail`` = reported failure, ``crash`` = raises).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError

from infra.local.ses import SesLocal
from infra.local.sqs import SqsLocal, SqsPoller
from tests.support import echo_app

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
QUEUE = "echo-jobs"  # the queue of echo_app.jobs
DLQ = "echo-jobs-dlq"
MAX_RECEIVES = 3


@dataclass
class Local:
    ses: SesLocal
    sqs: SqsLocal
    poller: SqsPoller
    queue_url: str
    dlq_url: str
    sqs_client: Any
    ses_client: Any


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in DUMMY_AWS_ENV.items():
            env.setenv(name, value)
        sqs = SqsLocal()
        ses = SesLocal()
        poller: SqsPoller | None = None
        try:
            sqs.start()
            ses.start()
            env.setenv("AWS_ENDPOINT_URL_SQS", sqs.endpoint)
            env.setenv("AWS_ENDPOINT_URL_SESV2", ses.endpoint)
            env.setenv("AWS_ENDPOINT_URL_SES", ses.endpoint)
            queue_url = sqs.create_queue(QUEUE, dlq_name=DLQ, max_receive_count=MAX_RECEIVES)
            poller = SqsPoller(echo_app.app, sqs, wait_seconds=0.05, retry_delay=0)
            poller.start()
            sqs_client = boto3.client("sqs")  # no endpoint_url: found through the env
            yield Local(ses=ses, sqs=sqs, poller=poller, queue_url=queue_url,
                        dlq_url=sqs_client.get_queue_url(QueueName=DLQ)["QueueUrl"],
                        sqs_client=sqs_client, ses_client=boto3.client("sesv2"))
        finally:
            if poller is not None:
                poller.stop()
            ses.stop()
            sqs.stop()


@pytest.fixture
def clean(local: Local) -> Local:
    """Empty queues (PurgeQueue is once a minute, even in moto), no recorded batches or emails."""
    local.poller.drain()
    while messages := dead_letters(local):
        local.sqs_client.delete_message_batch(QueueUrl=local.dlq_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
    echo_app.sqs_batches.clear()
    local.ses.clear()
    return local


@pytest.fixture
def paused(clean: Local) -> Iterator[Local]:
    """No background polling: the test decides batches by sending first, then drain()."""
    clean.poller.stop()
    yield clean
    clean.poller.start()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def send(local: Local, *bodies: str) -> list[str]:
    """Send in one SendMessageBatch; return the message ids in order."""
    response = local.sqs_client.send_message_batch(
        QueueUrl=local.queue_url,
        Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies)])
    assert not response.get("Failed")
    ids = {entry["Id"]: entry["MessageId"] for entry in response["Successful"]}
    return [ids[str(i)] for i in range(len(bodies))]


def seen() -> list[dict[str, Any]]:
    return [record for batch in echo_app.sqs_batches for record in batch]


def counts(local: Local, url: str) -> tuple[int, int]:
    """(visible, in flight) messages of a queue."""
    attributes = local.sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return (int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]))


def dead_letters(local: Local) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = local.sqs_client.receive_message(
        QueueUrl=local.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    return messages


def send_email(local: Local, subject: str, *, client: Any = None) -> str:
    response = (client or local.ses_client).send_email(
        FromEmailAddress="Chat <noreply@example.com>",
        Destination={"ToAddresses": ["ops@example.com"]},
        ReplyToAddresses=["visitor@example.org"],
        Content={"Simple": {"Subject": {"Data": subject},
                            "Body": {"Text": {"Data": f"{subject}\nsecond line"}}}})
    return str(response["MessageId"])


# ------------------------------------------------------------------------- SES


def test_sesv2_email_lands_in_store(clean: Local) -> None:
    message_id = send_email(clean, "New chat message")
    (email,) = clean.ses.emails()
    assert email["messageId"] == message_id
    assert email["from"] == "Chat <noreply@example.com>"
    assert email["destination"] == {"to": ["ops@example.com"], "cc": [], "bcc": []}
    assert email["replyTo"] == ["visitor@example.org"]
    assert email["subject"] == "New chat message"
    assert email["body"]["text"] == "New chat message\nsecond line"
    assert abs(email["at"] - time.time()) < 60
    clean.ses.clear()
    assert clean.ses.emails() == []


def test_ses_down_then_up_on_the_same_port(clean: Local) -> None:
    endpoint = clean.ses.endpoint
    no_retries = boto3.client("sesv2", config=Config(retries={"total_max_attempts": 1}))
    clean.ses.stop()
    try:
        with pytest.raises(EndpointConnectionError):
            send_email(clean, "while down", client=no_retries)
    finally:
        clean.ses.start()
    assert clean.ses.endpoint == endpoint
    send_email(clean, "back up", client=no_retries)
    assert [email["subject"] for email in clean.ses.emails()] == ["back up"]


# ------------------------------------------------------------------------- SQS


def test_poller_delivers_in_the_background_and_deletes(clean: Local) -> None:
    before = clean.poller.counters.copy()
    clean.sqs_client.send_message(
        QueueUrl=clean.queue_url, MessageBody="hello",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "greeting"}})
    wait_until(lambda: any(record["body"] == "hello" for record in seen()))
    wait_until(lambda: counts(clean, clean.queue_url) == (0, 0))  # deleted, not just hidden
    (record,) = seen()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == f"arn:aws:sqs:us-east-1:123456789012:{QUEUE}"
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
    assert record["messageAttributes"] == {"kind": {
        "stringValue": "greeting", "stringListValues": [], "binaryListValues": [], "dataType": "String"}}
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"  # md5("hello")
    after = clean.poller.counters.copy()
    assert after[f"records:{QUEUE}"] - before[f"records:{QUEUE}"] == 1
    assert after[f"deleted:{QUEUE}"] - before[f"deleted:{QUEUE}"] == 1


def test_batches_respect_batch_size(paused: Local) -> None:
    send(paused, *(f"job-{i}" for i in range(7)))
    paused.poller.drain()
    assert [len(batch) for batch in echo_app.sqs_batches] == [5, 2]  # batch_size=5
    assert sorted(record["body"] for record in seen()) == [f"job-{i}" for i in range(7)]
    assert counts(paused, paused.queue_url) == (0, 0)


def test_failed_record_is_redelivered_and_the_others_deleted(paused: Local) -> None:
    ok_1, failing, ok_2 = send(paused, "ok-1", "fail", "ok-2")
    paused.poller.drain()
    assert {record["messageId"] for record in echo_app.sqs_batches[0]} == {ok_1, failing, ok_2}
    by_id: dict[str, list[str]] = {}
    for record in seen():
        by_id.setdefault(record["messageId"], []).append(record["attributes"]["ApproximateReceiveCount"])
    assert by_id[ok_1] == ["1"] and by_id[ok_2] == ["1"]  # deleted after the first batch
    assert by_id[failing] == [str(n) for n in range(1, MAX_RECEIVES + 1)]


def test_record_failing_max_receive_count_times_lands_in_dlq(paused: Local) -> None:
    before = paused.poller.counters.copy()
    _, failing = send(paused, "ok", "fail")
    paused.poller.drain()
    assert counts(paused, paused.queue_url) == (0, 0)
    (dead,) = dead_letters(paused)
    assert (dead["MessageId"], dead["Body"]) == (failing, "fail")
    after = paused.poller.counters.copy()
    assert after[f"failed:{QUEUE}"] - before[f"failed:{QUEUE}"] == MAX_RECEIVES
    assert after[f"deleted:{QUEUE}"] - before[f"deleted:{QUEUE}"] == 1


def test_crashed_batch_is_retried_whole(paused: Local) -> None:
    before = paused.poller.counters.copy()
    ids = send(paused, "innocent", "crash")
    paused.poller.drain()
    batches = [sorted(record["messageId"] for record in batch) for batch in echo_app.sqs_batches]
    assert batches == [sorted(ids)] * MAX_RECEIVES  # nothing deleted: the whole batch came back
    assert sorted(message["MessageId"] for message in dead_letters(paused)) == sorted(ids)
    after = paused.poller.counters.copy()
    assert after[f"crashed:{QUEUE}"] - before[f"crashed:{QUEUE}"] == MAX_RECEIVES
    assert after[f"deleted:{QUEUE}"] == before[f"deleted:{QUEUE}"]
