"""Fault injection for the local stand-in: an HTTP proxy in front of a local AWS service.

:class:`FaultProxy` forwards every request to its upstream (DynamoDB Local, aws-ses-v2-local)
unchanged, except those matching a rule added with :meth:`FaultProxy.inject`. A rule answers
the next ``times`` matching requests the way the real service answers when it is in trouble:

* an error response, without forwarding (the service refused it: throttling, a 5xx), in the
  service's own wire format, so botocore classifies and retries it exactly as it would on AWS
  (:func:`dynamodb_error`, :func:`rest_error` build the answers);
* ``forward_first=True``: the request reaches the service and is applied, then the answer is
  replaced by the error (a 5xx after the write was done, or a lost response), the case that
  makes retries dangerous for anything that is not idempotent;
* ``hang_up=True``: no answer at all, the connection is closed (with ``forward_first``: the
  service did the work and the client cannot know);
* ``hold=True``: the request waits until the test calls ``rule.release()``, then goes through
  (a slow service, to make two workers overlap deterministically).

Requests are matched by operation: the ``X-Amz-Target`` suffix for JSON protocols
(``"DynamoDB_20120810.PutItem"`` -> ``"PutItem"``) or ``"<METHOD> <path>"`` for REST ones
(``"POST /v2/email/outbound-emails"``). ``seen`` counts every request by operation, ``injected``
the faults served. :func:`route_app_through` points the app's clients at a proxy (and back).

Never shipped: tests and ``make dev`` experiments only.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

DYNAMODB_PREFIX = "com.amazonaws.dynamodb.v20120810#"
#: The error codes DynamoDB answers with when it is throttling or failing, by short name.
DYNAMODB_FAULTS: dict[str, tuple[int, str]] = {
    "throughput": (400, DYNAMODB_PREFIX + "ProvisionedThroughputExceededException"),
    "throttling": (400, "com.amazon.coral.availability#ThrottlingException"),
    "request_limit": (400, DYNAMODB_PREFIX + "RequestLimitExceeded"),
    "internal": (500, DYNAMODB_PREFIX + "InternalServerError"),
    "unavailable": (503, "com.amazon.coral.availability#ServiceUnavailableException"),
}


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


def dynamodb_error(kind: str) -> Answer:
    """DynamoDB's JSON 1.0 error answer for one of :data:`DYNAMODB_FAULTS`."""
    status, code = DYNAMODB_FAULTS[kind]
    body = json.dumps({"__type": code, "message": f"Injected fault: {code.rsplit('#', 1)[-1]}"})
    return Answer(status, body.encode(), {"Content-Type": "application/x-amz-json-1.0"})


def rest_error(status: int, code: str) -> Answer:
    """A REST-JSON service's error answer (SES v2, the management API): ``x-amzn-ErrorType``."""
    body = json.dumps({"message": f"Injected fault: {code}"}).encode()
    return Answer(status, body, {"Content-Type": "application/json", "x-amzn-ErrorType": code})


@dataclass
class Rule:
    operation: str
    answer: Answer | None
    times: int
    forward_first: bool = False
    hang_up: bool = False
    hold: bool = False
    used: int = 0
    #: Set once the rule has served all its faults.
    spent: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let held requests (``hold=True``) through."""
        self.released.set()


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of ``upstream`` (see module docstring)."""

    def __init__(self, upstream: str) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        # The gateway's management API sits under a per-run secret path: clients keep it (it is
        # part of the endpoint) and it is forwarded as is, but operations are named without it.
        self.prefix = parsed.path.rstrip("/")
        self.rules: list[Rule] = []
        self.seen: collections.Counter[str] = collections.Counter()
        self.injected: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "FaultProxy not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def inject(self, operation: str, answer: Answer | None = None, *, times: int = 1,
               forward_first: bool = False, hang_up: bool = False, hold: bool = False) -> Rule:
        """Fault the next ``times`` requests for ``operation``; returns the rule (see ``used``)."""
        if answer is None and not hang_up and not hold:
            raise ValueError("a fault needs an answer, hang_up=True or hold=True")
        rule = Rule(operation, answer, times, forward_first=forward_first, hang_up=hang_up,
                    hold=hold)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (counters are kept)."""
        with self._lock:
            self.rules = []

    def _take(self, operation: str) -> Rule | None:
        with self._lock:
            self.seen[operation] += 1
            for rule in self.rules:
                if rule.operation == operation and rule.used < rule.times:
                    rule.used += 1
                    self.injected[operation] += 1
                    if rule.used == rule.times:
                        rule.spent.set()
                    return rule
        return None


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _operation(self) -> str:
        target = self.headers.get("X-Amz-Target")
        if target:
            return target.rsplit(".", 1)[-1]
        return f"{self.command} {self.path.split('?', 1)[0].removeprefix(self.owner.prefix)}"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rule = self.owner._take(self._operation())
        if rule is not None and rule.hold:
            rule.released.wait(30)
            rule = None
        if rule is not None and not rule.forward_first:
            self._fault(rule)
            return
        status, headers, payload = self._forward(body)
        if rule is not None:
            self._fault(rule)
            return
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self.owner.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _fault(self, rule: Rule) -> None:
        if rule.hang_up or rule.answer is None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        answer = rule.answer
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", "injected-fault")
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


def route_app_through(dynamodb: str | None = None, ses: str | None = None) -> None:
    """Point the app's DynamoDB and/or SES clients at ``dynamodb`` / ``ses`` (a proxy's
    endpoint, or the real local service to undo it). The clients are rebuilt on next use."""
    from chalicelib import mail, store

    if dynamodb is not None:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb
        store.reset_connections()  # the one client, and PynamoDB's connection per model class
    if ses is not None:
        os.environ["AWS_ENDPOINT_URL_SESV2"] = ses
        mail._client.cache_clear()


__all__ = ["DYNAMODB_FAULTS", "Answer", "FaultProxy", "Rule", "dynamodb_error", "rest_error",
           "route_app_through"]
