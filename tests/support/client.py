"""A test client that speaks the chat protocol over a real WebSocket, like a browser would."""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

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
