"""AWS clients from botocore directly, and the one retry policy they all follow.

botocore rather than boto3: boto3 adds ~90 ms of imports (s3transfer and friends) to every
cold start for nothing we use. One place makes the clients, so settings stay uniform.

Retries are deliberate, per service (:data:`POLICIES`), and bounded by the invocation:

* what is retried is botocore's "standard" classification (throttling, 5xx, transient
  network errors), at most ``attempts`` times in all, with full-jitter exponential backoff
  (``random(0, min(cap, base * 2**n))``, a longer ``throttle_base`` for throttling);
* a retry is only started when the invocation has time left for the pause, one whole attempt
  (connect + read timeouts) and :data:`RESERVE_SECONDS` to tell the client; otherwise the
  error surfaces now and the client is asked to resend (``retry`` error frame, idempotent)
  instead of the Lambda being killed mid-way. The deadline comes from the Lambda context
  (:func:`deadline`, set for every handler by a middleware in ``app.py``);
* a request that may already have been applied (read timeout, connection lost while waiting
  for the answer) is only retried where doing it twice is harmless (``ambiguous=True``):
  DynamoDB (every write is conditional and a resend is recognised), SQS (jobs are idempotent)
  and posts to connections (clients keep one message per seq). Never for SES: an email sent
  twice cannot be taken back, so that outcome is left to ``mail.send_once``'s lease.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError
from botocore.retries import standard

_lock = threading.Lock()  # botocore sessions are not thread-safe when creating clients
_session: botocore.session.Session | None = None

#: Time kept back at the end of an invocation to answer the client (post an error frame).
RESERVE_SECONDS = 1.0

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("aws_deadline", default=None)


@dataclass(frozen=True)
class RetryPolicy:
    """How one service's calls are retried (module docstring)."""

    attempts: int  # in all, the first one included
    base: float  # seconds: the n-th retry waits up to min(cap, base * 2**(n-1))
    throttle_base: float  # the same for throttling answers, which want a longer pause
    cap: float
    connect_timeout: float
    read_timeout: float
    ambiguous: bool  # retry a request that may already have been applied

    @property
    def attempt_seconds(self) -> float:
        """The longest one attempt can take."""
        return self.connect_timeout + self.read_timeout

    def config(self) -> Config:
        return Config(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                      retries={"mode": "standard", "total_max_attempts": self.attempts})


POLICIES: dict[str, RetryPolicy] = {
    # The message path: two single-item writes of a few ms each. Throttling pauses of up to
    # 0.1 + 0.2 + 0.4 s, then the client resends (its own backoff takes over from there).
    "dynamodb": RetryPolicy(attempts=4, base=0.025, throttle_base=0.1, cap=1.0,
                            connect_timeout=2, read_timeout=5, ambiguous=True),
    "apigatewaymanagementapi": RetryPolicy(attempts=3, base=0.025, throttle_base=0.1, cap=0.5,
                                           connect_timeout=2, read_timeout=5, ambiguous=True),
    "sqs": RetryPolicy(attempts=3, base=0.05, throttle_base=0.2, cap=1.0,
                       connect_timeout=2, read_timeout=5, ambiguous=True),
    # The mail consumer has 60 s; SQS redelivery is the long-term retry.
    "sesv2": RetryPolicy(attempts=3, base=0.05, throttle_base=0.5, cap=2.0,
                         connect_timeout=2, read_timeout=10, ambiguous=False),
    # Reading an inbound email SES stored: a read, harmless to repeat.
    "s3": RetryPolicy(attempts=3, base=0.05, throttle_base=0.2, cap=1.0,
                      connect_timeout=2, read_timeout=10, ambiguous=True),
}
DEFAULT_POLICY = RetryPolicy(attempts=3, base=0.05, throttle_base=0.5, cap=2.0,
                             connect_timeout=2, read_timeout=10, ambiguous=False)


@contextmanager
def deadline(remaining_ms: float | None) -> Iterator[None]:
    """Within this block, no retry starts that could end less than RESERVE_SECONDS before
    ``remaining_ms`` from now (the Lambda context's remaining time). None: no deadline."""
    token = _deadline.set(None if remaining_ms is None else time.monotonic() + remaining_ms / 1000)
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left() -> float | None:
    """Seconds until the current invocation's deadline (None outside of one)."""
    end = _deadline.get()
    return None if end is None else end - time.monotonic()


def _applied_maybe(exc: BaseException | None) -> bool:
    """A network error after the request was sent: the service may have acted on it."""
    return exc is not None and not isinstance(exc, (EndpointConnectionError, ConnectTimeoutError))


class _Retries:
    """The ``needs-retry`` handler: returns the pause before the next attempt, or None."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.adapter = standard.RetryEventAdapter()
        self.retryable = standard.StandardRetryConditions(max_attempts=policy.attempts)
        self.throttled = standard.OrRetryChecker([standard.ThrottledRetryableChecker(),
                                                  standard.ThrottlingStatusCodeChecker()])

    def __call__(self, **kwargs: Any) -> float | None:
        context = self.adapter.create_retry_context(**kwargs)
        pause = self.pause(context, kwargs.get("caught_exception"))
        self.adapter.adapt_retry_response_from_context(context)
        return pause

    def pause(self, context: Any, exc: BaseException | None) -> float | None:
        policy = self.policy
        if not self.retryable.is_retryable(context):
            return None
        if not policy.ambiguous and _applied_maybe(exc):
            return None
        base = policy.throttle_base if self.throttled.is_retryable(context) else policy.base
        pause = random.random() * min(policy.cap, base * 2 ** (context.attempt_number - 1))
        left = time_left()
        if left is not None and left < pause + policy.attempt_seconds + RESERVE_SECONDS:
            return None  # it could not finish in time: answer "resend" while we still can
        return pause


def policy_for(service: str) -> RetryPolicy:
    return POLICIES.get(service, DEFAULT_POLICY)


def bound_retries(client: Any, policy: RetryPolicy) -> Any:
    """Replace botocore's standard retry handler on ``client`` with ``policy``'s (idempotent)."""
    if getattr(client, "_retry_policy", None) is policy:
        return client
    service = client.meta.service_model.service_id.hyphenize()
    events = client.meta.events
    events.unregister(f"needs-retry.{service}", unique_id=f"retry-config-{service}")
    events.register(f"needs-retry.{service}", _Retries(policy), unique_id=f"retry-config-{service}")
    client._retry_policy = policy
    return client


def client(service: str, *, endpoint_url: str | None = None, config: Config | None = None) -> Any:
    """A client for ``service``; the region and credentials come from the Lambda environment,
    endpoints from the standard ``AWS_ENDPOINT_URL_<SERVICE>`` variables (the local stand-in).
    Timeouts and retries are the service's :data:`POLICIES` entry."""
    global _session
    policy = policy_for(service)
    settings = policy.config() if config is None else policy.config().merge(config)
    with _lock:
        if _session is None:
            _session = botocore.session.get_session()
        made = _session.create_client(service, endpoint_url=endpoint_url, config=settings)
    return bound_retries(made, policy)
