"""One local stack for the whole run: DynamoDB Local, the gateway stand-in and the app.

Tests talk to it the way browsers do (real WebSocket clients) and check state in DynamoDB
Local directly. Each test works on its own site, so queues and shifts never leak between
tests even though they share one table. Sites exist only once created (as an admin would,
``chalicelib.sites.create``): ``site`` and ``new_site`` create them, and delete them after
the test so the minute timer's round (``run_schedules``) stays as short as the test's own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

os.environ.setdefault("TOKEN_SECRET", secrets.token_urlsafe(48))
os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("TABLE_NAME", f"test-{secrets.token_hex(4)}")

from infra.local.stack import Stack
from tests.client import Client

# the AWS-call recorder; the shared Chromium; every delivered frame checked against frames.SERVER_FRAMES
pytest_plugins = ["tests.aws_recorder", "tests.browser", "tests.frames_check"]
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    running = Stack(table=os.environ["TABLE_NAME"], schedule_interval=None, poll_queues=False,
                    retry_delay=0, token_secret=os.environ["TOKEN_SECRET"]).start()
    yield running
    running.stop()


@contextlib.contextmanager
def created_sites() -> Iterator[Callable[..., str]]:
    """Create sites as an admin does; remove them afterwards. ``make(prefix)`` -> a new id."""
    from chalicelib import sites
    from chalicelib.models import SiteModel

    made: list[str] = []

    def make(prefix: str = "s", name: str | None = None) -> str:
        site_id = f"{prefix}{secrets.token_hex(5)}"
        sites.create(site_id, name)
        made.append(site_id)
        return site_id

    try:
        yield make
    finally:
        for site_id in made:
            SiteModel("SITE", site_id).delete()


@pytest.fixture
def new_site(stack: Stack) -> Iterator[Callable[..., str]]:
    """Create more sites in a test (another team's, a second shop): ``new_site("other")``."""
    with created_sites() as make:
        yield make


@pytest.fixture
def site(new_site: Callable[..., str]) -> str:
    """A fresh site per test, created as an admin would: its own queue and on-shift agents."""
    return new_site()


@pytest.fixture
def mailbox(stack: Stack) -> Callable[[str], list[dict[str, Any]]]:
    """Emails sent during the test, by recipient; the mail queue is drained first (earlier
    tests' jobs) and the SES stand-in's store emptied."""
    assert stack.poller is not None and stack.ses is not None
    stack.poller.drain()
    stack.ses.clear()

    def read(to: str) -> list[dict[str, Any]]:
        assert stack.poller is not None and stack.ses is not None
        stack.poller.drain()
        return [e for e in stack.ses.emails() if any(to in a for a in e["destination"]["to"])]

    return read


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture
def visitor(stack: Stack, site: str, clients: list[Client]) -> Callable[..., Client]:
    """Open a visitor connection (new visitor, or resume with ``token``) and say hello."""

    def open_visitor(token: str | None = None, hello: bool = True) -> Client:
        assert stack.gateway is not None
        client = Client(stack.gateway.ws_url, {"token": token} if token else {"site": site})
        clients.append(client)
        if hello:
            client.welcome = client.request({"action": "hello"}, "welcome")
        return client

    return open_visitor


@pytest.fixture
def agent(stack: Stack, site: str, clients: list[Client]) -> Callable[..., Client]:
    """Create an agent on this test's site, sign in over REST, connect, and optionally go
    on shift. Returns the console connection."""
    from chalicelib import agents
    from chalicelib.errors import Refusal

    def open_agent(name: str = "", max_chats: int | None = None, shift: bool = True,
                   agent_id: str | None = None) -> Client:
        assert stack.gateway is not None
        agent_id = agent_id or f"a{secrets.token_hex(4)}"
        try:
            agents.create(agent_id, name or agent_id, PASSWORD, max_chats=max_chats, site=site)
        except Refusal:
            pass  # a second console for the same agent
        token = Client.login(stack.gateway.http_url, agent_id, PASSWORD)
        client = Client(stack.gateway.ws_url, {"token": token})
        client.agent_id = agent_id
        client.token = token
        clients.append(client)
        client.welcome = client.request({"action": "hello"}, "welcome")
        if shift:
            client.request({"action": "shift", "on": True}, "shift")
        return client

    return open_agent


@pytest.fixture
def dynamodb_calls(stack: Stack) -> Iterator[list[str]]:
    """Every DynamoDB API call the app makes while the test runs, in order (botocore hook
    on each PynamoDB model's client)."""
    from chalicelib.models import ALL_MODELS

    calls: list[str] = []

    def record(model: Any, params: Any, **_: Any) -> None:
        calls.append(model.name)

    clients = {id(m._get_connection().connection.client): m._get_connection().connection.client
               for m in ALL_MODELS}
    for client in clients.values():
        client.meta.events.register("before-call.dynamodb", record)
    yield calls
    for client in clients.values():
        client.meta.events.unregister("before-call.dynamodb", record)


@contextlib.contextmanager
def kept_address_counters() -> Iterator[None]:
    """Give a test the whole per-address allowance of 127.0.0.1, and put the counters back
    afterwards.

    Every REST call of the local stand-in comes from 127.0.0.1 (Chalice's local gateway
    says so), so a test that spends that address's hourly offline-message or failed-sign-in
    allowance would otherwise leave later tests refused."""
    from chalicelib import agents, auth, limits
    from chalicelib.models import META, CounterModel

    keys = [limits.counter_key(f"offline-ip#{auth.fingerprint('127.0.0.1')}", 3600),
            limits.counter_key(f"login-ip#{auth.fingerprint('127.0.0.1')}", agents.LOGIN_WINDOW)]

    def count(key: str) -> int | None:
        try:
            return int(CounterModel.get(key, META, consistent_read=True).hits)
        except CounterModel.DoesNotExist:
            return None

    before = {key: count(key) for key in keys}
    for key in keys:  # start with the whole allowance, whatever earlier tests spent
        CounterModel(key).delete()
    try:
        yield
    finally:
        for key, n in before.items():
            if n is None:
                CounterModel(key).delete()
            else:
                CounterModel(key).update(actions=[CounterModel.hits.set(n)])


@pytest.fixture
def address_counters(stack: Stack) -> Iterator[None]:
    """See ``kept_address_counters``."""
    with kept_address_counters():
        yield
