"""The events API Gateway and EventBridge hand to Lambda, with the keys real events carry, no more.

Powertools' sample events ``tests/events/apiGatewayWebSocketApi{Connect,Message,Disconnect}.json``
are the reference; ``tests/test_gateway_events.py`` compares them key for key. Identifiers are
fake but well-formed: boto3 and Powertools only care about their shape.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import string
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from infra.local.gateway.connection import Connection

if TYPE_CHECKING:
    from infra.local.gateway.runtime import Runtime

ACCOUNT_ID = "123456789012"
API_ID = "local"

_ID_ALPHABET = string.ascii_letters + string.digits
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Hop-by-hop headers of the upgrade request: API Gateway does not pass them to $connect
# (compare Powertools' apiGatewayWebSocketApiConnect.json with what any client sends).
_HOP_BY_HOP = frozenset({"connection", "upgrade"})


def aws_id(length: int = 16) -> str:
    """Random id shaped like API Gateway's (base64-ish, ending in ``=``).

    Only letters and digits are used before the ``=`` so that ids survive URL
    paths unchanged except for the ``=`` that boto3 percent-encodes.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length - 1)) + "="


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def request_time(epoch_ms: int) -> str:
    """Format ``requestTime`` like API Gateway (CLF, always UTC, locale-proof)."""
    t = time.gmtime(epoch_ms / 1000)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def iso8601(epoch_ms: int) -> str:
    """ISO 8601 with milliseconds and ``Z``, as botocore's timestamp parser expects."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def scheduled_event(rule: str) -> dict[str, Any]:
    """A CloudWatch/EventBridge "Scheduled Event" as Lambda receives it, from rule ``rule``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region(),
        "resources": [f"arn:aws:events:{region()}:{ACCOUNT_ID}:rule/{rule}"],
        "detail": {},
    }


class WebSocketEvents:
    """The ``$connect``, ``$default`` and ``$disconnect`` events of the runtime's stage.

    ``address`` gives the (host, port) clients dial, known only once the server listens.
    """

    def __init__(self, runtime: Runtime, address: Callable[[], tuple[str, int]]) -> None:
        self._runtime = runtime
        self._address = address

    @property
    def domain_name(self) -> str:
        # On AWS, "<apiId>.execute-api.<region>.amazonaws.com": the host clients dial, and the
        # one apps build the @connections endpoint from. Here that needs the port.
        host, port = self._address()
        return f"{host}:{port}"

    def connect(self, conn: Connection, request: web.Request) -> dict[str, Any]:
        """The ``$connect`` event: what the client sent, without hop-by-hop headers, plus what
        API Gateway adds (trace id, X-Forwarded-*)."""
        multi_headers = self._forwarded_headers(conn, request)
        event: dict[str, Any] = {
            "headers": {name: values[-1] for name, values in multi_headers.items()},
            "multiValueHeaders": multi_headers,
        }
        if request.query:
            # Only when there is a query string: AWS leaves both keys out, not null.
            multi_query: dict[str, list[str]] = {}
            for name, value in request.query.items():
                multi_query.setdefault(name, []).append(value)
            event["queryStringParameters"] = {n: v[-1] for n, v in multi_query.items()}
            event["multiValueQueryStringParameters"] = multi_query
        event["requestContext"] = self._request_context(
            conn, "$connect", "CONNECT", conn.connected_at)
        event["isBase64Encoded"] = False
        return event

    def _forwarded_headers(self, conn: Connection, request: web.Request) -> dict[str, list[str]]:
        """The upgrade request's headers as API Gateway forwards them, sorted by name."""
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            if name.lower() not in _HOP_BY_HOP:
                multi_headers.setdefault(name, []).append(value)

        def put(name: str, value: str) -> None:
            for existing in [n for n in multi_headers if n.lower() == name.lower()]:
                del multi_headers[existing]
            multi_headers[name] = [value]

        sent = {n.lower(): values[-1] for n, values in multi_headers.items()}
        if "x-amzn-trace-id" not in sent:
            # X-Ray's format: "Root=1-<epoch seconds, 8 hex>-<96 bits, 24 hex>".
            put("X-Amzn-Trace-Id",
                f"Root=1-{conn.connected_at // 1000:08x}-{secrets.token_hex(12)}")
        forwarded = sent.get("x-forwarded-for")
        put("X-Forwarded-For", f"{forwarded}, {conn.source_ip}" if forwarded else conn.source_ip)
        put("X-Forwarded-Port", str(self._address()[1]))
        put("X-Forwarded-Proto", "http")  # "https" on AWS: the stand-in has no TLS
        return dict(sorted(multi_headers.items(), key=lambda item: item[0].lower()))

    def message(self, conn: Connection, body: str) -> dict[str, Any]:
        context = self._request_context(conn, "$default", "MESSAGE", now_ms())
        context = {"routeKey": context.pop("routeKey"), "messageId": aws_id(), **context}
        # Binary frames never get here (closed with 1003), so the body is always text.
        return {"requestContext": context, "body": body, "isBase64Encoded": False}

    def disconnect(self, conn: Connection, code: int, reason: str) -> dict[str, Any]:
        context = self._request_context(conn, "$disconnect", "DISCONNECT", now_ms())
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        # Exactly the headers AWS sends on $disconnect (apiGatewayWebSocketApiDisconnect.json).
        headers = {"Host": self.domain_name, "x-api-key": "", "X-Forwarded-For": "",
                   "x-restapi": ""}
        return {
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }

    def _request_context(self, conn: Connection, route_key: str, event_type: str,
                         now: int) -> dict[str, Any]:
        """``requestContext`` with the keys AWS sends, in its order (Powertools' samples)."""
        request_id = aws_id()  # "$context.requestId: Same as $context.extendedRequestId"
        identity = {"sourceIp": conn.source_ip}
        if conn.user_agent is not None:
            # $context.identity.userAgent is documented for WebSocket APIs (mapping template
            # reference); the samples' client sent no User-Agent, hence none there.
            identity["userAgent"] = conn.user_agent
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": request_time(now),
            "messageDirection": "IN",
            "stage": self._runtime.stage,
            "connectedAt": conn.connected_at,
            "requestTimeEpoch": now,
            "identity": identity,
            "requestId": request_id,
            "domainName": self.domain_name,
            "connectionId": conn.connection_id,
            "apiId": API_ID,
        }
