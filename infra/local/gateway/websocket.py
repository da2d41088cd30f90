"""The WebSocket API: clients on ``GET /ws``, each connect, frame and disconnect turned into the
invocation API Gateway would make, and API Gateway's connection limits.

``$connect`` runs *before* the upgrade (its refusal is an HTTP answer, as on AWS); every data
frame is its own ``$default`` invocation, run concurrently; ``$disconnect`` runs exactly once
per registered connection, with the close code and reason API Gateway would report. A
connection idle for 10 minutes or open for 2 hours is closed (1001), by default as on AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSMsgType, web

from infra.local.gateway.connection import Connection
from infra.local.gateway.events import WebSocketEvents, aws_id, now_ms
from infra.local.gateway.frame_rules import GatewayWebSocket
from infra.local.gateway.limits import (
    CLOSE_ABNORMAL,
    CLOSE_GOING_AWAY,
    CLOSE_NO_STATUS,
    CLOSE_TOO_BIG,
    GOING_AWAY,
    MAX_MESSAGE_BYTES,
    REASON_BINARY,
    REASON_FRAME_TOO_BIG,
    REASON_MESSAGE_TOO_BIG,
)
from infra.local.gateway.runtime import NoRoute, Runtime

logger = logging.getLogger("infra.local.gateway")

_REFUSAL_COUNTERS = {REASON_BINARY: "binary", REASON_FRAME_TOO_BIG: "frame_too_big"}


class WebSocketServer:
    """The registry of open connections and everything that happens to one (loop thread only).

    ``idle_timeout`` / ``max_connection_duration`` (seconds; ``None`` or 0: off) are enforced
    by :meth:`sweep_expired`, which the server runs when either is set.
    """

    def __init__(self, runtime: Runtime, events: WebSocketEvents, *,
                 idle_timeout: float | None, max_connection_duration: float | None) -> None:
        self.runtime = runtime
        self.events = events
        self.idle_timeout = idle_timeout
        self.max_connection_duration = max_connection_duration
        self.connections: dict[str, Connection] = {}

    # ------------------------------------------------------------ a connection's life

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Run ``$connect`` *before* upgrading, then pump frames until close."""
        probe = web.WebSocketResponse()
        if not probe.can_prepare(request).ok:
            return web.json_response({"message": "Upgrade Required"}, status=426)

        now = now_ms()
        conn = Connection(
            connection_id=aws_id(),
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
            connected_at=now,
            last_active_at=now,
        )
        refusal, protocol = await self._connect(conn, request)
        if refusal is not None:
            return refusal
        ws = GatewayWebSocket(
            functools.partial(self._refuse, conn),
            # FrameRules enforces the limits first; this is aiohttp's own backstop (it
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
            await asyncio.shield(self.finish(conn, CLOSE_ABNORMAL, GOING_AWAY))
            return ws
        conn.transport = request.transport
        self.connections[conn.connection_id] = conn

        code, reason = CLOSE_ABNORMAL, GOING_AWAY
        try:
            code, reason = await self._read_frames(conn, ws)
        finally:
            await asyncio.shield(self.finish(conn, code, reason))
        return ws

    async def _connect(self, conn: Connection,
                       request: web.Request) -> tuple[web.Response | None, str | None]:
        """Invoke ``$connect``: (the HTTP answer refusing the client, or None; the agreed
        subprotocol). As on AWS, a subprotocol is only agreed if ``$connect`` echoes it back."""
        try:
            result = await self.runtime.invoke("$connect", self.events.connect(conn, request))
        except Exception:
            logger.exception("$connect handler failed for %s", conn.connection_id)
            return web.json_response({"message": "Internal server error"}, status=500), None

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
            ), None
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        return None, headers.get("sec-websocket-protocol")

    async def _read_frames(self, conn: Connection,
                           ws: web.WebSocketResponse) -> tuple[int, str]:
        """Dispatch data frames until the socket closes; return (code, reason)."""
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.TEXT:
                self._on_frame(conn, msg.data)
            elif msg.type is WSMsgType.CLOSE:
                if conn.server_close:
                    return conn.server_close
                code = int(msg.data or CLOSE_NO_STATUS)
                if code == CLOSE_NO_STATUS:
                    return code, "Client-side close frame status not set"
                return code, f"Client-side close frame status set to {code}"
            elif msg.type is WSMsgType.ERROR:
                if conn.server_close:  # refused by FrameRules, or closed by us
                    return conn.server_close
                # aiohttp's own protocol errors carry their code; ws.close_code would only
                # say 1006 by now.
                code = int(getattr(msg.data, "code", None) or CLOSE_ABNORMAL)
                if code == CLOSE_TOO_BIG:
                    return code, REASON_MESSAGE_TOO_BIG
                return code, GOING_AWAY
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED):
                if conn.server_close:
                    return conn.server_close
                return CLOSE_ABNORMAL, GOING_AWAY

    def _on_frame(self, conn: Connection, body: str) -> None:
        conn.last_active_at = now_ms()
        self.runtime.count("frames_in")
        self.runtime.spawn(self._dispatch_message(conn, body), owner=conn.tasks)

    def _refuse(self, conn: Connection, code: int, reason: str) -> None:
        """A frame API Gateway refuses (called by FrameRules, on the loop): record why, so
        the reader loop reports it to ``$disconnect``; aiohttp sends the close frame."""
        self.runtime.count(f"refused:{_REFUSAL_COUNTERS.get(reason, 'message_too_big')}")
        logger.info("closing %s with %d: %s", conn.connection_id, code, reason)
        if conn.server_close is None:
            conn.server_close = (code, reason)

    async def _dispatch_message(self, conn: Connection, body: str) -> None:
        event = self.events.message(conn, body)
        try:
            await self.runtime.invoke("$default", event)
        except NoRoute:
            await self._send_error(conn, "Forbidden", event)
        except Exception:
            logger.exception("$default handler failed for %s", conn.connection_id)
            await self._send_error(conn, "Internal server error", event)

    async def _send_error(self, conn: Connection, message: str, event: dict[str, Any]) -> None:
        """Tell the client its frame failed, with API Gateway's error shape."""
        payload = json.dumps({
            "message": message,
            "connectionId": conn.connection_id,
            "requestId": event["requestContext"]["requestId"],
        })
        with contextlib.suppress(Exception):
            await self.send(conn, payload.encode())

    # ------------------------------------------------------------ used by the others

    def live(self, connection_id: str) -> Connection | None:
        """The open connection of that id, or None (the ``@connections`` API answers 410)."""
        conn = self.connections.get(connection_id)
        return conn if conn is not None and conn.live else None

    async def send(self, conn: Connection, data: bytes) -> bool:
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

    def finish(self, conn: Connection, code: int, reason: str) -> asyncio.Future[None]:
        """Unregister ``conn`` and run ``$disconnect`` for it, exactly once."""
        if conn.finished is None:
            if self.connections.get(conn.connection_id) is conn:
                del self.connections[conn.connection_id]
            conn.finished = self.runtime.spawn(self._run_disconnect(conn, code, reason))
        return conn.finished

    async def _run_disconnect(self, conn: Connection, code: int, reason: str) -> None:
        try:
            await self.runtime.invoke("$disconnect", self.events.disconnect(conn, code, reason))
        except Exception:
            logger.exception("$disconnect handler failed for %s", conn.connection_id)

    async def server_close(self, conn: Connection, code: int, reason: str) -> None:
        """Close from our side (DELETE, timeouts, stop) and wait for ``$disconnect``."""
        conn.server_close = (code, reason)
        finished = self.finish(conn, code, reason)
        if conn.ws is not None:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code, message=reason.encode())
        await finished

    async def drop(self, connection_id: str) -> None:
        """Kill the TCP socket without ``$disconnect`` (see ``GatewayServer.drop``)."""
        conn = self.connections.pop(connection_id, None)
        if conn is None:
            raise KeyError(connection_id)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        conn.finished = done  # marks it finished: $disconnect never runs
        if conn.transport is not None:
            conn.transport.abort()

    async def close_all(self) -> None:
        """Close every connection (``$disconnect`` for each), then let in-flight invocations
        settle before the loop goes away (they may still post to other connections)."""
        conns = list(self.connections.values())
        await asyncio.gather(
            *(self.server_close(c, CLOSE_GOING_AWAY, GOING_AWAY) for c in conns),
            return_exceptions=True,
        )
        pending = [t for c in conns for t in c.tasks] + list(self.runtime.background)
        if pending:
            await asyncio.wait(pending, timeout=10)

    # ------------------------------------------------------------ API Gateway's limits

    async def sweep_expired(self) -> None:
        """Enforce the optional idle / maximum-duration limits."""
        limits = [t for t in (self.idle_timeout, self.max_connection_duration) if t]
        period = max(0.05, min(1.0, min(limits) / 4))
        while True:
            await asyncio.sleep(period)
            now = now_ms()
            for conn in list(self.connections.values()):
                idle = (now - conn.last_active_at) / 1000
                age = (now - conn.connected_at) / 1000
                too_idle = bool(self.idle_timeout) and idle >= (self.idle_timeout or 0)
                too_old = bool(self.max_connection_duration) and age >= (
                    self.max_connection_duration or 0
                )
                if (too_idle or too_old) and conn.server_close is None:
                    self.runtime.count("closed:max_duration" if too_old else "closed:idle")
                    conn.server_close = (CLOSE_GOING_AWAY, GOING_AWAY)
                    self.runtime.spawn(self.server_close(conn, CLOSE_GOING_AWAY, GOING_AWAY))
