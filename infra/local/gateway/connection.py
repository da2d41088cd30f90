"""What the stand-in knows of one accepted WebSocket: read by event building, the WebSocket
server and the ``@connections`` API alike (loop thread only)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(eq=False)
class Connection:
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

    @property
    def live(self) -> bool:
        """Still open: what the ``@connections`` API answers for (else 410 Gone)."""
        return self.ws is not None and not self.ws.closed
