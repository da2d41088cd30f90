"""One error model (chalicelib/errors.py): every refusal is a ``Refusal`` with a code, and the
code alone decides the HTTP status; REST answers every refusal as ``{"code", "message"}``
(plus ``retry_after``), and the WebSocket ``error`` frame keeps its shape.

The code table is checked against the source (every code any module raises has a status);
the REST shape against real HTTP calls to the local stand-in, over representative routes
(public, signed-in, admin, a body Chalice cannot parse, a 429); the frame against a real
visitor connection.
"""

from __future__ import annotations

import ast
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chalicelib import errors, protocol
from tests.support.client import rest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "app.py", *sorted((ROOT / "chalicelib").glob("*.py"))]
REFUSALS = {"Refusal"}


def _codes_raised() -> set[str]:
    """The first argument of every ``Refusal(...)``/``Refusal(...)`` in app.py and
    chalicelib, resolved through errors' constants (a string literal counts as itself)."""
    constants = {name: value for name, value in vars(errors).items()
                 if name.isupper() and isinstance(value, str)}
    found: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else "")
            if name not in REFUSALS:
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
            elif isinstance(first, ast.Name) and first.id in constants:
                found.add(constants[first.id])
            elif isinstance(first, ast.Attribute) and first.attr in constants:
                found.add(constants[first.attr])
            else:  # refused.code and the like: a code passed on, not made up here
                assert isinstance(first, ast.Attribute) and first.attr == "code", (
                    f"{path.name}:{node.lineno}: a refusal's code must be a constant of errors")
    return found


def test_every_code_raised_and_every_frame_code_has_one_status():
    raised = _codes_raised()
    assert {"forbidden", "rate_limited", "bad_request", "unauthorized", "no_site"} <= raised
    assert raised | errors.FRAME_CODES <= set(errors.HTTP_STATUS)
    assert all(400 <= status < 600 for status in errors.HTTP_STATUS.values())
    assert protocol.ERROR_CODES == errors.FRAME_CODES


def test_one_refusal_type_everywhere():
    from chalicelib import agents, offline, presence, reports

    assert protocol.Refusal is errors.Refusal
    assert issubclass(agents.TooManyAttempts, errors.Refusal)
    assert agents.TooManyAttempts("wait", 60).code == errors.RATE_LIMITED
    for module in (agents, offline, presence, reports):  # the old types are gone
        assert not {"Refused", "AgentError", "ReportError"} & set(vars(module))


def _one_shape(answer: tuple[int, Any], code: str) -> dict[str, Any]:
    status, body = answer
    assert status == errors.HTTP_STATUS[code], (status, body)
    assert isinstance(body, dict) and body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) <= {"code", "message", "retry_after"}, body  # never Chalice's Code/Message
    return body


def test_rest_refusals_have_one_shape(stack, site, agent):
    http = stack.gateway.http_url
    # public routes
    _one_shape(rest(http, "GET", "/sites/nosuchsite0/status"), errors.NOT_FOUND)
    _one_shape(rest(http, "POST", "/offline", {"email": "v@example.org", "text": "hi"}), errors.BAD_SITE)
    _one_shape(rest(http, "POST", "/offline", {"site": site, "email": "nope", "text": "hi"}),
               errors.BAD_EMAIL)
    # sign-in
    _one_shape(rest(http, "POST", "/auth/login", {"agent": 1}), errors.BAD_REQUEST)
    _one_shape(rest(http, "POST", "/auth/login", {"agent": "nobody-here", "password": "x" * 12}),
               errors.UNAUTHORIZED)
    # signed-in routes: no token, a member where an admin is needed, bad input, no such agent
    _one_shape(rest(http, "GET", f"/sites/{site}/agents"), errors.UNAUTHORIZED)
    agent("Member", shift=False)
    from chalicelib import agents
    from tests.support.flows import PASSWORD

    member = next(a["id"] for a in agents.team(site) if a["name"] == "Member")
    member_token = rest(http, "POST", "/auth/login", {"agent": member, "password": PASSWORD})[1]["token"]
    _one_shape(rest(http, "GET", f"/sites/{site}", token=member_token), errors.FORBIDDEN)
    _one_shape(rest(http, "GET", f"/sites/{site}/reports?from=yesterday", token=member_token),
               errors.FORBIDDEN)
    admin = f"ad{site}"[:40]
    agents.create(admin, "Admin", PASSWORD, role="admin", site=site)
    token = rest(http, "POST", "/auth/login", {"agent": admin, "password": PASSWORD})[1]["token"]
    _one_shape(rest(http, "GET", f"/sites/{site}/reports?from=yesterday", token=token), errors.BAD_REQUEST)
    _one_shape(rest(http, "PUT", f"/sites/{site}", {"widget": {"color": "red"}}, token=token),
               errors.BAD_REQUEST)
    _one_shape(rest(http, "POST", f"/sites/{site}/agents", {"id": "x"}, token=token), errors.BAD_REQUEST)
    _one_shape(rest(http, "DELETE", f"/sites/{site}/agents/nobody-here", token=token), errors.NOT_FOUND)
    _one_shape(rest(http, "GET", f"/sites/{site}/visitors/nobody/export", token=token), errors.NOT_FOUND)


def test_a_body_that_is_not_json_gets_the_one_shape(stack):
    request = urllib.request.Request(f"{stack.gateway.http_url}/api/auth/login", method="POST",
                                     headers={"Content-Type": "application/json"}, data=b"{not json")
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("accepted a body that is not JSON")
    except urllib.error.HTTPError as exc:
        import json

        _one_shape((exc.code, json.loads(exc.read())), errors.BAD_REQUEST)


def test_a_wait_is_in_the_body_and_the_header():
    """The 429 rendering: ``retry_after`` in the body and ``Retry-After``, from one place."""
    import app

    answer = app._refused(errors.Refusal(errors.RATE_LIMITED, "Slow down.", retry_after=42))
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "42"
    assert answer.body == {"code": "rate_limited", "message": "Slow down.", "retry_after": 42}
    plain = app._refused(errors.Refusal(errors.FORBIDDEN, "No."))
    assert plain.status_code == 403 and "Retry-After" not in plain.headers
    assert plain.body == {"code": "forbidden", "message": "No."}


def test_the_error_frame_is_unchanged(visitor):
    client = visitor()
    client.send_raw("{not json")
    frame = client.expect("error")
    assert frame["code"] == "bad_json" and isinstance(frame["message"], str)
    assert list(frame) == ["type", "code", "message"]
    client.send({"action": "no-such-action", "ref": "r1"})
    frame = client.expect("error", ref="r1")
    assert list(frame) == ["type", "code", "message", "ref"] and frame["code"] == "unknown_action"
    assert errors.Refusal(errors.RATE_LIMITED, "Wait.", retry_after=3).frame("r2") == {
        "type": "error", "code": "rate_limited", "message": "Wait.", "ref": "r2", "retry_after": 3}
