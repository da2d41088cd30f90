"""Tests for the local API Gateway stand-in (``infra/local/gateway/``).

Everything goes over real sockets: the ``websockets`` client on one side, an
unmodified boto3 ``apigatewaymanagementapi`` client for ``@connections``, and
plain urllib for REST/static, so the wire formats are what is under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from chalice.app import Chalice, WebsocketEvent
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from infra.local.gateway import (
    IDLE_TIMEOUT_S,
    MAX_CONNECTION_S,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    GatewayServer,
)
from infra.local.stack import Stack

try:  # works whether or not tests/ is a package
    from tests.support import echo_app
except ImportError:  # pragma: no cover
    import echo_app  # type: ignore[no-redef]

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
ENDPOINT_ENV = "AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"


# --------------------------------------------------------------------- helpers


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


async def open_ws(server: GatewayServer, query: str = "") -> tuple[ClientConnection, str]:
    """Connect and find the connection id the gateway assigned to us."""
    before = set(server.connection_ids())
    ws = await connect(server.ws_url + query)
    deadline = time.monotonic() + 5
    while True:
        new = set(server.connection_ids()) - before
        if new:
            return ws, new.pop()
        if time.monotonic() > deadline:
            raise AssertionError("connection never registered")
        await asyncio.sleep(0.01)


async def recv(ws: ClientConnection, timeout: float = 5.0) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


async def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, list[str | bytes]]:
    """Wait for the server to close ``ws``: its close code, and what arrived before."""
    received: list[str | bytes] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(await recv(ws, timeout))
    assert closed.value.rcvd is not None, "no close frame: the TCP link just died"
    return closed.value.rcvd.code, received


async def send_refused(ws: ClientConnection, message: Any) -> None:
    """Send what the gateway will refuse; it may close before the client has sent it all."""
    with contextlib.suppress(ConnectionClosed):
        await ws.send(message)


def disconnect_of(connection_id: str) -> dict[str, Any]:
    """The echo app's record of ``$disconnect`` for a connection (waits for it)."""
    wait_until(lambda: any(d["connectionId"] == connection_id for d in echo_app.disconnects))
    (record,) = [d for d in echo_app.disconnects if d["connectionId"] == connection_id]
    return record


def management(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def http_get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def raw_get(server: GatewayServer, raw_path: str) -> int:
    """GET with the path sent byte-for-byte (urllib would normalise ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


# -------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _dummy_aws() -> Iterator[None]:
    """Never reach real AWS credentials or metadata from these tests."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in DUMMY_AWS_ENV.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("static")
    (root / "demo").mkdir()
    (root / "demo" / "index.html").write_text("<h1>demo</h1>")
    (root / "widget").mkdir()
    (root / "widget" / "widget.js").write_text("console.log('widget');")
    (root / "secret.txt").write_text("top secret")
    return root


@pytest.fixture(scope="module")
def _echo_server(static_root: Path, _dummy_aws: None) -> Iterator[GatewayServer]:
    server = GatewayServer(
        echo_app.app,
        static_dirs={"/": static_root / "demo", "/widget/": static_root / "widget"},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def echo(_echo_server: GatewayServer, monkeypatch: pytest.MonkeyPatch) -> GatewayServer:
    """The echo gateway, with the app's management endpoint pointed at it."""
    monkeypatch.setenv(ENDPOINT_ENV, _echo_server.management_endpoint)
    return _echo_server


# A second app whose handlers record what they receive and can misbehave on
# request, to check event shapes, the Lambda context and error paths.
probe_app = Chalice(app_name="probe")
probe_app.experimental_feature_flags.update(["WEBSOCKETS"])
probe_app.websocket_api.session = boto3.session.Session()
probe_events: list[dict[str, Any]] = []
probe_contexts: list[dict[str, Any]] = []
powertools_logger = Logger(service="probe")


@probe_app.on_ws_connect()
def probe_connect(event: WebsocketEvent) -> None:
    probe_events.append(event.to_dict())
    # Exactly what a Powertools-decorated handler does with the context.
    powertools_logger.inject_lambda_context(lambda _e, _c: None)(event.to_dict(), event.context)
    context: Any = event.context
    probe_contexts.append({
        "function_name": context.function_name,
        "remaining": context.get_remaining_time_in_millis(),
        "logged_request_id": powertools_logger.get_current_keys().get("function_request_id"),
    })
    if "explode" in (event.to_dict().get("queryStringParameters") or {}):
        raise RuntimeError("boom on connect")


@probe_app.on_ws_message()
def probe_message(event: WebsocketEvent) -> None:
    probe_events.append(event.to_dict())
    if event.body == "boom":
        raise RuntimeError("boom on message")
    if event.body.startswith("sleep:"):
        time.sleep(float(event.body.split(":", 1)[1]))
    echo_app.management_client(event).post_to_connection(
        ConnectionId=event.connection_id, Data=event.body.encode()
    )


@probe_app.on_ws_disconnect()
def probe_disconnect(event: WebsocketEvent) -> None:
    probe_events.append(event.to_dict())


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> Iterator[GatewayServer]:
    probe_events.clear()
    probe_contexts.clear()
    server = GatewayServer(probe_app, stage="dev")
    server.start()
    monkeypatch.setenv(ENDPOINT_ENV, server.management_endpoint)
    yield server
    server.stop()


# ----------------------------------------------------------------- websocket


def test_echo_round_trip(echo: GatewayServer) -> None:
    async def scenario() -> list[str | bytes]:
        async with connect(echo.ws_url) as ws:
            await ws.send("hello")
            first = await recv(ws)
            await ws.send("wörld")
            return [first, await recv(ws)]

    before = echo.counters.copy()
    assert asyncio.run(scenario()) == ["hello", "wörld"]
    assert echo.counters["invoke:$connect"] == before["invoke:$connect"] + 1
    assert echo.counters["invoke:$default"] == before["invoke:$default"] + 2
    assert echo.counters["frames_in"] == before["frames_in"] + 2
    assert echo.counters["post"] == before["post"] + 2
    wait_until(lambda: echo.counters["invoke:$disconnect"] == before["invoke:$disconnect"] + 1)


def test_connect_refusal_is_http_403_and_never_registered(echo: GatewayServer) -> None:
    async def scenario() -> None:
        await connect(echo.ws_url + "?deny=1")

    before = echo.counters.copy()
    registered = set(echo.connection_ids())
    with pytest.raises(InvalidStatus) as info:
        asyncio.run(scenario())
    assert info.value.response.status_code == 403
    assert echo.counters["invoke:$connect"] == before["invoke:$connect"] + 1
    assert set(echo.connection_ids()) <= registered
    time.sleep(0.1)
    assert echo.counters["invoke:$disconnect"] == before["invoke:$disconnect"]


def test_events_match_api_gateway_shape(probe: GatewayServer) -> None:
    async def scenario() -> None:
        async with connect(probe.ws_url + "?visitor=v1&tag=a&tag=b",
                           user_agent_header="probe-agent/1.0") as ws:
            await ws.send('{"action": "hi"}')
            await recv(ws)

    asyncio.run(scenario())
    wait_until(lambda: len(probe_events) == 3)
    connect_ev, message_ev, disconnect_ev = probe_events

    ctx = connect_ev["requestContext"]
    assert ctx["routeKey"] == "$connect" and ctx["eventType"] == "CONNECT"
    assert ctx["messageDirection"] == "IN" and ctx["stage"] == "dev" and ctx["apiId"] == "local"
    assert ctx["domainName"] == f"127.0.0.1:{probe.port}"
    assert ctx["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "probe-agent/1.0"}
    assert len(ctx["connectionId"]) == 16 and ctx["connectionId"].endswith("=")
    assert ctx["connectedAt"] == ctx["requestTimeEpoch"]
    assert ctx["requestTime"].endswith(" +0000")
    assert {"extendedRequestId", "requestId"} <= set(ctx)
    assert connect_ev["queryStringParameters"] == {"visitor": "v1", "tag": "b"}
    assert connect_ev["multiValueQueryStringParameters"] == {"visitor": ["v1"], "tag": ["a", "b"]}
    assert connect_ev["headers"]["User-Agent"] == "probe-agent/1.0"
    # Hop-by-hop headers stay with the gateway, as on AWS.
    assert not {"upgrade", "connection"} & {h.lower() for h in connect_ev["multiValueHeaders"]}
    assert connect_ev["isBase64Encoded"] is False

    mctx = message_ev["requestContext"]
    assert mctx["routeKey"] == "$default" and mctx["eventType"] == "MESSAGE"
    assert mctx["connectionId"] == ctx["connectionId"]
    assert mctx["connectedAt"] == ctx["connectedAt"]
    assert "messageId" in mctx
    assert message_ev["body"] == '{"action": "hi"}' and message_ev["isBase64Encoded"] is False

    dctx = disconnect_ev["requestContext"]
    assert dctx["routeKey"] == "$disconnect" and dctx["eventType"] == "DISCONNECT"
    assert dctx["connectionId"] == ctx["connectionId"]
    assert dctx["disconnectStatusCode"] == 1000
    assert dctx["disconnectReason"]

    # The Lambda-like context satisfies Chalice and Powertools.
    (lambda_ctx,) = probe_contexts
    assert lambda_ctx["function_name"] == "probe-dev-probe_connect"
    assert lambda_ctx["remaining"] > 0
    assert lambda_ctx["logged_request_id"]


def test_connect_handler_exception_is_http_500(probe: GatewayServer) -> None:
    async def scenario() -> None:
        await connect(probe.ws_url + "?explode=1")

    with pytest.raises(InvalidStatus) as info:
        asyncio.run(scenario())
    assert info.value.response.status_code == 500
    assert probe.connection_ids() == []


def test_message_handler_exception_sends_internal_server_error(probe: GatewayServer) -> None:
    async def scenario() -> tuple[str | bytes, str | bytes]:
        async with connect(probe.ws_url) as ws:
            await ws.send("boom")
            error = await recv(ws)
            await ws.send("still alive")
            return error, await recv(ws)

    error, after = asyncio.run(scenario())
    body = json.loads(error)
    assert body["message"] == "Internal server error"
    assert body["connectionId"] == probe_events[0]["requestContext"]["connectionId"]
    assert body["requestId"]
    assert after == "still alive"
    assert probe.counters["invoke_error:$default"] == 1


def test_frames_are_dispatched_concurrently(probe: GatewayServer) -> None:
    """Five 0.4 s invocations must overlap, as separate Lambda invocations do."""

    async def scenario() -> float:
        async with connect(probe.ws_url) as ws:
            started = time.monotonic()
            for _ in range(5):
                await ws.send("sleep:0.4")
            for _ in range(5):
                assert await recv(ws) == "sleep:0.4"
            return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.2


def test_frame_over_32k_closes_with_1009_and_invokes_nothing(echo: GatewayServer) -> None:
    """API Gateway quotas: "WebSocket frame size 32 KB"; a larger frame closes the connection
    with 1009 and reaches no route."""

    async def scenario() -> tuple[str, str | bytes, int]:
        ws, cid = await open_ws(echo)
        async with ws:
            await ws.send("x" * MAX_FRAME_BYTES)  # exactly at the limit: fine
            at_limit = await recv(ws)
            await send_refused(ws, "x" * (MAX_FRAME_BYTES + 1))
            code, after = await closed_with(ws)
            assert after == []
            return cid, at_limit, code

    before = echo.counters.copy()
    cid, at_limit, code = asyncio.run(scenario())
    assert len(at_limit) == MAX_FRAME_BYTES
    assert code == 1009
    assert echo.counters["invoke:$default"] == before["invoke:$default"] + 1  # the 32 KB one
    assert echo.counters["refused:frame_too_big"] == before["refused:frame_too_big"] + 1
    record = disconnect_of(cid)
    assert (record["code"], record["reason"]) == (1009, "Frame size exceeds 32 KB limit")


def test_a_single_128k_frame_is_over_the_frame_limit(echo: GatewayServer) -> None:
    """128 KB is the message limit, not the frame limit: in one frame it is refused."""

    async def scenario() -> tuple[str, int]:
        ws, cid = await open_ws(echo)
        async with ws:
            await send_refused(ws, "x" * MAX_MESSAGE_BYTES)
            code, _ = await closed_with(ws)
            return cid, code

    before = echo.counters["invoke:$default"]
    cid, code = asyncio.run(scenario())
    assert code == 1009
    assert disconnect_of(cid)["code"] == 1009
    assert echo.counters["invoke:$default"] == before


def test_fragmented_message_over_128k_closes_with_1009(echo: GatewayServer) -> None:
    """Fragments of at most 32 KB each make one message of up to 128 KB; a byte more and
    the connection is closed with 1009, the message never delivered."""
    fragment = "x" * MAX_FRAME_BYTES
    fragments = MAX_MESSAGE_BYTES // MAX_FRAME_BYTES

    async def scenario() -> tuple[str, str | bytes, int]:
        ws, cid = await open_ws(echo)
        async with ws:
            await ws.send([fragment] * fragments)  # 4 frames, 128 KB in all: fine
            at_limit = await recv(ws)
            await send_refused(ws, [fragment] * fragments + ["y"])
            code, after = await closed_with(ws)
            assert after == []
            return cid, at_limit, code

    before = echo.counters.copy()
    cid, at_limit, code = asyncio.run(scenario())
    assert at_limit == fragment * fragments
    assert code == 1009
    assert echo.counters["invoke:$default"] == before["invoke:$default"] + 1
    assert echo.counters["refused:message_too_big"] == before["refused:message_too_big"] + 1
    record = disconnect_of(cid)
    assert (record["code"], record["reason"]) == (1009, "Message size exceeds 128 KB limit")


def test_small_fragments_make_one_message(echo: GatewayServer) -> None:
    async def scenario() -> str | bytes:
        async with connect(echo.ws_url) as ws:
            await ws.send(["hel", "lo ", "wörld"])
            return await recv(ws)

    assert asyncio.run(scenario()) == "hello wörld"


@pytest.mark.parametrize("payload", [b"", b"\x00\xff", b'{"action": "ping"}'])
def test_binary_frame_closes_with_1003_and_invokes_nothing(echo: GatewayServer,
                                                           payload: bytes) -> None:
    """"Working with binary media types for WebSocket APIs": API Gateway does not accept
    binary frames from clients; it closes the connection with 1003 and invokes no route.
    What the client sent before still reaches the app."""

    async def scenario() -> tuple[str, int]:
        ws, cid = await open_ws(echo)
        async with ws:
            await ws.send("before")
            assert await recv(ws) == "before"
            await send_refused(ws, payload)
            code, after = await closed_with(ws)
            assert after == []
            return cid, code

    before = echo.counters.copy()
    cid, code = asyncio.run(scenario())
    assert code == 1003
    assert echo.counters["invoke:$default"] == before["invoke:$default"] + 1  # "before" only
    assert echo.counters["refused:binary"] == before["refused:binary"] + 1
    record = disconnect_of(cid)
    assert (record["code"], record["reason"]) == (1003, "Binary frames are not supported")


# ------------------------------------------------------------ @connections API


def test_management_post_get_delete(echo: GatewayServer) -> None:
    client = management(echo.management_endpoint)

    async def scenario() -> None:
        ws, cid = await open_ws(echo)
        try:
            await asyncio.to_thread(client.post_to_connection, ConnectionId=cid,
                                    Data=b'{"type": "hello"}')
            assert await recv(ws) == '{"type": "hello"}'

            info = await asyncio.to_thread(client.get_connection, ConnectionId=cid)
            assert info["ConnectedAt"].tzinfo is not None
            assert info["LastActiveAt"] >= info["ConnectedAt"]
            assert info["Identity"]["SourceIp"] == "127.0.0.1"
            assert info["Identity"]["UserAgent"].startswith("Python/")

            await asyncio.to_thread(client.delete_connection, ConnectionId=cid)
            with pytest.raises(ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            await asyncio.to_thread(
                wait_until,
                lambda: any(d["connectionId"] == cid for d in echo_app.disconnects),
            )
            (record,) = [d for d in echo_app.disconnects if d["connectionId"] == cid]
            assert record["code"] == 1000
            with pytest.raises(client.exceptions.GoneException):
                await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"x")
        finally:
            await ws.close()

    asyncio.run(scenario())


def test_unknown_connection_is_gone(echo: GatewayServer) -> None:
    client = management(echo.management_endpoint)
    calls: list[Callable[[], Any]] = [
        lambda: client.post_to_connection(ConnectionId="NoSuchConnId0Q=", Data=b"x"),
        lambda: client.get_connection(ConnectionId="NoSuchConnId0Q="),
        lambda: client.delete_connection(ConnectionId="NoSuchConnId0Q="),
    ]
    for call in calls:
        with pytest.raises(client.exceptions.GoneException) as info:
            call()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_payload_over_128k_is_rejected(echo: GatewayServer) -> None:
    client = management(echo.management_endpoint)

    async def scenario() -> None:
        ws, cid = await open_ws(echo)
        async with ws:
            await asyncio.to_thread(client.post_to_connection, ConnectionId=cid,
                                    Data=b"x" * MAX_MESSAGE_BYTES)  # at the limit: delivered
            assert await recv(ws) == "x" * MAX_MESSAGE_BYTES
            with pytest.raises(client.exceptions.PayloadTooLargeException) as refused:
                await asyncio.to_thread(client.post_to_connection, ConnectionId=cid,
                                        Data=b"x" * (MAX_MESSAGE_BYTES + 1))
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
            await ws.send("ok")
            assert await recv(ws) == "ok"  # nothing else was delivered

    asyncio.run(scenario())


def test_stage_prefixed_endpoint(echo: GatewayServer) -> None:
    client = management(f"{echo.management_endpoint}/{echo.stage}")

    async def scenario() -> None:
        ws, cid = await open_ws(echo)
        async with ws:
            await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"staged")
            assert await recv(ws) == "staged"
            info = await asyncio.to_thread(client.get_connection, ConnectionId=cid)
            assert info["Identity"]["SourceIp"] == "127.0.0.1"

    asyncio.run(scenario())


def test_drop_skips_disconnect_and_later_posts_are_gone(echo: GatewayServer) -> None:
    client = management(echo.management_endpoint)

    async def scenario() -> None:
        ws, cid = await open_ws(echo)
        before = echo.counters["invoke:$disconnect"]
        await asyncio.to_thread(echo.drop, cid)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is None  # no close frame: the TCP link just died
        await asyncio.sleep(0.2)
        assert echo.counters["invoke:$disconnect"] == before
        assert all(d["connectionId"] != cid for d in echo_app.disconnects)
        with pytest.raises(client.exceptions.GoneException):
            await asyncio.to_thread(client.post_to_connection, ConnectionId=cid, Data=b"x")
        assert cid not in echo.connection_ids()

    asyncio.run(scenario())


def test_concurrent_posts_from_many_threads(echo: GatewayServer) -> None:
    """The app fans out with a thread pool; every post must arrive intact."""
    client = management(echo.management_endpoint)

    async def scenario() -> None:
        ws, cid = await open_ws(echo)
        async with ws:
            def post(i: int) -> None:
                client.post_to_connection(ConnectionId=cid, Data=f"msg-{i}".encode())

            threads = [threading.Thread(target=post, args=(i,)) for i in range(40)]
            for t in threads:
                t.start()
            received = {await recv(ws) for _ in range(40)}
            for t in threads:
                t.join()
            assert received == {f"msg-{i}" for i in range(40)}

    asyncio.run(scenario())


# ------------------------------------------------------------ REST and static


def test_rest_route_goes_through_chalice_local_gateway(echo: GatewayServer) -> None:
    status, headers, body = http_get(f"{echo.http_url}/api/ping?name=ada")
    assert status == 200
    assert json.loads(body) == {"pong": "ada"}
    assert headers["Content-Type"] == "application/json"
    # Chalice's LocalGateway mimics API Gateway for unknown routes.
    status, _, body = http_get(f"{echo.http_url}/api/nope")
    assert status == 403
    assert b"Missing Authentication Token" in body


def test_rest_without_routes_is_404(probe: GatewayServer) -> None:
    status, _, body = http_get(f"{probe.http_url}/api/ping")
    assert status == 404
    assert json.loads(body) == {"message": "Not Found"}


def test_static_files(echo: GatewayServer) -> None:
    status, headers, body = http_get(f"{echo.http_url}/")
    assert (status, body) == (200, b"<h1>demo</h1>")
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"

    status, headers, body = http_get(f"{echo.http_url}/widget/widget.js")
    assert (status, body) == (200, b"console.log('widget');")
    assert "javascript" in headers["Content-Type"]

    assert http_get(f"{echo.http_url}/missing.html")[0] == 404
    # secret.txt sits next to demo/ and widget/, one level above both roots.
    for attack in ("/..%2fsecret.txt", "/widget/..%2fsecret.txt", "/widget/%2e%2e%2fsecret.txt",
                   "/../secret.txt", "/%2e%2e/secret.txt", "/widget/../../secret.txt"):
        assert raw_get(echo, attack) == 404, attack


# ------------------------------------------------------------------ schedules


def test_run_schedules_invokes_scheduled_handlers(echo: GatewayServer) -> None:
    before = len(echo_app.schedule_runs)
    echo.run_schedules()
    assert len(echo_app.schedule_runs) == before + 1
    event = echo_app.schedule_runs[-1]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"][0].startswith("arn:aws:events:us-east-1:123456789012:rule/")


def test_schedule_timer() -> None:
    before = len(echo_app.schedule_runs)
    with GatewayServer(echo_app.app, schedule_interval=0.05):
        wait_until(lambda: len(echo_app.schedule_runs) >= before + 2)


# ----------------------------------------------------------- lifecycle limits


def test_stop_closes_sockets_and_runs_disconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    server = GatewayServer(echo_app.app)
    server.start()
    monkeypatch.setenv(ENDPOINT_ENV, server.management_endpoint)

    async def scenario() -> None:
        ws, cid = await open_ws(server)
        await asyncio.to_thread(server.stop)
        # stop() returns only after $disconnect ran.
        assert any(d["connectionId"] == cid and d["code"] == 1001 for d in echo_app.disconnects)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

    asyncio.run(scenario())


def test_limits_are_on_by_default() -> None:
    """API Gateway's idle timeout (10 min) and maximum connection (2 h), as ``make dev`` and
    the test stack get them unless told otherwise."""
    assert (IDLE_TIMEOUT_S, MAX_CONNECTION_S) == (600, 7200)
    server = GatewayServer(echo_app.app)
    assert (server.idle_timeout, server.max_connection_duration) == (600, 7200)
    stack = Stack()
    assert (stack.idle_timeout, stack.max_connection_duration) == (600, 7200)


def test_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with GatewayServer(echo_app.app, idle_timeout=0.5) as server:
        monkeypatch.setenv(ENDPOINT_ENV, server.management_endpoint)

        async def scenario() -> None:
            ws, cid = await open_ws(server)
            async with ws:
                await asyncio.sleep(0.3)
                await ws.send("keep alive")  # activity resets the idle clock
                assert await recv(ws) == "keep alive"
                await asyncio.sleep(0.3)
                assert server.connection_ids()  # 0.6 s old, but only 0.3 s idle
                with pytest.raises(ConnectionClosed) as closed:
                    await recv(ws, timeout=3)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
                assert (await asyncio.to_thread(disconnect_of, cid))["code"] == 1001

        asyncio.run(scenario())
        assert server.counters["closed:idle"] == 1


def test_maximum_connection_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy connection is closed all the same when it reaches the maximum duration."""
    with GatewayServer(echo_app.app, idle_timeout=None, max_connection_duration=0.8) as server:
        monkeypatch.setenv(ENDPOINT_ENV, server.management_endpoint)

        async def scenario() -> None:
            ws, cid = await open_ws(server)
            async with ws:
                started = time.monotonic()
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await ws.send("busy")
                        assert await recv(ws, timeout=3) == "busy"
                        await asyncio.sleep(0.1)
                assert time.monotonic() - started >= 0.7
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
                assert (await asyncio.to_thread(disconnect_of, cid))["code"] == 1001

        asyncio.run(scenario())
        assert server.counters["closed:max_duration"] == 1
