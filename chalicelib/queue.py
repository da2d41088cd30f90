"""The mail job queue (SQS): enqueue adapter. The consumer is ``app.send_mail``."""

from __future__ import annotations

import functools
from typing import Any

from chalicelib import aws, config, mail


@functools.cache
def _client() -> Any:
    return aws.client("sqs")


@functools.cache
def _url() -> str:
    """Resolved once per cold start (the queue's name is configuration, its URL is not)."""
    return str(_client().get_queue_url(QueueName=config.settings().mail_queue_name)["QueueUrl"])


def enqueue(job: mail.Job) -> None:
    """Put one mail job on the queue. Jobs are idempotent, so enqueueing twice is harmless."""
    _client().send_message(QueueUrl=_url(), MessageBody=mail.encode(job))
