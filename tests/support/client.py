"""The client that speaks the chat protocol over a real WebSocket, like a browser would.

``Client`` is the synchronous one the tests use (one thread, a handful of connections);
``AsyncClient`` is the same protocol for the benchmarks' thousand connections on one event
loop (``bench/load.py``, ``bench/soak.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as connect_async
from websockets.sync.client import connect


class Client:
    """One WebSocket connection with a backlog, so tests can wait for a specific frame
    while other frames keep arriving in any order."""

    def __init__(self, ws_url: str, query: dict[str, str]) -> None:
        # max_queue=None: read everything as it comes, like a browser. With websockets' default
        # (16 frames), a test client that stays unread while the others talk (a visitor's
        # tab during 64 long messages) stops reading its socket, so its keepalive pong is
        # never seen and the connection dies with 1011 "keepalive ping timeout".
        self.ws = connect(f"{ws_url}?{urlencode(query)}", open_timeout=10, max_size=2**20,
                          max_queue=None)
        self.backlog: list[dict[str, Any]] = []
        self.client_id = secrets.token_urlsafe(6)
        self.counter = 0
        self.welcome: dict[str, Any] = {}
        self.agent_id = ""
        self.token = ""

    @staticmethod
    def login(http_url: str, agent_id: str, password: str) -> str:
        request = urllib.request.Request(
            f"{http_url}/api/auth/login", method="POST",
            data=json.dumps({"agent": agent_id, "password": password}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.load(response)["token"])

    def send_raw(self, data: str | bytes) -> None:
        self.ws.send(data)

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame))

    def last(self, type_: str, quiet: float = 0.4) -> dict[str, Any] | None:
        """The latest frame of ``type_`` once none has come for ``quiet`` seconds (None: none
        came): what a client shows after a burst of updates, such as the waiting list."""
        latest = None
        while True:
            try:
                latest = self.expect(type_, timeout=quiet)
            except AssertionError:
                return latest

    def expect(self, type_: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        """The first frame of ``type_`` whose fields equal ``match`` (waiting up to timeout)."""
        def fits(frame: dict[str, Any]) -> bool:
            return frame.get("type") == type_ and all(frame.get(k) == v for k, v in match.items())

        for frame in self.backlog:
            if fits(frame):
                self.backlog.remove(frame)
                return frame
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {type_} {match} within {timeout}s; got {self.backlog}")
            try:
                frame = json.loads(self.ws.recv(timeout=remaining))
            except TimeoutError:
                continue
            if fits(frame):
                return frame
            self.backlog.append(frame)

    def quiet(self, type_: str, wait: float = 0.5, **match: Any) -> None:
        """Assert no such frame arrives within ``wait`` seconds."""
        try:
            frame = self.expect(type_, timeout=wait, **match)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {frame}")

    def request(self, frame: dict[str, Any], reply: str, **match: Any) -> dict[str, Any]:
        self.send(frame)
        return self.expect(reply, **match)

    def start(self) -> str:
        """Open the visitor's conversation; returns its id."""
        self.send({"action": "start"})
        return str(self.expect("conversation")["conversation"])

    def next_id(self) -> str:
        self.counter += 1
        return f"{self.client_id}:{self.counter}"

    def say(self, conversation: str, text: str, message_id: str | None = None) -> dict[str, Any]:
        """Send a message and wait for its ack (the protocol's one-in-flight rule). Like the
        real clients, a ``rate_limited`` refusal is answered by sending the same frame again
        after its ``retry_after`` hint (tests of the limit itself use ``send``)."""
        message_id = message_id or self.next_id()
        frame = {"action": "send", "conversation": conversation, "id": message_id, "text": text}
        for _ in range(5):
            self.send(frame)
            reply = self.expect_reply(message_id)
            if reply.get("code") != "rate_limited":
                return reply
            time.sleep(float(reply["retry_after"]))
        return reply

    def expect_reply(self, ref: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.backlog:
                if frame.get("ref") == ref and frame.get("type") in ("ack", "error"):
                    self.backlog.remove(frame)
                    return frame
            try:
                self.backlog.append(json.loads(self.ws.recv(timeout=0.2)))
            except TimeoutError:
                pass
        raise AssertionError(f"no reply to {ref}; got {self.backlog}")

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


@dataclass
class AsyncClient:
    """One WebSocket connection on an event loop that files what arrives: chat messages by
    conversation (with the time each was first received, for latencies), replies to
    ``request`` by their ``ref``, and every other frame in order of arrival.

    ``expect`` takes the next frame of some types (as a test does), ``wait_for`` looks for
    one without taking it (an audit replays ``events`` afterwards)."""

    ws: ClientConnection
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # conv -> frames
    arrivals: dict[str, float] = field(default_factory=dict)  # message id -> first receipt
    replies: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)  # ref -> reply
    events: list[dict[str, Any]] = field(default_factory=list)  # everything else, in order
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)  # kept: the loop holds weak refs

    @classmethod
    async def open(cls, ws_url: str, query: dict[str, str], *, open_timeout: float = 60,
                   close_timeout: float = 10, heartbeat: float | None = None) -> AsyncClient:
        """Connect and start filing. ``heartbeat``: send a ``ping`` frame that often, as the
        widget and console do (API Gateway, and the stand-in, close a connection idle for
        10 minutes, and a visitor waiting in line sends nothing of its own)."""
        ws = await connect_async(f"{ws_url}?{urlencode(query)}", open_timeout=open_timeout,
                                 close_timeout=close_timeout, max_size=2**20, ping_interval=None)
        client = cls(ws)
        loop = asyncio.get_running_loop()
        client.tasks.append(loop.create_task(client._pump()))
        if heartbeat:
            client.tasks.append(loop.create_task(client._heartbeat(heartbeat)))
        return client

    async def _pump(self) -> None:
        with contextlib.suppress(Exception):  # closed: whoever waits times out and says so
            async for raw in self.ws:
                frame = json.loads(raw)
                kind = frame.get("type")
                if kind == "message":
                    self.messages.setdefault(str(frame.get("conversation")), []).append(frame)
                    self.arrivals.setdefault(str(frame.get("id")), time.perf_counter())
                elif kind in ("ack", "error") and str(frame.get("ref")) in self.replies:
                    future = self.replies.pop(str(frame.get("ref")))
                    if not future.done():
                        future.set_result(frame)
                else:
                    self.events.append(frame)
                self.changed.set()

    async def _heartbeat(self, every: float) -> None:
        with contextlib.suppress(Exception):  # the socket closed; the run's audit reports what that cost
            while True:
                await asyncio.sleep(every)
                await self.send({"action": "ping"})

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def _wait(self, pick: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.perf_counter() + timeout
        while True:
            found = pick()
            if found is not None:
                return found
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no {what} within {timeout}s")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def expect(self, *kinds: str, timeout: float = 60) -> dict[str, Any]:
        """Take the first frame of any of ``kinds`` (already received, or the next to arrive).
        A frame without a type is of kind ``"None"`` (the echo floor's)."""
        def take() -> dict[str, Any] | None:
            for i, frame in enumerate(self.events):
                if str(frame.get("type")) in kinds:
                    return self.events.pop(i)
            return None

        return await self._wait(take, timeout, f"{kinds}")

    async def wait_for(self, kind: str, timeout: float, **match: Any) -> dict[str, Any]:
        """The first frame of ``kind`` whose fields equal ``match``, left in ``events``."""
        def look() -> dict[str, Any] | None:
            return next((f for f in self.events
                         if f.get("type") == kind and all(f.get(k) == v for k, v in match.items())), None)

        return await self._wait(look, timeout, f"{kind} {match}")

    async def request(self, frame: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        """Send a frame that is answered with an ack or error carrying its ``id`` (or ``ref``)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[str(frame.get("id") or frame.get("ref"))] = future
        await self.send(frame)
        return await asyncio.wait_for(future, timeout)

    async def ask(self, frame: dict[str, Any], reply: str, timeout: float = 300) -> dict[str, Any]:
        """Send ``frame`` and take the next ``reply`` frame (``shift``, ``conversation``...)."""
        await self.send(frame)
        return await self.expect(reply, timeout=timeout)


def http_error(fn: Any) -> int:
    """The HTTP status an urllib call fails with (0 if it did not fail)."""
    try:
        fn()
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    return 0


def eventually(check: Any, timeout: float = 5.0) -> None:
    """Wait until ``check()`` is true: for effects that follow a reply (cleanup after a
    delivery), never for timing claims."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def settle(stack: Any, quiet: float = 0.4, timeout: float = 10.0) -> None:
    """Wait until the gateway has invoked nothing for ``quiet`` seconds, so counts taken
    next belong to the test alone."""
    def invocations() -> int:
        return sum(v for k, v in stack.gateway.counters.copy().items() if k.startswith("invoke"))

    deadline = time.monotonic() + timeout
    last, since = invocations(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError("the gateway never went quiet")
        time.sleep(0.05)
        now = invocations()
        if now != last:
            last, since = now, time.monotonic()


def rest(http_url: str, method: str, path: str, body: Any = None,
         token: str | None = None) -> tuple[int, Any]:
    """Call a REST route of the local stand-in; returns (status, parsed JSON body)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{http_url}/api{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def confirmation_link(email: dict[str, Any]) -> str:
    """The address-confirmation link in a mail from the SES stand-in (chalicelib/transcripts.py)."""
    (url,) = re.findall(r"http\S+/transcripts/confirm/\S+", email["body"]["text"])
    return str(url)
