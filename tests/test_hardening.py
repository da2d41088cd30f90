"""Hostile inputs from issue 15's review, one test per finding: each fails on the code before
its fix. (The frame-flood findings are in tests/test_rate_limits.py.)"""

from __future__ import annotations

import http.client
import json

import pytest
from websockets.exceptions import InvalidStatus

from tests.support.client import Client

NON_ASCII_TOKEN = "eyJyIjoiYWdlbnQifQ\u00e9.c2lnbmF0dXJl"


def _request(stack, method: str, path: str, body: object = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = stack.gateway.http_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        # http.client sends header values as latin-1: a non-ASCII token reaches the server.
        conn.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                        **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_a_non_ascii_token_is_refused_not_an_error(stack, site):
    """Before: hmac.compare_digest raised TypeError on non-ASCII text, so a stranger's token
    answered 500 and tripped the error alarms."""
    with pytest.raises(InvalidStatus) as refused:
        Client(stack.gateway.ws_url, {"token": NON_ASCII_TOKEN})  # percent-encoded UTF-8
    assert refused.value.response.status_code == 403
    status, _, _ = _request(stack, "GET", f"/api/sites/{site}/agents",
                            headers={"Authorization": f"Bearer {NON_ASCII_TOKEN}"})
    assert status == 403
    status, _, body = _request(stack, "POST", "/api/offline",
                               {"site": site, "email": "a@example.org", "text": "hi",
                                "token": NON_ASCII_TOKEN})
    assert status == 403 and json.loads(body)["code"] == "bad_token"


def test_offline_messages_only_from_the_sites_allowed_origins(stack, site, admin, address_counters):
    """Before: ``POST /api/offline`` took messages from any page and answered
    ``Access-Control-Allow-Origin: *`` even when the site lists its origins."""
    from chalicelib import auth, limits
    from chalicelib.models import META, CounterModel

    def stored() -> int:  # offline messages counted for this address this hour
        key = limits.counter_key(f"offline-ip#{auth.fingerprint('127.0.0.1')}", 3600)
        try:
            return int(CounterModel.get(key, META, consistent_read=True).hits)
        except CounterModel.DoesNotExist:
            return 0

    doc = {"site": site, "email": "cors@example.org", "text": "from a page"}
    status, headers, _ = _request(stack, "POST", "/api/offline", doc,
                                  {"Origin": "https://anywhere.example"})
    assert status == 202 and headers["Access-Control-Allow-Origin"] == "*"  # no list: any page
    admin({"console": {"origins": ["https://shop.example"]}})
    before = stored()
    status, headers, body = _request(stack, "POST", "/api/offline", doc,
                                     {"Origin": "https://evil.example"})
    assert status == 403 and json.loads(body)["code"] == "forbidden"
    assert headers["Access-Control-Allow-Origin"] == "https://shop.example"  # never * nor evil
    status, headers, _ = _request(stack, "POST", "/api/offline", doc)  # no Origin at all
    assert status == 403 and headers["Access-Control-Allow-Origin"] != "*"
    assert stored() == before  # nothing stored from a refused page
    status, headers, _ = _request(stack, "POST", "/api/offline", doc,
                                  {"Origin": "https://shop.example"})
    assert status == 202 and headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert headers["Vary"] == "Origin"
