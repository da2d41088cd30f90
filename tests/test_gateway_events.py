"""The local gateway's events, key for key against real API Gateway WebSocket events.

Every event the stand-in produces for a real connection (a ``websockets`` client over a real
socket: connect with and without a query string, a message, a disconnect, a refused frame)
is validated with Powertools' parser models and its key sets (top level, ``requestContext``,
``identity``, header names) compared with the key sets of real events.

The reference: the sample events in aws-powertools/powertools-lambda-python,
``tests/events/apiGatewayWebSocketApiConnect.json``, ``apiGatewayWebSocketApiMessage.json``
and ``apiGatewayWebSocketApiDisconnect.json`` (captured from a deployed API, November 2024).
Their key sets are copied below as literals; the files themselves are not vendored.

Allowed differences, each documented where it is allowed:

* ``queryStringParameters`` / ``multiValueQueryStringParameters`` appear on ``$connect``
  only when the URL has a query string (the sample's had none; AWS leaves the keys out
  rather than sending null);
* ``identity.userAgent`` appears when the client sent a User-Agent (``$context.identity.
  userAgent`` is documented for WebSocket APIs; the sample's client sent none);
* ``$connect`` headers are what the client sent (Origin, User-Agent, Sec-WebSocket-Protocol,
  ...) except the hop-by-hop Connection and Upgrade, plus what API Gateway adds;
* the sample message went to a custom route (``routeKey`` "chat"); Chalice apps only have
  ``$default``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from chalice.app import Chalice, WebsocketEvent
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

from infra.local.gateway import GatewayServer

# ------------------------------------------------- the reference (Powertools' samples)

# tests/events/apiGatewayWebSocketApiConnect.json
SAMPLE_CONNECT_KEYS = {"headers", "multiValueHeaders", "requestContext", "isBase64Encoded"}
SAMPLE_CONNECT_HEADERS = {"Host", "Sec-WebSocket-Extensions", "Sec-WebSocket-Key",
                          "Sec-WebSocket-Version", "X-Amzn-Trace-Id", "X-Forwarded-For",
                          "X-Forwarded-Port", "X-Forwarded-Proto"}
SAMPLE_CONNECT_CONTEXT = {"routeKey", "eventType", "extendedRequestId", "requestTime",
                          "messageDirection", "stage", "connectedAt", "requestTimeEpoch",
                          "identity", "requestId", "domainName", "connectionId", "apiId"}
SAMPLE_IDENTITY = {"sourceIp"}

# tests/events/apiGatewayWebSocketApiMessage.json
SAMPLE_MESSAGE_KEYS = {"requestContext", "body", "isBase64Encoded"}
SAMPLE_MESSAGE_CONTEXT = {"routeKey", "messageId", "eventType", "extendedRequestId",
                          "requestTime", "messageDirection", "stage", "connectedAt",
                          "requestTimeEpoch", "identity", "requestId", "domainName",
                          "connectionId", "apiId"}

# tests/events/apiGatewayWebSocketApiDisconnect.json
SAMPLE_DISCONNECT_KEYS = {"headers", "multiValueHeaders", "requestContext", "isBase64Encoded"}
SAMPLE_DISCONNECT_HEADERS = {"Host": "<domain>", "x-api-key": "", "X-Forwarded-For": "",
                             "x-restapi": ""}
SAMPLE_DISCONNECT_CONTEXT = {"routeKey", "disconnectStatusCode", "eventType",
                             "extendedRequestId", "requestTime", "messageDirection",
                             "disconnectReason", "stage", "connectedAt", "requestTimeEpoch",
                             "identity", "requestId", "domainName", "connectionId", "apiId"}
# The sample's client closed without a status code; AWS reported it so.
SAMPLE_DISCONNECT_NO_STATUS = (1005, "Client-side close frame status not set")

# Documented additions (see the module docstring).
QUERY_KEYS = {"queryStringParameters", "multiValueQueryStringParameters"}
HOP_BY_HOP = {"connection", "upgrade"}

# Value shapes seen in the samples.
AWS_ID = re.compile(r"\A[A-Za-z0-9_-]{15}=\Z")  # "BFHPhfCWIAMCKlQ="
REQUEST_TIME = re.compile(r"\A\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\Z")
TRACE_ID = re.compile(r"\ARoot=1-([0-9a-f]{8})-[0-9a-f]{24}\Z")  # "Root=1-6731ebfc-08e1e6..."


# ------------------------------------------------------------ a recording app

recorder = Chalice(app_name="recorder")
recorder.experimental_feature_flags.update(["WEBSOCKETS"])
recorder.websocket_api.session = boto3.session.Session()
events: list[dict[str, Any]] = []


@recorder.on_ws_connect()
def on_connect(event: WebsocketEvent) -> dict[str, Any]:
    raw = event.to_dict()
    events.append(raw)
    protocol = raw["headers"].get("Sec-WebSocket-Protocol")
    # As on AWS, a subprotocol is agreed only if $connect answers with it.
    return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": protocol}} if protocol else {}


@recorder.on_ws_message()
def on_message(event: WebsocketEvent) -> None:
    events.append(event.to_dict())


@recorder.on_ws_disconnect()
def on_disconnect(event: WebsocketEvent) -> None:
    events.append(event.to_dict())


@pytest.fixture(scope="module")
def gateway() -> Iterator[GatewayServer]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1",
                            "AWS_EC2_METADATA_DISABLED": "true"}.items():
            mp.setenv(name, value)
        with GatewayServer(recorder, stage="local") as server:
            yield server


@pytest.fixture
def recorded(gateway: GatewayServer) -> list[dict[str, Any]]:
    events.clear()
    return events


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def of_type(event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["requestContext"]["eventType"] == event_type]


def header_names(event: dict[str, Any]) -> set[str]:
    assert set(event["headers"]) == set(event["multiValueHeaders"])
    for name, values in event["multiValueHeaders"].items():
        assert isinstance(values, list) and values and event["headers"][name] == values[-1]
    return set(event["headers"])


def check_common(event: dict[str, Any], gateway: GatewayServer) -> None:
    """Values every event carries, in the samples' shapes."""
    context = event["requestContext"]
    assert context["messageDirection"] == "IN"
    assert context["stage"] == "local" and context["apiId"] == "local"
    assert AWS_ID.match(context["connectionId"]) and AWS_ID.match(context["requestId"])
    # "$context.requestId: Same as $context.extendedRequestId" (WebSocket API mapping template
    # reference); the samples agree.
    assert context["requestId"] == context["extendedRequestId"]
    assert REQUEST_TIME.match(context["requestTime"])
    assert isinstance(context["connectedAt"], int) and isinstance(context["requestTimeEpoch"], int)
    assert context["requestTimeEpoch"] >= context["connectedAt"]
    assert context["domainName"] == f"127.0.0.1:{gateway.port}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert event["isBase64Encoded"] is False


# ----------------------------------------------------------------------- tests


def test_a_plain_client_gets_the_samples_keys_exactly(gateway: GatewayServer,
                                                      recorded: list[dict[str, Any]]) -> None:
    """A client that sends what the samples' client sent (no User-Agent, no Origin, no query
    string, a permessage-deflate offer) gets events with exactly the samples' keys."""

    async def scenario() -> None:
        async with connect(gateway.ws_url, user_agent_header=None) as ws:
            await ws.send('{"action": "chat", "message": "Hello from client"}')
            await asyncio.to_thread(wait_for, lambda: len(of_type("MESSAGE")) == 1)
            # A close frame without a status code, like the sample's client.
            await ws.close(code=cast(int, None))

    asyncio.run(scenario())
    wait_for(lambda: len(of_type("DISCONNECT")) == 1)
    (connect_event,) = of_type("CONNECT")
    (message,) = of_type("MESSAGE")
    (disconnect,) = of_type("DISCONNECT")

    APIGatewayWebSocketConnectEventModel.model_validate(connect_event)
    assert set(connect_event) == SAMPLE_CONNECT_KEYS
    assert set(connect_event["requestContext"]) == SAMPLE_CONNECT_CONTEXT
    assert set(connect_event["requestContext"]["identity"]) == SAMPLE_IDENTITY
    assert header_names(connect_event) == SAMPLE_CONNECT_HEADERS
    assert connect_event["requestContext"]["routeKey"] == "$connect"
    assert connect_event["requestContext"]["eventType"] == "CONNECT"
    assert connect_event["requestContext"]["connectedAt"] == (
        connect_event["requestContext"]["requestTimeEpoch"])

    APIGatewayWebSocketMessageEventModel.model_validate(message)
    assert set(message) == SAMPLE_MESSAGE_KEYS
    assert set(message["requestContext"]) == SAMPLE_MESSAGE_CONTEXT
    assert set(message["requestContext"]["identity"]) == SAMPLE_IDENTITY
    assert message["requestContext"]["routeKey"] == "$default"  # the sample's was "chat"
    assert message["body"] == '{"action": "chat", "message": "Hello from client"}'
    assert AWS_ID.match(message["requestContext"]["messageId"])

    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect)
    assert set(disconnect) == SAMPLE_DISCONNECT_KEYS
    assert set(disconnect["requestContext"]) == SAMPLE_DISCONNECT_CONTEXT
    assert set(disconnect["requestContext"]["identity"]) == SAMPLE_IDENTITY
    assert disconnect["headers"] == {**SAMPLE_DISCONNECT_HEADERS,
                                     "Host": f"127.0.0.1:{gateway.port}"}
    assert header_names(disconnect) == set(SAMPLE_DISCONNECT_HEADERS)
    context = disconnect["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (
        SAMPLE_DISCONNECT_NO_STATUS)

    for event in (connect_event, message, disconnect):
        check_common(event, gateway)
    # One connection: the same id and connection time throughout, a request id per event.
    contexts = [e["requestContext"] for e in (connect_event, message, disconnect)]
    assert len({c["connectionId"] for c in contexts}) == 1
    assert len({c["connectedAt"] for c in contexts}) == 1
    assert len({c["requestId"] for c in contexts}) == 3

    # API Gateway's additions to the client's headers.
    headers = connect_event["headers"]
    trace = TRACE_ID.match(headers["X-Amzn-Trace-Id"])
    assert trace is not None
    assert abs(int(trace.group(1), 16) - context["connectedAt"] // 1000) <= 1
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Port"] == str(gateway.port)
    assert headers["X-Forwarded-Proto"] == "http"  # "https" on AWS: no TLS locally
    assert headers["Host"] == f"127.0.0.1:{gateway.port}"


def test_a_browser_like_client_with_a_query_string(gateway: GatewayServer,
                                                   recorded: list[dict[str, Any]]) -> None:
    """What a browser sends on top of the samples' client, and a query string: documented
    additions only, and never the hop-by-hop Connection / Upgrade."""
    user_agent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0"

    async def scenario() -> None:
        async with connect(gateway.ws_url + "?site=s1&tag=a&tag=b&empty=",
                           user_agent_header=user_agent, origin=Origin("https://shop.example"),
                           subprotocols=[Subprotocol("chat.v1")],
                           additional_headers={"X-Forwarded-For": "203.0.113.9"}) as ws:
            assert ws.subprotocol == "chat.v1"
            await ws.send("hello")
            await asyncio.to_thread(wait_for, lambda: len(of_type("MESSAGE")) == 1)

    asyncio.run(scenario())
    wait_for(lambda: len(of_type("DISCONNECT")) == 1)
    connect_event, message, disconnect = events

    APIGatewayWebSocketConnectEventModel.model_validate(connect_event)
    assert set(connect_event) == SAMPLE_CONNECT_KEYS | QUERY_KEYS
    assert connect_event["queryStringParameters"] == {"site": "s1", "tag": "b", "empty": ""}
    assert connect_event["multiValueQueryStringParameters"] == {
        "site": ["s1"], "tag": ["a", "b"], "empty": [""]}
    assert set(connect_event["requestContext"]) == SAMPLE_CONNECT_CONTEXT
    names = header_names(connect_event)
    assert names == SAMPLE_CONNECT_HEADERS | {"User-Agent", "Origin", "Sec-WebSocket-Protocol"}
    assert not {n.lower() for n in names} & HOP_BY_HOP
    headers = connect_event["headers"]
    assert headers["Origin"] == "https://shop.example"
    assert headers["Sec-WebSocket-Protocol"] == "chat.v1"
    # API Gateway appends the caller's address to an X-Forwarded-For the client sent.
    assert headers["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"

    for event, model in ((connect_event, APIGatewayWebSocketConnectEventModel),
                         (message, APIGatewayWebSocketMessageEventModel),
                         (disconnect, APIGatewayWebSocketDisconnectEventModel)):
        model.model_validate(event)
        check_common(event, gateway)
        # $context.identity.userAgent: the one documented addition to identity.
        assert event["requestContext"]["identity"] == {"sourceIp": "127.0.0.1",
                                                       "userAgent": user_agent}
    assert set(message) == SAMPLE_MESSAGE_KEYS
    assert set(message["requestContext"]) == SAMPLE_MESSAGE_CONTEXT
    assert set(disconnect) == SAMPLE_DISCONNECT_KEYS
    assert set(disconnect["requestContext"]) == SAMPLE_DISCONNECT_CONTEXT
    assert disconnect["requestContext"]["disconnectStatusCode"] == 1000


def test_an_empty_query_string_sends_no_query_keys(gateway: GatewayServer,
                                                   recorded: list[dict[str, Any]]) -> None:
    async def scenario() -> None:
        async with connect(gateway.ws_url + "?"):
            pass

    asyncio.run(scenario())
    wait_for(lambda: len(of_type("DISCONNECT")) == 1)
    (connect_event,) = of_type("CONNECT")
    assert not QUERY_KEYS & set(connect_event)


@pytest.mark.parametrize("frame,code", [(b"\x00binary", 1003), ("x" * (32 * 1024 + 1), 1009)])
def test_a_refused_frame_makes_only_a_disconnect_event(gateway: GatewayServer,
                                                       recorded: list[dict[str, Any]],
                                                       frame: str | bytes, code: int) -> None:
    async def scenario(ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(frame)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)

    async def run() -> None:
        async with connect(gateway.ws_url, user_agent_header=None) as ws:
            await scenario(ws)

    asyncio.run(run())
    wait_for(lambda: len(of_type("DISCONNECT")) == 1)
    assert of_type("MESSAGE") == []
    (disconnect,) = of_type("DISCONNECT")
    APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect)
    assert set(disconnect) == SAMPLE_DISCONNECT_KEYS
    assert set(disconnect["requestContext"]) == SAMPLE_DISCONNECT_CONTEXT
    assert disconnect["requestContext"]["disconnectStatusCode"] == code
    check_common(disconnect, gateway)
