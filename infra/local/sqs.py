"""Amazon SQS stand-in (moto's server mode) and a poller that plays Lambda's SQS trigger.

There is no local SQS from Amazon, so :class:`SqsLocal` runs moto's server (SQS only is
used; other services answer too but nothing here relies on them) on 127.0.0.1 in a daemon
thread of this process. Point the app at it with ``AWS_ENDPOINT_URL_SQS`` =
:attr:`SqsLocal.endpoint`. moto keeps its state per process, not per server: two
:class:`SqsLocal` in one process see the same queues (account ``123456789012``, queues per
region), and a stop()+start() keeps them.

Redrive is moto's, as on AWS: a queue whose ``RedrivePolicy`` has ``maxReceiveCount`` = N
delivers a message at most N times; the ReceiveMessage after the N-th receive moves it to the
dead-letter queue instead (ApproximateReceiveCount is kept). The poller does nothing special.

:class:`SqsPoller` plays the Lambda event source mapping for every ``@app.on_sqs_message``
handler of a Chalice app: it receives up to ``batch_size`` messages, builds the event Lambda
would send, calls ``app.handler_map[name](event, context)`` and then, like a mapping with
``FunctionResponseTypes=["ReportBatchItemFailures"]``:

* returns ``None``, ``{}`` or ``{"batchItemFailures": []}`` (or ``null``): deletes the batch;
* returns ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}``: deletes every
  other record and leaves those to reappear after the visibility timeout;
* raises (or returns something Lambda could not serialise): deletes nothing, the whole batch
  is retried;
* returns an invalid report (not an object, an item without ``itemIdentifier``, an empty or
  unknown id, ``batchItemFailures`` not a list): the whole batch is retried, as Lambda does.

Chalice 1.34 itself never sets ``FunctionResponseTypes`` on the mappings it deploys; without
it AWS ignores the returned report and deletes the batch whenever the handler returns. Pass
``report_batch_item_failures=False`` to play that.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import math
import os
import socket
import threading
import time
from typing import Any

import boto3
from chalice.app import Chalice, SQSEventConfig
from moto.server import ThreadedMotoServer

from infra.local.gateway import LocalLambdaContext

__all__ = ["SqsLocal", "SqsPoller"]

logger = logging.getLogger(__name__)


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class SqsLocal:
    """moto's server mode, SQS only (no real local SQS exists)."""

    def __init__(self, port: int | None = None) -> None:
        #: 0 until start() when no port was given; then the port it got (reused on restart).
        self.port = port or 0
        self._server: ThreadedMotoServer | None = None

    @property
    def endpoint(self) -> str:
        """Value for ``AWS_ENDPOINT_URL_SQS``."""
        if not self.port:
            raise RuntimeError("SqsLocal picks its port on start(); start it first")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("SqsLocal already started")
        if self.port:
            # ThreadedMotoServer binds in its thread and would wait forever if that failed:
            # surface "address in use" here instead.
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", self.port))
        werkzeug_log = logging.getLogger("werkzeug")  # one INFO line per request otherwise
        if werkzeug_log.level == logging.NOTSET:
            werkzeug_log.setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        """A boto3 SQS client for this server (dummy credentials: moto ignores them)."""
        return boto3.session.Session().client(
            "sqs", endpoint_url=self.endpoint, region_name=_region(),
            aws_access_key_id="local", aws_secret_access_key="local")

    def create_queue(self, name: str, *, dlq_name: str | None = None, max_receive_count: int = 5,
                     visibility_timeout: int = 30) -> str:
        """Create a standard queue (and its dead-letter queue) and return the queue URL.

        With ``dlq_name`` the DLQ is created first and the queue gets
        ``RedrivePolicy = {"deadLetterTargetArn": <dlq arn>, "maxReceiveCount": N}``.
        Creating an existing queue with the same attributes returns its URL.
        """
        client = self.client()
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        if dlq_name is not None:
            dlq_url = client.create_queue(QueueName=dlq_name)["QueueUrl"]
            dlq_arn = client.get_queue_attributes(
                QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)})
        return str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


class _LockedCounter(collections.Counter[str]):
    """Counter updated from poller threads and read (copied) from tests."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self[key] += n

    def copy(self) -> collections.Counter[str]:  # type: ignore[override]
        with self.lock:
            return collections.Counter(self)


class SqsPoller:
    """Plays Lambda's SQS event source mapping for every @app.on_sqs_message handler of a Chalice app.

    One daemon thread per handler short-polls its queue (``WaitTimeSeconds=0``) and sleeps
    ``wait_seconds`` after an empty receive, so a message is picked up within about that
    long. Queues are found by name (``queue=`` or the last part of ``queue_arn=``) when first
    polled, so they may be created after :meth:`start`; until then the thread just waits.

    ``retry_delay`` (seconds, rounded up: SQS counts whole seconds; 0 = at once) makes the
    records left for retry visible again that soon (ChangeMessageVisibility) instead of after
    the queue's visibility timeout, so tests need not wait 30 s.

    ``counters`` (per queue name ``<q>``): ``batches:<q>`` invocations, ``records:<q>`` records
    handed over, ``deleted:<q>`` records deleted, ``failed:<q>`` records left for retry (reported,
    crashed or invalid), ``crashed:<q>`` invocations that raised, ``invalid:<q>`` invocations whose
    report was invalid, ``poll_error:<q>`` SQS errors in the background threads.
    """

    def __init__(self, app: Chalice, sqs: SqsLocal, *, wait_seconds: float = 0.5,
                 retry_delay: float | None = None, report_batch_item_failures: bool = True,
                 stage: str = "local", lambda_timeout: float = 30.0) -> None:
        self.app = app
        self.sqs = sqs
        self.wait_seconds = wait_seconds
        self.retry_delay = retry_delay
        self.report_batch_item_failures = report_batch_item_failures
        self.stage = stage
        self.lambda_timeout = lambda_timeout
        self.configs = [c for c in app.event_sources if isinstance(c, SQSEventConfig)]
        self.counters = _LockedCounter()
        #: One lock per queue, held for a whole receive-invoke-delete round, so drain()
        #: never sees a queue empty while a background thread still holds its messages.
        self._locks = {self.queue_name(c): threading.Lock() for c in self.configs}
        self._queues: dict[str, tuple[str, str]] = {}  # name -> (url, arn)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @staticmethod
    def queue_name(config: SQSEventConfig) -> str:
        if config.queue:
            return config.queue
        assert config.queue_arn is not None  # Chalice requires one of the two
        return config.queue_arn.rsplit(":", 1)[-1]

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("SqsPoller already started")
        self._get_client()  # boto3 sessions are not thread-safe: create it here
        self._stopping.clear()
        for config in self.configs:
            thread = threading.Thread(target=self._run, args=(config,), daemon=True,
                                      name=f"sqs-poller:{config.name}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the threads (each finishes the batch it is handling); start() works again."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=self.lambda_timeout + 10)
        self._threads = []

    def poll_once(self) -> int:
        """One receive-invoke-delete round on every handled queue, in this thread (tests use
        it to watch a retry happen); returns how many records were handed over."""
        handled = 0
        for config in self.configs:
            with self._locks[self.queue_name(config)]:
                handled += self._poll(config)
        return handled

    def drain(self, timeout: float = 10) -> None:
        """Process, in this thread, until one receive round finds every handled queue empty.

        Messages in flight (received, not deleted, visibility not yet expired) count as
        "not empty" only when ``retry_delay`` is set: then they are the records left for retry
        and come back soon, so drain() waits for them to succeed or be redriven to the DLQ.
        Without ``retry_delay`` they would only come back after the visibility timeout, and
        drain() returns without them. Delayed messages (DelaySeconds) never count.
        Raises TimeoutError if the queues do not settle in ``timeout`` seconds; errors talking
        to SQS propagate.
        """
        deadline = time.monotonic() + timeout
        while True:
            handled = 0
            for config in self.configs:
                with self._locks[self.queue_name(config)]:
                    handled += self._poll(config)
            pending = [] if handled else self._in_flight()
            if not handled and not pending:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"SQS queues not drained within {timeout} s: " + (
                    f"messages in flight on {pending}" if pending else
                    "messages keep coming (a record failing forever on a queue without a DLQ?)"))
            if not handled:
                time.sleep(0.05)

    # --------------------------------------------------------------- plumbing

    def _get_client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                self._client = self.sqs.client()
            return self._client

    def _queue(self, name: str) -> tuple[str, str]:
        """(url, arn) of a queue, looked up once it exists."""
        found = self._queues.get(name)
        if found is None:
            client = self._get_client()
            url = client.get_queue_url(QueueName=name)["QueueUrl"]
            arn = client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            found = self._queues[name] = (url, arn)
        return found

    def _in_flight(self) -> list[str]:
        if self.retry_delay is None:
            return []
        pending = []
        for name in self._locks:
            url, _ = self._queue(name)
            attributes = self._get_client().get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
            if int(attributes["ApproximateNumberOfMessagesNotVisible"]):
                pending.append(name)
        return pending

    def _run(self, config: SQSEventConfig) -> None:
        name = self.queue_name(config)
        warned = False
        while not self._stopping.is_set():
            try:
                with self._locks[name]:
                    handled = self._poll(config)
                warned = False
            except Exception as exc:
                self.counters.add(f"poll_error:{name}")
                if not warned:  # e.g. queue not created yet, or SQS stopped: say it once
                    logger.warning("SQS poller for %s: %s", name, exc)
                    warned = True
                handled = 0
            if not handled:
                self._stopping.wait(self.wait_seconds)

    def _poll(self, config: SQSEventConfig) -> int:
        """One round: receive a batch, invoke the handler, act on its answer. Returns records."""
        name = self.queue_name(config)
        url, arn = self._queue(name)
        client = self._get_client()
        messages: list[dict[str, Any]] = []
        while len(messages) < config.batch_size:  # Lambda batches above 10 need several receives
            wanted = min(10, config.batch_size - len(messages))
            got = client.receive_message(
                QueueUrl=url, MaxNumberOfMessages=wanted, WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if len(got) < wanted:
                break
        if messages:
            self._invoke(config, name, url, arn, messages)
        return len(messages)

    def _invoke(self, config: SQSEventConfig, name: str, url: str, arn: str,
                messages: list[dict[str, Any]]) -> None:
        count = self.counters.add
        event = {"Records": [_record(message, arn) for message in messages]}
        ids = [message["MessageId"] for message in messages]
        count(f"batches:{name}")
        count(f"records:{name}", len(messages))
        handler = self.app.handler_map[config.name]
        context = LocalLambdaContext(f"{self.app.app_name}-{self.stage}-{config.name}",
                                     timeout_s=self.lambda_timeout)
        try:
            result = handler(event, context)
            json.dumps(result)  # the Lambda runtime must serialise it, or the invocation fails
        except Exception:
            logger.exception("SQS handler %s raised: the whole batch will be retried", config.name)
            count(f"crashed:{name}")
            failed = set(ids)
        else:
            failed = self._failures(result, ids, name, config.name)
        keep = [m for m in messages if m["MessageId"] in failed]
        done = [m for m in messages if m["MessageId"] not in failed]
        client = self._get_client()
        self._batch(client.delete_message_batch, url, done)
        count(f"deleted:{name}", len(done))
        count(f"failed:{name}", len(keep))
        if keep and self.retry_delay is not None:
            self._batch(client.change_message_visibility_batch, url, keep,
                        VisibilityTimeout=math.ceil(self.retry_delay))

    def _failures(self, result: Any, ids: list[str], name: str, handler: str) -> set[str]:
        """The messageIds left for retry, read from a partial batch response."""
        if not self.report_batch_item_failures or result is None:
            return set()
        if isinstance(result, dict):
            items = result.get("batchItemFailures")
            if items is None or items == []:
                return set()
            if isinstance(items, list):
                idents = [item.get("itemIdentifier") if isinstance(item, dict) else None
                          for item in items]
                if all(isinstance(ident, str) and ident in ids for ident in idents):
                    return {str(ident) for ident in idents}
        logger.warning("SQS handler %s returned an invalid batch response %r: the whole batch "
                       "will be retried", handler, result)
        self.counters.add(f"invalid:{name}")
        return set(ids)

    @staticmethod
    def _batch(call: Any, url: str, messages: list[dict[str, Any]], **extra: Any) -> None:
        """DeleteMessageBatch / ChangeMessageVisibilityBatch in chunks of 10."""
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **extra}
                       for i, m in enumerate(chunk)]
            response = call(QueueUrl=url, Entries=entries)
            if response.get("Failed"):
                logger.warning("SQS batch call failed for %s: %s", url, response["Failed"])


def _record(message: dict[str, Any], arn: str) -> dict[str, Any]:
    """One ``Records[]`` entry exactly as Lambda's SQS trigger shapes it."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {key: _attribute(value)
                              for key, value in message.get("MessageAttributes", {}).items()},
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": arn.split(":")[3],
    })
    return record


def _attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute in Lambda's camelCase form (binary values base64-encoded)."""
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    out.update({"stringListValues": value.get("StringListValues", []),
                "binaryListValues": [base64.b64encode(v).decode()
                                     for v in value.get("BinaryListValues", [])],
                "dataType": value["DataType"]})
    return out
