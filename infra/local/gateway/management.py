"""The ``@connections`` management API, spoken on the wire so an *unmodified* boto3
``apigatewaymanagementapi`` client can post to, inspect and delete connections, including
``GoneException`` (410) and a POST over 128 KB (413, not delivered).

On AWS only IAM-signed callers reach it; here it has its own listener (``GatewayServer``),
always on 127.0.0.1 and never on the public port, under a per-run secret path.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from infra.local.gateway.events import iso8601
from infra.local.gateway.limits import CLOSE_NORMAL, MAX_MESSAGE_BYTES, read_body
from infra.local.gateway.runtime import Runtime
from infra.local.gateway.websocket import WebSocketServer


class ManagementApi:
    """POST / GET / DELETE ``@connections/{connection_id}``, against the WebSocket registry."""

    def __init__(self, runtime: Runtime, websockets: WebSocketServer, *, body_timeout: float) -> None:
        self.runtime = runtime
        self.websockets = websockets
        self.body_timeout = body_timeout

    def application(self, key: str) -> web.Application:
        """Its own app, answering only under the per-run ``key`` (an unknown path answers 404).
        boto3 sends the endpoint_url's path too, so any stage prefix after the key is accepted."""
        app = web.Application(client_max_size=16 * 1024 * 1024)
        for prefix in ("", "/{stage}"):
            path = f"/{key}{prefix}/@connections/{{connection_id}}"
            app.router.add_post(path, self.post)
            app.router.add_get(path, self.get, allow_head=False)
            app.router.add_delete(path, self.delete)
        return app

    @staticmethod
    def _gone(connection_id: str) -> web.Response:
        return web.json_response(
            {"message": f"Connection {connection_id} is gone"},
            status=410,
            headers={"x-amzn-ErrorType": "GoneException", "x-amzn-RequestId": str(uuid.uuid4())},
        )

    @staticmethod
    def _connection_id(request: web.Request) -> str:
        # aiohttp's match_info is already percent-decoded ("%3D" -> "=").
        return request.match_info["connection_id"]

    async def post(self, request: web.Request) -> web.Response:
        data = await read_body(request, self.body_timeout)
        connection_id = self._connection_id(request)
        conn = self.websockets.live(connection_id)
        if len(data) > MAX_MESSAGE_BYTES:
            self.runtime.count("post:too_large")
            return web.json_response(
                {"message": "Message too long"},
                status=413,
                headers={"x-amzn-ErrorType": "PayloadTooLargeException"},
            )
        if conn is None:
            self.runtime.count("post:gone")
            return self._gone(connection_id)
        # Counted before the frame goes out: its recipient (another thread) may read it, and a
        # test then read the counter, before this coroutine resumes after the send.
        self.runtime.count("post")
        if not await self.websockets.send(conn, data):
            self.runtime.count("post", -1)
            self.runtime.count("post:gone")
            return self._gone(connection_id)
        return web.Response(status=200, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    async def get(self, request: web.Request) -> web.Response:
        connection_id = self._connection_id(request)
        conn = self.websockets.live(connection_id)
        if conn is None:
            self.runtime.count("get:gone")
            return self._gone(connection_id)
        self.runtime.count("get")
        # The wire names are camelCase (the service model's locationName);
        # boto3 presents them as ConnectedAt / Identity.SourceIp / LastActiveAt.
        identity = {"sourceIp": conn.source_ip}
        if conn.user_agent is not None:
            identity["userAgent"] = conn.user_agent
        return web.json_response({
            "connectedAt": iso8601(conn.connected_at),
            "identity": identity,
            "lastActiveAt": iso8601(conn.last_active_at),
        })

    async def delete(self, request: web.Request) -> web.Response:
        connection_id = self._connection_id(request)
        conn = self.websockets.live(connection_id)
        if conn is None:
            self.runtime.count("delete:gone")
            return self._gone(connection_id)
        self.runtime.count("delete")
        # Like AWS: answer at once; the close handshake and $disconnect follow
        # asynchronously (awaiting them could deadlock a saturated pool).
        self.runtime.spawn(self.websockets.server_close(conn, CLOSE_NORMAL, "Connection Closed Normally"))
        return web.Response(status=204)
