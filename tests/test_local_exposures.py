"""The local stand-in's own exposures (issue 15), one hostile-input test each; every one
fails on the stand-in as it was before."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.client import Client
from tests.support.flows import PASSWORD


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    return host, int(port)


def test_a_client_trickling_its_headers_is_cut_off(stack):
    """Slowloris: headers sent a byte at a time used to hold the connection for ever."""
    host, port = _host_port(stack.gateway.http_url)
    sock = socket.create_connection((host, port), timeout=2)
    request = b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200
    started, cut = time.monotonic(), False
    try:
        for byte in request:
            sock.sendall(bytes([byte]))
            try:
                if sock.recv(1024) == b"":
                    cut = True
                    break
            except TimeoutError:
                pass
            except ConnectionError:
                cut = True
                break
            if time.monotonic() - started > 30:
                break
    except (BrokenPipeError, ConnectionError):
        cut = True
    finally:
        sock.close()
    assert cut, "the server still waits for the rest of the headers"
    # An honest request on a fresh connection is served as before.
    with urllib.request.urlopen(f"{stack.gateway.http_url}/api/health", timeout=10) as ok:
        assert ok.status == 200


def test_rest_calls_run_concurrently_each_with_its_own_request(stack, monkeypatch, new_site):
    """Before, every REST call waited behind one lock: two calls could never be inside the
    app at once. Each must also see its own ``app.current_request``."""
    from chalicelib import sites

    app = stack.app_module.app
    both_inside = threading.Barrier(2, timeout=10)
    seen: dict[str, str] = {}
    original = sites.find

    def slow_find(site: str):
        both_inside.wait()  # breaks (and the call fails) unless the other call is inside too
        seen[site] = app.current_request.uri_params["site"]
        return original(site)

    monkeypatch.setattr(sites, "find", slow_find)
    names = [new_site("rest") for _ in range(2)]  # sites exist only once created
    answers: dict[str, int] = {}

    def call(site: str) -> None:
        with urllib.request.urlopen(f"{stack.gateway.http_url}/api/sites/{site}/status",
                                    timeout=20) as response:
            answers[site] = response.status

    threads = [threading.Thread(target=call, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == {n: 200 for n in names}
    assert seen == {n: n for n in names}


def test_local_secret_files_are_owner_only(tmp_path: Path):
    from infra.local.stack import local_secret, write_private

    old = os.umask(0o022)
    try:
        secret = local_secret(tmp_path / ".local")
        assert len(secret) >= 32
        assert stat.S_IMODE((tmp_path / ".local" / "token-secret").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / ".local").stat().st_mode) == 0o700
        # A file an older version left world-readable is closed up on the next start.
        (tmp_path / ".local" / "token-secret").chmod(0o644)
        assert local_secret(tmp_path / ".local") == secret
        assert stat.S_IMODE((tmp_path / ".local" / "token-secret").stat().st_mode) == 0o600
        dev = tmp_path / ".local" / "dev.json"
        dev.write_text("{}")
        dev.chmod(0o644)
        write_private(dev, '{"TOKEN_SECRET": "x"}')
        assert stat.S_IMODE(dev.stat().st_mode) == 0o600 and "TOKEN_SECRET" in dev.read_text()
    finally:
        os.umask(old)


def test_the_management_api_is_not_on_the_public_port(stack, visitor):
    """``@connections`` lets anyone who reaches it post to, read and hang up any connection;
    it used to answer on the public port, unauthenticated."""
    import boto3
    from botocore.exceptions import ClientError

    before = set(stack.gateway.connection_ids())
    guest = visitor()
    (connection_id,) = set(stack.gateway.connection_ids()) - before
    public = f"{stack.gateway.http_url}/@connections/{connection_id}"
    for method in ("GET", "DELETE", "POST"):
        request = urllib.request.Request(public, method=method, data=b"{}" if method == "POST" else None)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 404, method
    endpoint = stack.gateway.management_endpoint
    host, port = _host_port(endpoint)
    assert host == "127.0.0.1" and port != _host_port(stack.gateway.http_url)[1]
    assert os.environ["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] == endpoint
    # The right listener without the per-run key is refused too.
    with pytest.raises(urllib.error.HTTPError) as keyless:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/@connections/{connection_id}", timeout=5)
    assert keyless.value.code == 404
    client = boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)
    assert client.get_connection(ConnectionId=connection_id)["ConnectedAt"]
    with pytest.raises(ClientError):
        boto3.client("apigatewaymanagementapi", endpoint_url=f"http://127.0.0.1:{port}") \
            .get_connection(ConnectionId=connection_id)
    # ... and the app's own fan-out still reaches clients through it.
    guest.request({"action": "ping", "ref": "p"}, "pong")


def test_failed_sign_ins_from_one_local_address_lock_nobody_else_out(stack, agent, address_counters):
    """Every local client is 127.0.0.1: the per-address limit (50 failures) used to lock every
    console out after one developer's typos. Off locally, like the per-address start limit."""
    from chalicelib import config

    assert config.settings().login_failures_per_address == 0
    console = agent(shift=False)
    for n in range(55):  # many accounts, one address
        request = urllib.request.Request(
            f"{stack.gateway.http_url}/api/auth/login", method="POST",
            data=f'{{"agent": "nobody{n}", "password": "wrong-password"}}'.encode(),
            headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(request, timeout=10)
        assert failed.value.code == 401
    assert Client.login(stack.gateway.http_url, console.agent_id, PASSWORD)
