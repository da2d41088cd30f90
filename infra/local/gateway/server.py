"""The gateway itself: one aiohttp server on its own asyncio loop (in a daemon thread) that
composes the parts, each with one job (see the package docstring), and the public API the
stack, the tests and the bench use.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import secrets
import socket
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

from aiohttp import web
from chalice.app import Chalice

from infra.local.gateway.events import WebSocketEvents
from infra.local.gateway.limits import (
    BODY_TIMEOUT_S,
    HEADER_TIMEOUT_S,
    IDLE_TIMEOUT_S,
    MAX_CONNECTION_S,
)
from infra.local.gateway.management import ManagementApi
from infra.local.gateway.rest import RestProxy
from infra.local.gateway.runtime import Runtime, per_thread_request_state
from infra.local.gateway.schedules import Schedules
from infra.local.gateway.static import StaticFiles
from infra.local.gateway.websocket import WebSocketServer

_T = TypeVar("_T")


class GatewayServer:
    """In-process API Gateway stand-in for a Chalice app (see the package docstring).

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
        nothing is killed. ``header_timeout`` / ``body_timeout``: see the package docstring.
        """
        self.host = host
        self.port = port
        self.schedule_interval = schedule_interval
        self.max_workers = max_workers
        self.header_timeout = header_timeout
        #: Per-run secret path of the management API (on its own loopback-only listener).
        self.management_key = secrets.token_urlsafe(24)
        self.management_port = 0
        self._runtime = Runtime(app, stage=stage, lambda_timeout=lambda_timeout)
        self._websockets = WebSocketServer(
            self._runtime, WebSocketEvents(self._runtime, lambda: (self._client_host, self.port)),
            idle_timeout=idle_timeout, max_connection_duration=max_connection_duration)
        self._management = ManagementApi(self._runtime, self._websockets, body_timeout=body_timeout)
        self._rest = RestProxy(self._runtime, body_timeout=body_timeout)
        self._static = StaticFiles(static_dirs)
        self._schedules = Schedules(self._runtime)
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._management_runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ public

    # Settings the parts read when they need them: a test may change one on a running server
    # (monkeypatch), as it could when they were plain attributes.

    @property
    def app(self) -> Chalice:
        return self._runtime.app

    @app.setter
    def app(self, value: Chalice) -> None:
        self._runtime.app = value

    @property
    def stage(self) -> str:
        return self._runtime.stage

    @stage.setter
    def stage(self, value: str) -> None:
        self._runtime.stage = value

    @property
    def lambda_timeout(self) -> float:
        return self._runtime.lambda_timeout

    @lambda_timeout.setter
    def lambda_timeout(self, value: float) -> None:
        self._runtime.lambda_timeout = value

    @property
    def idle_timeout(self) -> float | None:
        return self._websockets.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float | None) -> None:
        self._websockets.idle_timeout = value

    @property
    def max_connection_duration(self) -> float | None:
        return self._websockets.max_connection_duration

    @max_connection_duration.setter
    def max_connection_duration(self, value: float | None) -> None:
        self._websockets.max_connection_duration = value

    @property
    def body_timeout(self) -> float:
        return self._rest.body_timeout

    @body_timeout.setter
    def body_timeout(self, value: float) -> None:
        self._rest.body_timeout = self._management.body_timeout = value

    @property
    def static_dirs(self) -> dict[str, Path]:
        return self._static.dirs

    @static_dirs.setter
    def static_dirs(self, value: dict[str, Path]) -> None:
        self._static.dirs = value

    @property
    def counters(self) -> collections.Counter[str]:
        return self._runtime.counters

    @counters.setter
    def counters(self, value: collections.Counter[str]) -> None:
        self._runtime.counters = value

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

        runtime = self._runtime
        runtime.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.max_workers, thread_name_prefix="lambda"
        )
        loop = runtime.loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._startup(sock))
            except BaseException as exc:  # re-raised in start()'s caller
                failure.append(exc)
                loop.close()
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"gateway:{self.port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            runtime.executor.shutdown(wait=False)
            runtime.executor = None
            sock.close()
            raise failure[0]

    def stop(self) -> None:
        """Close every websocket (running ``$disconnect`` for each) and stop the loop."""
        loop = self._runtime.loop
        if self._thread is None or loop is None:
            return
        try:
            self._call_in_loop(self._shutdown(), timeout=30)
        finally:
            # Drain the pool while the loop still runs: finishing invocations
            # report back through it.
            if self._runtime.executor is not None:
                self._runtime.executor.shutdown(wait=True, cancel_futures=True)
                self._runtime.executor = None
            loop.call_soon_threadsafe(loop.stop)
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
        self._call_in_loop(self._websockets.drop(connection_id), timeout=10)

    def run_schedules(self) -> None:
        """Invoke every ``@app.schedule`` handler once, synchronously, in this thread.

        All handlers run even if one fails; the first failure is re-raised so
        tests notice it.
        """
        self._schedules.run_all()

    def connection_ids(self) -> list[str]:
        """Ids of currently registered connections (for tests and tooling).

        Read on the loop thread, which owns the registry, to get a consistent
        snapshot; call it from any other thread.
        """

        async def snapshot() -> list[str]:
            return list(self._websockets.connections)

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

    def _call_in_loop(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        """Run ``coro`` on the gateway loop from another thread and wait for it."""
        loop = self._runtime.loop
        if loop is None or self._thread is None:
            coro.close()
            raise RuntimeError("GatewayServer is not running")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("cannot block the gateway loop from inside itself")
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    def _public_app(self) -> web.Application:
        web_app = web.Application(client_max_size=16 * 1024 * 1024)
        router = web_app.router
        router.add_get("/ws", self._websockets.handle)
        router.add_route("*", "/api", self._rest.handle)
        router.add_route("*", "/api/{tail:.*}", self._rest.handle)
        router.add_route("*", "/{tail:.*}", self._static.handle)
        return web_app

    def _app_runner(self, web_app: web.Application) -> web.AppRunner:
        # aiohttp's keep-alive timer also runs from the moment a connection opens and closes
        # it if no complete request has arrived by then: a header read timeout.
        return web.AppRunner(web_app, access_log=None, handle_signals=False,
                             keepalive_timeout=self.header_timeout)

    async def _startup(self, sock: socket.socket) -> None:
        per_thread_request_state(self.app)
        self._rest.prepare()
        self._runner = self._app_runner(self._public_app())
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        # The management API: its own app on its own listener, 127.0.0.1 only, whatever host
        # the public one binds, and only under the per-run key.
        self._management_runner = self._app_runner(self._management.application(self.management_key))
        await self._management_runner.setup()
        # A restart (stop, start) keeps the port, as the public listener does: the app's
        # endpoint setting still points at it.
        site = web.TCPSite(self._management_runner, "127.0.0.1", self.management_port)
        await site.start()
        server = getattr(site, "_server", None)
        assert server is not None and server.sockets
        self.management_port = server.sockets[0].getsockname()[1]
        runtime = self._runtime
        if self.schedule_interval:
            runtime.spawn(self._schedules.timer(self.schedule_interval), runtime.service_tasks)
        if self.idle_timeout or self.max_connection_duration:
            runtime.spawn(self._websockets.sweep_expired(), runtime.service_tasks)

    async def _shutdown(self) -> None:
        for task in list(self._runtime.service_tasks):
            task.cancel()
        await self._websockets.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._management_runner is not None:
            await self._management_runner.cleanup()
