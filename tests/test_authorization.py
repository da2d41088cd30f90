"""Who may do what: one table per surface, (caller, action, target) -> expected outcome.

* WebSocket actions aimed at one conversation, by its visitor, another visitor, the agent
  holding it, another agent, an admin who does not hold it, and an agent of another site.
* REST routes by no token, a malformed / expired / tampered / other-site / visitor / member /
  revoked token, and an admin (the positive control).
* ``$connect``: tokens of every kind and the site's allowed origins, for visitors and agents.

Every refused row must also leave things as they were: the conversation's whole partition
(state, messages, notes), the site's settings and its team are compared before and after.
Refusals are checked row by row and reported together, so one run shows the whole matrix.
Positive controls (the owner, the holder, the admin) keep each refusal honest: a row that
expects ``forbidden`` only passes because the check exists, not because nothing works.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from chalicelib import agents, auth, config, dispatch, protocol
from chalicelib.errors import CONFLICT, FORBIDDEN, NOT_FOUND
from chalicelib.models import ConversationModel, conversation_key
from tests.support.client import Client, rest
from tests.support.flows import PASSWORD


def _partition(conv: str) -> str:
    """Every item under the conversation's key (state, messages, notes), as one string."""
    client = ConversationModel._get_connection().connection.client
    items = client.query(TableName=config.settings().table_name, ConsistentRead=True,
                         KeyConditionExpression="pk = :pk",
                         ExpressionAttributeValues={":pk": {"S": conversation_key(conv)}})["Items"]
    return json.dumps(items, sort_keys=True)


def _other_site_agent(stack, clients, new_site) -> Client:
    agent_id = f"x{secrets.token_hex(4)}"
    agents.create(agent_id, "Elsewhere", PASSWORD, role="admin", site=new_site("other"))
    token = Client.login(stack.gateway.http_url, agent_id, PASSWORD)
    console = Client(stack.gateway.ws_url, {"token": token})
    console.agent_id = agent_id
    clients.append(console)
    console.request({"action": "hello"}, "welcome")
    return console


def _frames(conv: str, victim: str, receiver: str) -> dict[str, dict[str, Any]]:
    """One well-formed frame per action, each aimed at the victim's conversation (or visitor)."""
    return {
        "send": {"action": "send", "conversation": conv, "id": f"intr{secrets.token_hex(3)}:1",
                 "text": "let me in"},
        "sync": {"action": "sync", "conversation": conv, "after": 0},
        "typing": {"action": "typing", "conversation": conv, "on": True},
        "read": {"action": "read", "conversation": conv, "seq": 1},
        "close": {"action": "close", "conversation": conv},
        "accept": {"action": "accept", "conversation": conv},
        "note": {"action": "note", "conversation": conv, "text": "private"},
        "notes": {"action": "notes", "conversation": conv},
        "context": {"action": "context", "conversation": conv},
        "transfer": {"action": "transfer", "conversation": conv, "to": receiver},
        "transfer_answer": {"action": "transfer_answer", "conversation": conv, "accept": True},
        "invite": {"action": "invite", "visitor": victim, "text": "chat?"},
        "overview": {"action": "overview"},
        "history": {"action": "history", "text": "card"},
        "visitors": {"action": "visitors"},
        "shift": {"action": "shift", "on": True},
        "start": {"action": "start"},
        "page": {"action": "page", "url": "https://shop.example/"},
        "rules": {"action": "rules"},
        "leave_message": {"action": "leave_message", "email": "x@example.org", "text": "hi"},
    }


# Refusals that are not about the caller's role (that half comes from dispatch.ACTIONS, below):
# (caller, action) -> expected error code. Callers: "other_visitor" (a visitor of the same
# site with her own chat), "other_agent" (same site, not holding it, not an admin),
# "admin" (same site, not holding it), "elsewhere" (an admin of another site), and the
# chat's own "holder" for actions that are not theirs.
REFUSED: list[tuple[str, str, str]] = [
    *[("other_visitor", a, FORBIDDEN) for a in ("send", "sync", "typing", "read", "close")],
    *[("other_agent", a, FORBIDDEN) for a in (
        "send", "sync", "typing", "read", "close", "note", "notes", "context", "transfer",
        "overview", "history")],
    ("other_agent", "accept", CONFLICT),  # it is someone else's already
    ("other_agent", "transfer_answer", NOT_FOUND),  # nobody offered it to them
    *[("admin", a, FORBIDDEN) for a in ("send", "sync", "typing", "read", "close", "note", "notes",
                                        "context", "transfer")],
    *[("elsewhere", a, FORBIDDEN) for a in ("send", "sync", "typing", "read", "close", "note",
                                            "notes", "context")],
    ("elsewhere", "accept", CONFLICT),
    ("elsewhere", "transfer", NOT_FOUND),  # the receiver is not on their site
    ("elsewhere", "invite", NOT_FOUND),  # a visitor of another site is "not on the site"
    *[("holder", a, FORBIDDEN) for a in ("overview", "history")],  # supervisors and admins only
]

# Callers of each role, for the role half: every action dispatch.ACTIONS restricts to some
# roles is sent by each caller of every other role, and must be refused with that role's
# message before anything happens.
BY_ROLE = {auth.VISITOR: ("visitor", "other_visitor"), auth.AGENT: ("holder", "other_agent")}
# Values tried, in order, for the required fields of an action the matrix has no frame for
# (the conversation id first: most actions aim at one).
CANDIDATES: list[Any] = ["{conv}", "abcdef:1", "https://shop.example/", "x@example.org", True, 1]


def _well_formed(action: str, known: dict[str, dict[str, Any]], conv: str) -> dict[str, Any]:
    """A frame the schema accepts for ``action``: the matrix's own when it has one, else its
    required fields filled with the first candidate each field's rule accepts, so a newly
    registered action needs no edit here to be covered."""
    if action in known:
        return known[action]
    frame: dict[str, Any] = {"action": action}
    for name, field in protocol.SCHEMAS[action].items():
        if field.required:
            values = [conv if v == "{conv}" else v for v in CANDIDATES]
            frame[name] = next(v for v in values if isinstance(v, field.kind)
                               and not (field.kind is int and isinstance(v, bool))
                               and (field.check is None or field.check(v)))
    protocol.parse(json.dumps(frame))  # raises if the schema would refuse it
    return frame


def _wrong_role_rows() -> list[tuple[str, str, str]]:
    """(caller, action, message) for every restricted action and every caller it excludes."""
    return [(who, name, dispatch.WRONG_ROLE[registered.roles])
            for name, registered in sorted(dispatch.ACTIONS.items())
            for role, callers in sorted(BY_ROLE.items()) if role not in registered.roles
            for who in callers]


# Positive controls: the same frames from those entitled to them, and the reply they get.
ALLOWED: list[tuple[str, str, str]] = [
    ("holder", "notes", "notes"), ("holder", "context", "context"), ("holder", "sync", "messages"),
    ("visitor", "sync", "messages"), ("admin", "overview", "overview"), ("admin", "history", "history"),
    ("other_agent", "visitors", "visitors"), ("elsewhere", "overview", "overview"),
]


def test_websocket_matrix(stack, site, visitor, agent, clients, new_site):
    holder = agent()
    victim = visitor()
    conv = victim.start()
    holder.expect("assigned")
    victim.say(conv, "my card number is 4111")
    holder.request({"action": "note", "conversation": conv, "text": "asked about a card"}, "note")
    lead = f"lead{secrets.token_hex(3)}"
    agents.create(lead, "Lead", PASSWORD, role="admin", site=site)
    callers = {
        "visitor": victim, "holder": holder,
        "other_agent": agent(max_chats=2),
        "admin": agent(agent_id=lead, shift=False),
        "elsewhere": _other_site_agent(stack, clients, new_site),
        "other_visitor": visitor(),
    }
    callers["other_visitor"].start()  # her own chat goes to the least busy: the other agent
    callers["other_agent"].expect("assigned")
    frames = _frames(conv, victim.welcome["visitor"], holder.agent_id)
    before = _partition(conv)
    wrong: list[str] = []
    for who, action, code in REFUSED:
        ref = f"{who}-{action}"
        callers[who].send({**frames[action], "ref": ref})
        reply = callers[who].expect("error")
        if reply["code"] != code or reply.get("ref") not in (ref, frames[action].get("id")):
            wrong.append(f"{who} {action}: expected {code}, got {reply}")
        if _partition(conv) != before:
            wrong.append(f"{who} {action}: the conversation changed")
            before = _partition(conv)
    roles = _wrong_role_rows()
    assert len(roles) > 40  # the table restricts most actions; an empty matrix checks nothing
    for who, action, message in roles:
        ref = f"{who}-{action}-role"
        callers[who].send({**_well_formed(action, frames, conv), "ref": ref})
        reply = callers[who].expect("error")
        if (reply["code"], reply["message"], reply.get("ref")) != (FORBIDDEN, message, ref):
            wrong.append(f"{who} {action}: expected {FORBIDDEN} {message!r}, got {reply}")
        if _partition(conv) != before:
            wrong.append(f"{who} {action}: the conversation changed")
            before = _partition(conv)
    assert not wrong, "\n".join(wrong)
    victim.quiet("typing", wait=0.3)  # nobody else's typing reached the visitor
    for who, action, reply_type in ALLOWED:
        reply = callers[who].request(frames[action], reply_type)
        if who == "elsewhere":  # an admin elsewhere sees their own site only
            assert conv not in json.dumps(reply)
        if action == "notes":
            assert [n["text"] for n in reply["items"]] == ["asked about a card"]
    assert _partition(conv) == before


def _site_state(http: str, site: str, token: str) -> tuple[Any, Any]:
    return rest(http, "GET", f"/sites/{site}", token=token), rest(http, "GET", f"/sites/{site}/agents",
                                                                  token=token)


def test_rest_matrix(stack, site, agent, address_counters, new_site):
    http = stack.gateway.http_url
    boss = f"boss{secrets.token_hex(3)}"
    agents.create(boss, "Boss", PASSWORD, role="admin", site=site)
    admin_token = Client.login(http, boss, PASSWORD)
    member = agent(shift=False)
    revoked = agent(shift=False)
    assert rest(http, "DELETE", f"/sites/{site}/agents/{revoked.agent_id}", token=admin_token)[0] == 204
    elsewhere = f"else{secrets.token_hex(3)}"
    agents.create(elsewhere, "Elsewhere", PASSWORD, role="admin", site=new_site("other"))
    payload, mac = admin_token.split(".")
    claims = json.loads(auth._unb64(payload))
    tokens = {
        "none": None,
        "garbage": "not-a-token",
        "expired admin": auth.issue(auth.AGENT, boss, site, ttl=-1),
        "tampered admin": f"{payload}.{mac[:-4]}AAAA",
        "forged claims": f"{auth._b64(json.dumps({**claims, 'w': 'x'}).encode())}.{mac}",
        "other-site admin": Client.login(http, elsewhere, PASSWORD),
        "visitor": auth.issue(auth.VISITOR, "v" + secrets.token_hex(4), site),
        "member": member.token,
        "revoked": revoked.token,
    }
    target = member.agent_id
    routes = [
        ("GET", f"/sites/{site}/agents", None),
        ("POST", f"/sites/{site}/agents", {"id": "intruder", "name": "I", "password": PASSWORD}),
        ("PATCH", f"/sites/{site}/agents/{target}", {"role": "admin"}),
        ("DELETE", f"/sites/{site}/agents/{target}", None),
        ("GET", f"/sites/{site}", None),
        ("PUT", f"/sites/{site}", {"name": "Pwned", "console": {"origins": ["https://evil.example"]}}),
    ]
    before = _site_state(http, site, admin_token)
    assert before[0][0] == 200 and before[1][0] == 200
    wrong = []
    for name, token in tokens.items():
        for method, path, body in routes:
            expected = 401 if token is None else (200 if name == "member" and method == "GET"
                                                  and path.endswith("/agents") else 403)
            status, answer = rest(http, method, path, body, token)
            explained = status < 400 or answer.get("message")
            if status != expected or not explained:
                wrong.append(f"{name} {method} {path}: expected {expected}, got {status} {answer}")
    assert not wrong, "\n".join(wrong)
    assert _site_state(http, site, admin_token) == before  # nothing refused changed anything
    # Positive control: the admin may do each of them.
    assert rest(http, "PATCH", f"/sites/{site}/agents/{target}", {"name": "Renamed"}, admin_token)[0] == 200
    assert rest(http, "PUT", f"/sites/{site}", {"name": "Ours"}, admin_token)[0] == 200


def _dial(stack, query: dict[str, str], origin: str | None) -> int:
    from urllib.parse import urlencode

    try:
        with connect(f"{stack.gateway.ws_url}?{urlencode(query)}", origin=origin,  # type: ignore[arg-type]
                     open_timeout=5) as ws:
            ws.send('{"action": "ping", "ref": "o"}')
            assert '"pong"' in ws.recv(timeout=5)
    except InvalidStatus as refused:
        return int(refused.response.status_code)
    return 101


def test_connect_matrix_tokens_and_origins(stack, site, visitor, agent, new_site):
    http = stack.gateway.http_url
    boss = f"boss{secrets.token_hex(3)}"
    agents.create(boss, "Boss", PASSWORD, role="admin", site=site)
    admin_token = Client.login(http, boss, PASSWORD)
    console = agent(shift=False)
    guest = visitor()
    visitor_token = guest.welcome["token"]
    v_payload, v_mac = visitor_token.split(".")
    open_site = new_site("open")  # lists no origins: any page may embed it
    assert rest(http, "PUT", f"/sites/{site}", {"console": {"origins": ["https://shop.example"]}},
                admin_token)[0] == 200
    shop, evil = "https://shop.example", "https://evil.example"
    rows: list[tuple[str, dict[str, str], str | None, int]] = [
        ("visitor, allowed origin", {"site": site}, shop, 101),
        ("visitor, other origin", {"site": site}, evil, 403),
        ("visitor, no origin", {"site": site}, None, 403),
        ("returning visitor, allowed origin", {"token": visitor_token}, shop, 101),
        ("returning visitor, other origin", {"token": visitor_token}, evil, 403),
        ("visitor of a site without origins, any origin", {"site": open_site}, evil, 101),
        ("visitor of a site without origins, no origin", {"site": open_site}, None, 101),
        ("visitor, expired token", {"token": auth.issue(auth.VISITOR, guest.welcome["visitor"], site,
                                                        ttl=-1)}, shop, 403),
        ("visitor, tampered token", {"token": f"{v_payload}.{v_mac[::-1]}"}, shop, 403),
        # Agents are not held to the site's origins: the console is served from the
        # deployment's own origin, and the credential is the signed token, not a cookie.
        ("agent, allowed origin", {"token": console.token}, shop, 101),
        ("agent, other origin", {"token": console.token}, evil, 101),
        ("agent, no origin", {"token": console.token}, None, 101),
        ("agent, no token", {"role": "agent"}, shop, 403),
        ("agent, expired token", {"token": auth.issue(auth.AGENT, console.agent_id, site, ttl=-1)},
         None, 403),
        ("agent, tampered token", {"token": console.token[:-3] + "abc"}, None, 403),
    ]
    wrong = [f"{name}: expected {want}, got {got}" for name, query, origin, want in rows
             if (got := _dial(stack, query, origin)) != want]
    assert not wrong, "\n".join(wrong)


def test_a_revoked_agent_is_hung_up_and_kept_out(stack, site, agent):
    http = stack.gateway.http_url
    boss = f"boss{secrets.token_hex(3)}"
    agents.create(boss, "Boss", PASSWORD, role="admin", site=site)
    admin_token = Client.login(http, boss, PASSWORD)
    console = agent()
    second_tab = agent(agent_id=console.agent_id)
    assert rest(http, "DELETE", f"/sites/{site}/agents/{console.agent_id}", token=admin_token)[0] == 204
    for tab in (console, second_tab):  # every open console is closed by the server
        with pytest.raises(ConnectionClosed):
            for _ in range(50):
                tab.ws.recv(timeout=5)
    with pytest.raises(InvalidStatus) as refused:  # and the still-unexpired token no longer connects
        Client(stack.gateway.ws_url, {"token": console.token})
    assert refused.value.response.status_code == 403
    (me,) = [a for a in rest(http, "GET", f"/sites/{site}/agents", token=admin_token)[1]["agents"]
             if a["id"] == console.agent_id]
    assert me["disabled"] and not me["on_shift"] and not me["online"]


def test_every_action_is_registered_with_roles_and_a_handler():
    """protocol.ACTIONS (what clients may send) and dispatch.ACTIONS (who may, and what runs
    it) name the same actions: a schema without a handler, or a handler without a schema,
    fails here rather than answering ``retry`` in production."""
    assert set(dispatch.ACTIONS) == set(protocol.ACTIONS)
    for name, registered in dispatch.ACTIONS.items():
        assert registered.name == name and callable(registered.handler)
        assert registered.roles and registered.roles <= dispatch.ANYONE, name
    with pytest.raises(ValueError):  # one home per action: a second registration is refused
        dispatch.action("ping")(lambda call: None)


def test_wrong_role_refusals_and_open_actions_stay_as_they_were():
    """The wording clients and docs know, and the actions open to both roles (each checks the
    caller's place in its conversation itself): opening another needs this test changed."""
    assert dispatch.WRONG_ROLE == {dispatch.AGENTS: "Only agents can do that.",
                                   dispatch.VISITORS: "Only visitors can do that."}
    assert {n for n, a in dispatch.ACTIONS.items() if a.roles == dispatch.ANYONE} == {
        "ping", "hello", "status", "send", "typing", "read", "sync", "close", "rate", "transcript"}
