"""The REST API: ``/api/...`` forwarded to Chalice's own :class:`chalice.local.LocalGateway`
(the REST stage is ``api`` on AWS), concurrently, like Lambda containers."""

from __future__ import annotations

import base64
import functools
from typing import Any

from aiohttp import web
from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException
from multidict import CIMultiDict

from infra.local.gateway.limits import read_body
from infra.local.gateway.runtime import Runtime


class RestProxy:
    """Hands each request to Chalice's LocalGateway in the handler pool (each worker thread has
    its own ``app.current_request``: ``runtime.per_thread_request_state``)."""

    def __init__(self, runtime: Runtime, *, body_timeout: float) -> None:
        self.runtime = runtime
        self.body_timeout = body_timeout
        self._gateway: LocalGateway | None = None

    def prepare(self) -> None:
        """Build Chalice's gateway for the app's routes (none: every request answers 404)."""
        app = self.runtime.app
        if not app.routes:
            self._gateway = None
            return
        config = Config(
            chalice_stage=self.runtime.stage,
            function_name="api_handler",
            user_provided_params={
                "app_name": app.app_name,
                "lambda_memory_size": 256,
                "lambda_timeout": int(self.runtime.lambda_timeout),
            },
        )
        self._gateway = LocalGateway(app, config)

    async def handle(self, request: web.Request) -> web.Response:
        """Forward ``/api/...`` to Chalice's LocalGateway (REST stage is ``api`` on AWS)."""
        gateway = self._gateway
        if gateway is None:
            return web.json_response({"message": "Not Found"}, status=404)
        path = request.raw_path[len("/api"):]
        if not path.startswith("/"):
            path = "/" + path
        body = await read_body(request, self.body_timeout) or None
        headers = dict(request.headers)
        self.runtime.count("rest")
        try:
            response = await self.runtime.in_pool(
                functools.partial(gateway.handle_request, request.method, path, headers, body))
        except LocalGatewayException as exc:
            return web.Response(status=exc.CODE, headers=exc.headers, body=exc.body)
        return _to_aiohttp(response)


def _to_aiohttp(response: dict[str, Any]) -> web.Response:
    """A Lambda proxy response (single and multi-value headers, maybe base64) as aiohttp's."""
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
