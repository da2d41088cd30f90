"""Local stand-in for API Gateway: WebSocket API, ``@connections`` API, REST and static.

``chalice local`` only emulates the REST API, but this project lives on a
WebSocket API.  :class:`GatewayServer` fills the gap in one process: an aiohttp
server on its own asyncio loop (in a daemon thread) that

* accepts WebSocket clients on ``GET /ws`` and turns every connect, frame and
  disconnect into the same Lambda proxy event API Gateway would send, handing it
  to the very callable the Lambda runtime would call (``app.handler_map[...]``);
* speaks the ``@connections`` management API on the wire, so an *unmodified*
  boto3 ``apigatewaymanagementapi`` client (``endpoint_url=management_endpoint``)
  can post to, inspect and delete connections, including ``GoneException``. On AWS only
  IAM-signed callers reach it; here it has its own listener, always on 127.0.0.1 and never
  on the public port, under a per-run secret path (``management_endpoint`` includes it);
* forwards ``/api/...`` to Chalice's own :class:`chalice.local.LocalGateway`, concurrently
  (each thread sees its own ``app.current_request``: :func:`_per_thread_request_state`);
* serves static folders (the demo page, the widget) with caching disabled;
* fires ``@app.schedule`` handlers on demand or on a timer.

It refuses by default what API Gateway refuses (the quotas page, "Quotas for configuring and
running a WebSocket API in API Gateway", and "Working with binary media types for WebSocket
APIs"): a client frame over 32 KB or a message over 128 KB closes the connection with 1009, a
binary frame closes it with 1003, in both cases with no route invoked; a connection idle for
10 minutes or open for 2 hours is closed (1001); an ``@connections`` POST over 128 KB answers
413. Events carry the keys real events carry, no more (Powertools' sample events
``tests/events/apiGatewayWebSocketApi{Connect,Message,Disconnect}.json`` are the reference;
``tests/test_gateway_events.py`` compares them key for key).

Handlers are blocking (boto3, DynamoDB), so they always run in a thread pool,
never on the event loop; each ``$default`` frame is its own invocation, run
concurrently, exactly like Lambda would.  Unlike Lambda, all invocations share
one Python process, so application module state must be thread-safe.

A client must finish its request headers within ``header_timeout`` seconds of connecting (or
of its previous request), and a request body within ``body_timeout``: a client that trickles
bytes (slowloris) is cut off instead of holding a connection and a handler for ever.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import datetime as dt
import functools
import json
import logging
import os
import secrets
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

from aiohttp import WSMsgType, web
from aiohttp.http_websocket import WebSocketError, WebSocketWriter
from aiohttp.web_request import BaseRequest
from chalice.app import Chalice, ScheduledEventConfig
from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException
from multidict import CIMultiDict

__all__ = ["GatewayServer", "LocalLambdaContext"]

logger = logging.getLogger(__name__)

# API Gateway's WebSocket quotas ("Quotas for configuring and running a WebSocket API in API
# Gateway"; none can be raised): "WebSocket frame size 32 KB", "Message payload size 128 KB"
# ("If a larger message (or larger frame size) is received, the connection is closed with code
# 1009"), "Idle Connection Timeout 10 minutes", "Connection duration for WebSocket API 2 hours".

#: Largest client frame API Gateway accepts (32 KB); one byte more closes the socket with 1009.
MAX_FRAME_BYTES = 32 * 1024
#: Largest client message (fragments reassembled) and ``PostToConnection`` payload (128 KB).
MAX_MESSAGE_BYTES = 128 * 1024
#: Seconds without a client data frame before API Gateway closes the connection (10 min).
IDLE_TIMEOUT_S = 10 * 60.0
#: Seconds after which API Gateway closes any connection, busy or not (2 h).
MAX_CONNECTION_S = 2 * 60 * 60.0
#: Seconds a client has to send complete request headers (slowloris), and a request body.
HEADER_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 30.0

#: Fake but well-formed identifiers; boto3 and Powertools only care about shape.
ACCOUNT_ID = "123456789012"
API_ID = "local"

_ID_ALPHABET = string.ascii_letters + string.digits
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Close codes and the ``disconnectReason`` strings API Gateway reports for them.
_CLOSE_NORMAL = 1000
_CLOSE_GOING_AWAY = 1001
_CLOSE_NO_STATUS = 1005
_CLOSE_ABNORMAL = 1006
_CLOSE_UNSUPPORTED = 1003
_CLOSE_TOO_BIG = 1009
# AWS documents the codes of these closes, not the disconnectReason it reports with them.
_REASON_BINARY = "Binary frames are not supported"
_REASON_FRAME_TOO_BIG = "Frame size exceeds 32 KB limit"
_REASON_MESSAGE_TOO_BIG = "Message size exceeds 128 KB limit"

# Hop-by-hop headers of the upgrade request: API Gateway does not pass them to $connect
# (compare Powertools' apiGatewayWebSocketApiConnect.json with what any client sends).
_HOP_BY_HOP = frozenset({"connection", "upgrade"})

_OP_BINARY = 0x2
_OP_CLOSE = 0x8

_T = TypeVar("_T")


def _aws_id(length: int = 16) -> str:
    """Random id shaped like API Gateway's (base64-ish, ending in ``=``).

    Only letters and digits are used before the ``=`` so that ids survive URL
    paths unchanged except for the ``=`` that boto3 percent-encodes.
    """
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length - 1)) + "="


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _request_time(epoch_ms: int) -> str:
    """Format ``requestTime`` like API Gateway (CLF, always UTC, locale-proof)."""
    t = time.gmtime(epoch_ms / 1000)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
    )


def _iso8601(epoch_ms: int) -> str:
    """ISO 8601 with milliseconds and ``Z``, as botocore's timestamp parser expects."""
    moment = dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class LocalLambdaContext:
    """Just enough of the Lambda ``context`` object for Chalice and Powertools.

    Powertools' ``Logger.inject_lambda_context`` reads ``function_name``,
    ``memory_limit_in_mb``, ``invoked_function_arn`` and ``aws_request_id``;
    handlers may call :meth:`get_remaining_time_in_millis` to budget work.
    """

    def __init__(self, function_name: str, *, timeout_s: float = 30.0,
                 memory_limit_in_mb: int = 256) -> None:
        now = time.time()
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{_region()}:{ACCOUNT_ID}:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = (
            time.strftime("%Y/%m/%d", time.gmtime(now)) + "/[$LATEST]" + uuid.uuid4().hex
        )
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = now + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


class _LockedCounter(collections.Counter[str]):
    """A Counter whose increments and copies share one lock.

    Handler threads and the loop update it while tests read it; ``copy()``
    iterating during an insert would otherwise raise.
    """

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__()
        self.lock = lock

    def copy(self) -> collections.Counter[str]:  # type: ignore[override]
        with self.lock:
            return collections.Counter(self)


class _PerThread:
    """A data descriptor keeping one value per thread (see ``_per_thread_request_state``)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return self if obj is None else getattr(self._local, "value", None)

    def __set__(self, obj: object, value: Any) -> None:
        self._local.value = value


def _per_thread_request_state(app: Chalice) -> None:
    """Give ``app`` a per-thread ``current_request`` and ``lambda_context``.

    Chalice stores the request being handled on the app object itself: on Lambda a container
    runs one request at a time, but the stand-in runs REST calls concurrently in threads, where
    one call would read another's request. A subclass made for this one app (so no other
    Chalice app changes) turns both attributes into per-thread values; the app's code is
    unchanged and still reads ``app.current_request``.
    """
    cls = type(app)
    if isinstance(cls.__dict__.get("current_request"), _PerThread):
        return
    app.__class__ = type(f"PerThread{cls.__name__}", (cls,), {
        "current_request": _PerThread(), "lambda_context": _PerThread()})
    for name in ("current_request", "lambda_context"):
        app.__dict__.pop(name, None)


class _NoRoute(Exception):
    """The app has no handler for a route key API Gateway would have to reject."""


def _header_size(header: bytes | bytearray) -> int:
    """Bytes in a WebSocket frame header, as far as its first two bytes tell (RFC 6455 5.2)."""
    if len(header) < 2:
        return 2
    length = header[1] & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    return 2 + extended + (4 if header[1] & 0x80 else 0)


class _FrameRules:
    """API Gateway's rules for client frames, applied to the raw bytes before aiohttp parses them.

    aiohttp's ``max_msg_size`` only bounds a whole message, and its reader never tells how a
    message was fragmented; API Gateway bounds every *frame* (32 KB) as well as the message
    (128 KB) and refuses binary frames. So this sits between the connection and aiohttp's
    ``WebSocketReader``: it follows the frame headers in the byte stream (skipping payloads, so
    it costs a few operations per frame) and forwards the bytes unchanged. At the first frame
    API Gateway would refuse, it forwards the frames before it (they are dispatched, as on
    AWS), drops the rest, and fails aiohttp's message queue with the close code: the reader
    loop gets ``WSMsgType.ERROR`` and aiohttp closes the socket with that code, the way it
    does for its own protocol errors. Control frames and protocol errors are left to aiohttp.
    """

    def __init__(self, reader: Any, queue: Any, refuse: Callable[[int, str], None]) -> None:
        self._reader = reader  # aiohttp's WebSocketReader: feed_data / feed_eof
        self._queue = queue  # aiohttp's WebSocketDataQueue: set_exception
        self._refuse = refuse
        self._header = bytearray()  # a frame header split across reads
        self._frame_start = 0  # where the header being read began in this read
        self._skip = 0  # payload bytes of the current frame still to pass
        self._message = 0  # payload bytes of the data message in progress
        self._refused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self._refused:
            return True, b""
        verdict = self._scan(data)
        if verdict is None:
            result: tuple[bool, bytes] = self._reader.feed_data(data)
            return result
        code, reason = verdict
        self._refused = True
        if self._frame_start > 0:
            eof, _ = self._reader.feed_data(data[:self._frame_start])
            if eof:  # aiohttp found a protocol error first: its verdict stands
                return True, b""
        self._refuse(code, reason)
        self._queue.set_exception(WebSocketError(code, reason))
        return True, b""

    def feed_eof(self) -> None:
        self._reader.feed_eof()

    def _scan(self, data: bytes) -> tuple[int, str] | None:
        """Follow frame headers through ``data``; the first refused frame's (code, reason)."""
        pos, end = 0, len(data)
        self._frame_start = 0
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            if not self._header:
                self._frame_start = pos
            take = min(_header_size(self._header) - len(self._header), end - pos)
            self._header += data[pos:pos + take]
            pos += take
            if len(self._header) < _header_size(self._header):
                continue  # incomplete, or it just said it is longer
            verdict = self._check(self._header)
            self._header.clear()
            if verdict is not None:
                return verdict
        return None

    def _check(self, header: bytearray) -> tuple[int, str] | None:
        fin, opcode, length = header[0] & 0x80, header[0] & 0x0F, header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4])
        elif length == 127:
            length = int.from_bytes(header[2:10])
        self._skip = length
        if opcode >= _OP_CLOSE:
            return None  # close / ping / pong (interleaving is allowed)
        if opcode == _OP_BINARY:
            return _CLOSE_UNSUPPORTED, _REASON_BINARY
        if length > MAX_FRAME_BYTES:
            return _CLOSE_TOO_BIG, _REASON_FRAME_TOO_BIG
        self._message += length
        if self._message > MAX_MESSAGE_BYTES:
            return _CLOSE_TOO_BIG, _REASON_MESSAGE_TOO_BIG
        if fin:
            self._message = 0
        return None


class _GatewayWebSocket(web.WebSocketResponse):
    """aiohttp's server socket with :class:`_FrameRules` in front of its reader.

    The rules go in where aiohttp installs its reader (``_post_start``), synchronously, so no
    byte can reach the reader around them; bytes that arrived with the upgrade request are
    held back and sent through the rules too.
    """

    def __init__(self, refuse: Callable[[int, str], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._refuse = refuse

    def _post_start(self, request: BaseRequest, protocol: str | None,
                    writer: WebSocketWriter) -> None:
        handler = request.protocol
        early, handler._message_tail = handler._message_tail, b""
        super()._post_start(request, protocol, writer)
        rules = _FrameRules(handler._payload_parser, self._reader, self._refuse)
        handler._payload_parser = rules
        if early and rules.feed_data(early)[0]:
            handler.close()


@dataclass(eq=False)
class _Connection:
    """Book-keeping for one accepted WebSocket (loop thread only)."""

    connection_id: str
    source_ip: str
    user_agent: str | None  # None when the client sent no User-Agent
    connected_at: int  # epoch ms
    last_active_at: int  # epoch ms, updated on every inbound data frame
    ws: web.WebSocketResponse | None = None
    transport: asyncio.Transport | None = None
    #: Close code/reason decided by the server (DELETE, idle timeout, stop)
    #: so the reader loop reports it instead of a generic one.
    server_close: tuple[int, str] | None = None
    #: Set exactly once; holds the ``$disconnect`` invocation (or a completed
    #: future for :meth:`GatewayServer.drop`). Its existence means "unregistered".
    finished: asyncio.Future[None] | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)


class GatewayServer:
    """In-process API Gateway stand-in for a Chalice app (see module docstring).

    Counters (``self.counters``), incremented under a lock so handler threads
    and the loop can both update them:

    ``invoke:<routeKey>`` / ``invoke:schedule``
        handler invocations (``$connect``, ``$default``, ``$disconnect``).
    ``invoke_error:<routeKey>``
        invocations that raised.
    ``frames_in``
        data messages received from clients and handed to ``$default``.
    ``refused:binary`` / ``refused:frame_too_big`` / ``refused:message_too_big``
        connections closed (1003 / 1009 / 1009) for a frame API Gateway refuses.
    ``closed:idle`` / ``closed:max_duration``
        connections closed (1001) by the idle timeout / the maximum connection duration.
    ``post`` / ``post:gone`` / ``post:too_large``
        ``@connections`` POSTs delivered / answered 410 / answered 413.
    ``get`` / ``delete`` (and ``get:gone`` / ``delete:gone``)
        management GETs and DELETEs.
    ``rest``
        requests forwarded to Chalice's LocalGateway.
    """

    def __init__(
        self,
        app: Chalice,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        static_dirs: Mapping[str, Path] | None = None,
        schedule_interval: float | None = None,
        max_workers: int = 64,
        idle_timeout: float | None = IDLE_TIMEOUT_S,
        max_connection_duration: float | None = MAX_CONNECTION_S,
        lambda_timeout: float = 30.0,
        header_timeout: float = HEADER_TIMEOUT_S,
        body_timeout: float = BODY_TIMEOUT_S,
    ) -> None:
        """Configure, but do not start, the server.

        ``idle_timeout`` / ``max_connection_duration`` (seconds) are API Gateway's
        10 minute idle and 2 hour hard limits, on by default as on AWS (tests may
        shorten them; ``None`` or 0 turns one off, for a debugging session).
        ``lambda_timeout`` only feeds ``context.get_remaining_time_in_millis()``;
        nothing is killed. ``header_timeout`` / ``body_timeout``: see the module docstring.
        """
        self.app = app
        self.host = host
        self.port = port
        self.stage = stage
        self.static_dirs = {
            prefix if prefix.endswith("/") else prefix + "/": Path(folder).resolve()
            for prefix, folder in (static_dirs or {}).items()
        }
        self.schedule_interval = schedule_interval
        self.max_workers = max_workers
        self.idle_timeout = idle_timeout
        self.max_connection_duration = max_connection_duration
        self.lambda_timeout = lambda_timeout
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        #: Per-run secret path of the management API (on its own loopback-only listener).
        self.management_key = secrets.token_urlsafe(24)
        self.management_port = 0
        self._counter_lock = threading.Lock()
        self.counters: collections.Counter[str] = _LockedCounter(self._counter_lock)
        self._connections: dict[str, _Connection] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._runner: web.AppRunner | None = None
        #: Disconnects and server-side closes: awaited on stop().
        self._background: set[asyncio.Task[Any]] = set()
        #: Timers (schedules, idle sweeper): cancelled on stop().
        self._service_tasks: set[asyncio.Task[Any]] = set()
        self._rest_gateway: LocalGateway | None = None
        self._management_runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ public

    @property
    def ws_url(self) -> str:
        return f"ws://{self._client_host}:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://{self._client_host}:{self.port}"

    @property
    def management_endpoint(self) -> str:
        """Value for ``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI`` / boto3 ``endpoint_url``:
        the loopback-only listener and the per-run secret path."""
        return f"http://127.0.0.1:{self.management_port}/{self.management_key}"

    def start(self) -> None:
        """Bind, start the loop thread, and return once the socket is listening.

        The socket is bound here (not inside aiohttp) so that ``port=0`` yields
        the real port before any client needs it, and bind errors surface in
        the caller's thread.
        """
        if self._thread is not None:
            raise RuntimeError("GatewayServer already started")
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]

        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix="lambda"
        )
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._startup(sock))
            except BaseException as exc:  # re-raised in start()'s caller
                failure.append(exc)
                self._loop.close()
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=f"gateway:{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            self._executor.shutdown(wait=False)
            self._executor = None
            sock.close()
            raise failure[0]

    def stop(self) -> None:
        """Close every websocket (running ``$disconnect`` for each) and stop the loop."""
        if self._thread is None or self._loop is None:
            return
        try:
            self._call_in_loop(self._shutdown(), timeout=30)
        finally:
            # Drain the pool while the loop still runs: finishing invocations
            # report back through it.
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def drop(self, connection_id: str) -> None:
        """Kill a connection's TCP socket without ``$disconnect`` (test hook).

        Simulates a client that vanished without API Gateway noticing in
        time: the app still believes it is connected and later posts to it
        get 410 Gone.  Raises ``KeyError`` if the id is not registered.
        """
        self._call_in_loop(self._drop(connection_id), timeout=10)

    def run_schedules(self) -> None:
        """Invoke every ``@app.schedule`` handler once, synchronously, in this thread.

        All handlers run even if one fails; the first failure is re-raised so
        tests notice it.
        """
        errors: list[Exception] = []
        for config in self._scheduled_configs():
            handler = self.app.handler_map[config.name]
            event = self._scheduled_event(config)
            self._count("invoke:schedule")
            try:
                handler(event, self._context(config.name))
            except Exception as exc:
                self._count("invoke_error:schedule")
                logger.exception("schedule handler %s failed", config.name)
                errors.append(exc)
        if errors:
            raise errors[0]

    def connection_ids(self) -> list[str]:
        """Ids of currently registered connections (for tests and tooling).

        Read on the loop thread, which owns the registry, to get a consistent
        snapshot; call it from any other thread.
        """

        async def snapshot() -> list[str]:
            return list(self._connections)

        return self._call_in_loop(snapshot(), timeout=10)

    # --------------------------------------------------------------- plumbing

    @property
    def _client_host(self) -> str:
        """Host clients should dial: a wildcard bind address is not dialable."""
        if self.host in ("0.0.0.0", ""):
            return "127.0.0.1"
        if self.host == "::":
            return "[::1]"
        return f"[{self.host}]" if ":" in self.host else self.host

    def _count(self, key: str, n: int = 1) -> None:
        # Also safe if a caller swapped in a plain Counter (e.g. to reset it).
        with self._counter_lock:
            self.counters[key] += n

    def _call_in_loop(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        """Run ``coro`` on the gateway loop from another thread and wait for it."""
        if self._loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("GatewayServer is not running")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("cannot block the gateway loop from inside itself")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _spawn(self, coro: Coroutine[Any, Any, Any],
               owner: set[asyncio.Task[Any]] | None = None) -> asyncio.Task[Any]:
        """Create a task and keep a strong reference until it finishes."""
        assert self._loop is not None
        task = self._loop.create_task(coro)
        bucket = self._background if owner is None else owner
        bucket.add(task)
        task.add_done_callback(bucket.discard)
        return task

    async def _startup(self, sock: socket.socket) -> None:
        web_app = web.Application(client_max_size=16 * 1024 * 1024)
        router = web_app.router
        router.add_get("/ws", self._handle_ws)
        router.add_route("*", "/api", self._handle_rest)
        router.add_route("*", "/api/{tail:.*}", self._handle_rest)
        router.add_route("*", "/{tail:.*}", self._handle_static)

        # The management API: its own app on its own listener, 127.0.0.1 only, whatever host
        # the public one binds, and only under the per-run key (an unknown path answers 404).
        # boto3 sends the endpoint_url's path too, so accept any stage prefix after the key.
        management = web.Application(client_max_size=16 * 1024 * 1024)
        for prefix in ("", "/{stage}"):
            path = f"/{self.management_key}{prefix}/@connections/{{connection_id}}"
            management.router.add_post(path, self._mgmt_post)
            management.router.add_get(path, self._mgmt_get, allow_head=False)
            management.router.add_delete(path, self._mgmt_delete)

        _per_thread_request_state(self.app)
        self._rest_gateway = self._make_rest_gateway()
        # aiohttp's keep-alive timer also runs from the moment a connection opens and closes
        # it if no complete request has arrived by then: a header read timeout.
        self._runner = web.AppRunner(web_app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.header_timeout)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self._management_runner = web.AppRunner(management, access_log=None, handle_signals=False,
                                                keepalive_timeout=self.header_timeout)
        await self._management_runner.setup()
        # A restart (stop, start) keeps the port, as the public listener does: the app's
        # endpoint setting still points at it.
        site = web.TCPSite(self._management_runner, "127.0.0.1", self.management_port)
        await site.start()
        server = getattr(site, "_server", None)
        assert server is not None and server.sockets
        self.management_port = server.sockets[0].getsockname()[1]
        if self.schedule_interval:
            self._spawn(self._schedule_timer(self.schedule_interval), self._service_tasks)
        if self.idle_timeout or self.max_connection_duration:
            self._spawn(self._sweep_expired(), self._service_tasks)

    async def _shutdown(self) -> None:
        for task in list(self._service_tasks):
            task.cancel()
        conns = list(self._connections.values())
        await asyncio.gather(
            *(self._server_close(c, _CLOSE_GOING_AWAY, "Going away") for c in conns),
            return_exceptions=True,
        )
        # Let in-flight $default / $disconnect invocations settle before the
        # loop goes away (they may still post to other connections).
        pending = [t for c in conns for t in c.tasks] + list(self._background)
        if pending:
            await asyncio.wait(pending, timeout=10)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._management_runner is not None:
            await self._management_runner.cleanup()

    async def _invoke(self, route_key: str, event: dict[str, Any]) -> Any:
        """Run the route's Lambda entry point in the thread pool."""
        assert self._loop is not None and self._executor is not None
        return await self._loop.run_in_executor(
            self._executor, functools.partial(self._invoke_sync, route_key, event)
        )

    def _invoke_sync(self, route_key: str, event: dict[str, Any]) -> Any:
        """Find and call the handler the Lambda runtime would call (worker thread).

        ``app.websocket_handlers[route_key]`` is only the *config* Chalice uses
        for deployment; the callable the runtime invokes (``app.<function>``,
        a ``WebsocketEventSourceHandler`` with middleware) is registered in
        ``app.handler_map`` under the config's name.
        """
        config = self.app.websocket_handlers.get(route_key)
        if config is None:
            if route_key == "$default":
                raise _NoRoute(route_key)
            return None  # API Gateway accepts/ignores when these routes are absent
        handler = self.app.handler_map[config.name]
        self._count(f"invoke:{route_key}")
        try:
            return handler(event, self._context(config.name))
        except Exception:
            self._count(f"invoke_error:{route_key}")
            raise

    def _context(self, handler_name: str) -> LocalLambdaContext:
        # Chalice names deployed functions "<app>-<stage>-<handler>".
        return LocalLambdaContext(
            f"{self.app.app_name}-{self.stage}-{handler_name}", timeout_s=self.lambda_timeout
        )

    # -------------------------------------------------------------- websocket

    def _request_context(self, conn: _Connection, route_key: str, event_type: str,
                         now: int) -> dict[str, Any]:
        """``requestContext`` with the keys AWS sends, in its order (Powertools' samples)."""
        request_id = _aws_id()  # "$context.requestId: Same as $context.extendedRequestId"
        identity = {"sourceIp": conn.source_ip}
        if conn.user_agent is not None:
            # $context.identity.userAgent is documented for WebSocket APIs (mapping template
            # reference); the samples' client sent no User-Agent, hence none there.
            identity["userAgent"] = conn.user_agent
        return {
            "routeKey": route_key,
            "eventType": event_type,
            "extendedRequestId": request_id,
            "requestTime": _request_time(now),
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": conn.connected_at,
            "requestTimeEpoch": now,
            "identity": identity,
            "requestId": request_id,
            "domainName": self._domain_name,
            "connectionId": conn.connection_id,
            "apiId": API_ID,
        }

    @property
    def _domain_name(self) -> str:
        # On AWS, "<apiId>.execute-api.<region>.amazonaws.com": the host clients dial, and the
        # one apps build the @connections endpoint from. Here that needs the port.
        return f"{self._client_host}:{self.port}"

    def _connect_event(self, conn: _Connection, request: web.Request) -> dict[str, Any]:
        """The ``$connect`` event: what the client sent, without hop-by-hop headers, plus what
        API Gateway adds (trace id, X-Forwarded-*)."""
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
        put("X-Forwarded-Port", str(self.port))
        put("X-Forwarded-Proto", "http")  # "https" on AWS: the stand-in has no TLS
        multi_headers = dict(sorted(multi_headers.items(), key=lambda item: item[0].lower()))
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

    def _message_event(self, conn: _Connection, body: str) -> dict[str, Any]:
        context = self._request_context(conn, "$default", "MESSAGE", _now_ms())
        context = {"routeKey": context.pop("routeKey"), "messageId": _aws_id(), **context}
        # Binary frames never get here (closed with 1003), so the body is always text.
        return {"requestContext": context, "body": body, "isBase64Encoded": False}

    def _disconnect_event(self, conn: _Connection, code: int, reason: str) -> dict[str, Any]:
        context = self._request_context(conn, "$disconnect", "DISCONNECT", _now_ms())
        context["disconnectStatusCode"] = code
        context["disconnectReason"] = reason
        # Exactly the headers AWS sends on $disconnect (apiGatewayWebSocketApiDisconnect.json).
        headers = {"Host": self._domain_name, "x-api-key": "", "X-Forwarded-For": "",
                   "x-restapi": ""}
        return {
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": context,
            "isBase64Encoded": False,
        }

    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        """Run ``$connect`` *before* upgrading, then pump frames until close."""
        probe = web.WebSocketResponse()
        if not probe.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)

        now = _now_ms()
        conn = _Connection(
            connection_id=_aws_id(),
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
            connected_at=now,
            last_active_at=now,
        )
        try:
            result = await self._invoke("$connect", self._connect_event(conn, request))
        except Exception:
            logger.exception("$connect handler failed for %s", conn.connection_id)
            return web.json_response({"message": "Internal server error"}, status=500)

        result = result if isinstance(result, dict) else {}
        try:
            status = int(result.get("statusCode", 200))
        except (TypeError, ValueError):
            status = 502
        if not 200 <= status < 300:
            body = result.get("body")
            return web.Response(
                status=status,
                text=body if isinstance(body, str) else json.dumps({"message": "Forbidden"}),
                content_type="application/json",
            )

        # As on AWS, a subprotocol is only agreed if $connect echoes it back.
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        protocol = headers.get("sec-websocket-protocol")
        ws = _GatewayWebSocket(
            functools.partial(self._refuse, conn),
            # _FrameRules enforces the limits first; this is aiohttp's own backstop (it
            # refuses messages of *exactly* max_msg_size; AWS accepts 128 KB).
            max_msg_size=MAX_MESSAGE_BYTES + 1,
            compress=False,  # API Gateway does not negotiate permessage-deflate
            autoping=True,
            protocols=(protocol,) if protocol else (),
        )
        conn.ws = ws
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            logger.info("client %s left during the handshake", conn.connection_id)
            await asyncio.shield(self._finish(conn, _CLOSE_ABNORMAL, "Going away"))
            return ws
        conn.transport = request.transport
        self._connections[conn.connection_id] = conn

        code, reason = _CLOSE_ABNORMAL, "Going away"
        try:
            code, reason = await self._read_frames(conn, ws)
        finally:
            await asyncio.shield(self._finish(conn, code, reason))
        return ws

    async def _read_frames(self, conn: _Connection,
                           ws: web.WebSocketResponse) -> tuple[int, str]:
        """Dispatch data frames until the socket closes; return (code, reason)."""
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                self._on_frame(conn, msg.data)
            elif msg.type is WSMsgType.CLOSE:
                if conn.server_close:
                    return conn.server_close
                code = int(msg.data or _CLOSE_NO_STATUS)
                if code == _CLOSE_NO_STATUS:
                    return code, "Client-side close frame status not set"
                return code, f"Client-side close frame status set to {code}"
            elif msg.type is WSMsgType.ERROR:
                if conn.server_close:  # refused by _FrameRules, or closed by us
                    return conn.server_close
                # aiohttp's own protocol errors carry their code; ws.close_code would only
                # say 1006 by now.
                code = int(getattr(msg.data, "code", None) or _CLOSE_ABNORMAL)
                if code == _CLOSE_TOO_BIG:
                    return code, _REASON_MESSAGE_TOO_BIG
                return code, "Going away"
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                if conn.server_close:
                    return conn.server_close
                return _CLOSE_ABNORMAL, "Going away"

    def _on_frame(self, conn: _Connection, body: str) -> None:
        conn.last_active_at = _now_ms()
        self._count("frames_in")
        self._spawn(self._dispatch_message(conn, body), owner=conn.tasks)

    def _refuse(self, conn: _Connection, code: int, reason: str) -> None:
        """A frame API Gateway refuses (called by _FrameRules, on the loop): record why, so
        the reader loop reports it to ``$disconnect``; aiohttp sends the close frame."""
        kind = {_REASON_BINARY: "binary", _REASON_FRAME_TOO_BIG: "frame_too_big"}.get(
            reason, "message_too_big")
        self._count(f"refused:{kind}")
        logger.info("closing %s with %d: %s", conn.connection_id, code, reason)
        if conn.server_close is None:
            conn.server_close = (code, reason)

    async def _dispatch_message(self, conn: _Connection, body: str) -> None:
        event = self._message_event(conn, body)
        try:
            await self._invoke("$default", event)
        except _NoRoute:
            await self._send_error(conn, "Forbidden", event)
        except Exception:
            logger.exception("$default handler failed for %s", conn.connection_id)
            await self._send_error(conn, "Internal server error", event)

    async def _send_error(self, conn: _Connection, message: str, event: dict[str, Any]) -> None:
        """Tell the client its frame failed, with API Gateway's error shape."""
        payload = json.dumps({
            "message": message,
            "connectionId": conn.connection_id,
            "requestId": event["requestContext"]["requestId"],
        })
        with contextlib.suppress(Exception):
            await self._send(conn, payload.encode())

    async def _send(self, conn: _Connection, data: bytes) -> bool:
        """Send one frame; False if the socket is already going away."""
        ws = conn.ws
        if ws is None or ws.closed or conn.finished is not None:
            return False
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            send: Callable[[], Coroutine[Any, Any, None]] = functools.partial(ws.send_bytes, data)
        else:
            send = functools.partial(ws.send_str, text)
        try:
            await send()
        except (ConnectionError, RuntimeError):
            return False
        return True

    def _finish(self, conn: _Connection, code: int, reason: str) -> asyncio.Future[None]:
        """Unregister ``conn`` and run ``$disconnect`` for it, exactly once."""
        if conn.finished is None:
            if self._connections.get(conn.connection_id) is conn:
                del self._connections[conn.connection_id]
            conn.finished = self._spawn(self._run_disconnect(conn, code, reason))
        return conn.finished

    async def _run_disconnect(self, conn: _Connection, code: int, reason: str) -> None:
        try:
            await self._invoke("$disconnect", self._disconnect_event(conn, code, reason))
        except Exception:
            logger.exception("$disconnect handler failed for %s", conn.connection_id)

    async def _server_close(self, conn: _Connection, code: int, reason: str) -> None:
        """Close from our side (DELETE, timeouts, stop) and wait for ``$disconnect``."""
        conn.server_close = (code, reason)
        finished = self._finish(conn, code, reason)
        if conn.ws is not None:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code, message=reason.encode())
        await finished

    async def _drop(self, connection_id: str) -> None:
        conn = self._connections.pop(connection_id, None)
        if conn is None:
            raise KeyError(connection_id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        conn.finished = done  # marks it finished: $disconnect never runs
        if conn.transport is not None:
            conn.transport.abort()

    async def _sweep_expired(self) -> None:
        """Enforce the optional idle / maximum-duration limits."""
        limits = [t for t in (self.idle_timeout, self.max_connection_duration) if t]
        period = max(0.05, min(1.0, min(limits) / 4))
        while True:
            await asyncio.sleep(period)
            now = _now_ms()
            for conn in list(self._connections.values()):
                idle = (now - conn.last_active_at) / 1000
                age = (now - conn.connected_at) / 1000
                too_idle = bool(self.idle_timeout) and idle >= (self.idle_timeout or 0)
                too_old = bool(self.max_connection_duration) and age >= (
                    self.max_connection_duration or 0
                )
                if (too_idle or too_old) and conn.server_close is None:
                    self._count("closed:max_duration" if too_old else "closed:idle")
                    conn.server_close = (_CLOSE_GOING_AWAY, "Going away")
                    self._spawn(self._server_close(conn, _CLOSE_GOING_AWAY, "Going away"))

    # ---------------------------------------------------------- @connections

    @staticmethod
    def _gone(connection_id: str) -> web.Response:
        return web.json_response(
            {"message": f"Connection {connection_id} is gone"},
            status=410,
            headers={"x-amzn-ErrorType": "GoneException", "x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _live(self, request: web.Request) -> tuple[str, _Connection | None]:
        # aiohttp's match_info is already percent-decoded ("%3D" -> "=").
        connection_id = request.match_info["connection_id"]
        conn = self._connections.get(connection_id)
        if conn is not None and (conn.ws is None or conn.ws.closed):
            conn = None
        return connection_id, conn

    async def _mgmt_post(self, request: web.Request) -> web.Response:
        data = await self._read_body(request)
        connection_id, conn = self._live(request)
        if len(data) > MAX_MESSAGE_BYTES:
            self._count("post:too_large")
            return web.json_response(
                {"message": "Message too long"},
                status=413,
                headers={"x-amzn-ErrorType": "PayloadTooLargeException"},
            )
        if conn is None:
            self._count("post:gone")
            return self._gone(connection_id)
        # Counted before the frame goes out: its recipient (another thread) may read it, and a
        # test then read the counter, before this coroutine resumes after the send.
        self._count("post")
        if not await self._send(conn, data):
            self._count("post", -1)
            self._count("post:gone")
            return self._gone(connection_id)
        return web.Response(status=200, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def _mgmt_get(self, request: web.Request) -> web.Response:
        connection_id, conn = self._live(request)
        if conn is None:
            self._count("get:gone")
            return self._gone(connection_id)
        self._count("get")
        # The wire names are camelCase (the service model's locationName);
        # boto3 presents them as ConnectedAt / Identity.SourceIp / LastActiveAt.
        identity = {"sourceIp": conn.source_ip}
        if conn.user_agent is not None:
            identity["userAgent"] = conn.user_agent
        return web.json_response({
            "connectedAt": _iso8601(conn.connected_at),
            "identity": identity,
            "lastActiveAt": _iso8601(conn.last_active_at),
        })

    async def _mgmt_delete(self, request: web.Request) -> web.Response:
        connection_id, conn = self._live(request)
        if conn is None:
            self._count("delete:gone")
            return self._gone(connection_id)
        self._count("delete")
        # Like AWS: answer at once; the close handshake and $disconnect follow
        # asynchronously (awaiting them could deadlock a saturated pool).
        self._spawn(self._server_close(conn, _CLOSE_NORMAL, "Connection Closed Normally"))
        return web.Response(status=204)

    # ------------------------------------------------------------------- REST

    def _make_rest_gateway(self) -> LocalGateway | None:
        if not self.app.routes:
            return None
        config = Config(
            chalice_stage=self.stage,
            function_name="api_handler",
            user_provided_params={
                "app_name": self.app.app_name,
                "lambda_memory_size": 256,
                "lambda_timeout": int(self.lambda_timeout),
            },
        )
        return LocalGateway(self.app, config)

    async def _handle_rest(self, request: web.Request) -> web.Response:
        """Forward ``/api/...`` to Chalice's LocalGateway (REST stage is ``api`` on AWS)."""
        gateway = self._rest_gateway
        if gateway is None:
            return web.json_response({"message": "Not Found"}, status=404)
        path = request.raw_path[len("/api"):]
        if not path.startswith("/"):
            path = "/" + path
        body = await self._read_body(request) or None
        headers = dict(request.headers)
        assert self._loop is not None and self._executor is not None
        self._count("rest")
        # Concurrent, like Lambda containers: each worker thread has its own
        # app.current_request (_per_thread_request_state).
        try:
            response = await self._loop.run_in_executor(
                self._executor,
                functools.partial(gateway.handle_request, request.method, path, headers, body),
            )
        except LocalGatewayException as exc:
            return web.Response(status=exc.CODE, headers=exc.headers, body=exc.body)
        out_headers: CIMultiDict[str] = CIMultiDict()
        for name, value in (response.get("headers") or {}).items():
            out_headers[name] = str(value)
        for name, values in (response.get("multiValueHeaders") or {}).items():
            out_headers.popall(name, None)
            for value in values:
                out_headers.add(name, str(value))
        out_headers.setdefault("Content-Type", "application/json")
        for hop in ("Content-Length", "Transfer-Encoding", "Connection"):
            out_headers.popall(hop, None)
        raw = response.get("body")
        if raw is None:
            payload = b""
        elif response.get("isBase64Encoded"):
            payload = base64.b64decode(raw)
        else:
            payload = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        return web.Response(status=int(response["statusCode"]), headers=out_headers, body=payload)

    async def _read_body(self, request: web.Request) -> bytes:
        """The request body, or 408 if it trickles in slower than ``body_timeout`` allows."""
        try:
            return await asyncio.wait_for(request.read(), self.body_timeout)
        except TimeoutError:
            raise web.HTTPRequestTimeout() from None

    # ----------------------------------------------------------------- static

    async def _handle_static(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.json_response({"message": "Not Found"}, status=404)
        target = self._static_target(request.path)
        if target is None:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.FileResponse(target, headers={"Cache-Control": "no-store"})

    def _static_target(self, url_path: str) -> Path | None:
        """Map a (decoded) URL path to a file, longest prefix first; None if none.

        Traversal is refused twice: ``..`` segments are rejected outright and
        the resolved file must still lie inside the folder.
        """
        candidates = (url_path, url_path + "/")  # "/widget" also matches "/widget/"
        for prefix in sorted(self.static_dirs, key=len, reverse=True):
            match = next((c for c in candidates if c.startswith(prefix)), None)
            if match is None:
                continue
            root = self.static_dirs[prefix]
            rest = match[len(prefix):]
            parts = [p for p in rest.split("/") if p]
            if any(p in (".", "..") or "\\" in p or "\x00" in p for p in parts):
                return None
            target = root.joinpath(*parts).resolve()
            if not target.is_relative_to(root):
                return None
            if target.is_dir():
                target = target / "index.html"
            return target if target.is_file() else None
        return None

    # -------------------------------------------------------------- schedules

    def _scheduled_configs(self) -> list[ScheduledEventConfig]:
        return [s for s in self.app.event_sources if isinstance(s, ScheduledEventConfig)]

    def _scheduled_event(self, config: ScheduledEventConfig) -> dict[str, Any]:
        """A CloudWatch/EventBridge "Scheduled Event" as Lambda receives it."""
        rule = f"{self.app.app_name}-{self.stage}-{config.name}-event"
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": _region(),
            "resources": [f"arn:aws:events:{_region()}:{ACCOUNT_ID}:rule/{rule}"],
            "detail": {},
        }

    async def _schedule_timer(self, interval: float) -> None:
        assert self._loop is not None and self._executor is not None
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # already logged by run_schedules
                await self._loop.run_in_executor(self._executor, self.run_schedules)
