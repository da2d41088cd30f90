"""Hostile input, generated: the frame parser and every WebSocket action under thousands of
frames of every shape (hypothesis).

What must hold for every frame, valid or not: the handler never raises, never answers with
the internal-error code (``retry``, our 5xx) and never drops the connection; the sender gets
either the normal reply or one ``error`` frame whose code is in ``protocol.ERROR_CODES``;
and a refused frame changes nothing (a conversation's item and messages are compared
before and after).

Most frames run in-process through ``dispatch.handle`` (the ``$default`` path, minus the
posting) against the session's DynamoDB Local with real connection records, which is fast;
a few hundred more go through the local API Gateway stand-in over a real WebSocket. Frames
API Gateway itself refuses (binary, or over 32 KB) never reach the app: the gateway closes
the connection (1003 / 1009) and invokes only ``$disconnect``, which is asserted over the
wire too. Runs are derandomised and database-less: the same frames on every run, so CI is
reproducible and bounded in time.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from chalicelib import agents, auth, config, conversations, dispatch, presence, routing, sites
from chalicelib.errors import BAD_FRAME, BAD_JSON, RETRY, TOO_LARGE, UNKNOWN_ACTION, Refusal
from chalicelib.fanout import Outbox
from chalicelib.models import (
    META,
    ConversationModel,
    MessageModel,
    conversation_key,
)
from chalicelib.protocol import (
    CLIENT_MESSAGE_ID,
    CONVERSATION_ID,
    ERROR_CODES,
    MAX_COMMENT_BYTES,
    MAX_FRAME_BYTES,
    MAX_NAME_BYTES,
    MAX_SYNC_PAGE,
    MAX_TEXT_BYTES,
    MAX_TEXT_CHARS,
    MAX_TITLE_BYTES,
    MAX_URL_BYTES,
    SCHEMAS,
    Frame,
    encode,
    parse,
)
from infra.local.gateway import MAX_FRAME_BYTES as GATEWAY_FRAME_BYTES
from tests.support.client import eventually
from tests.support.flows import PASSWORD


def _settings(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


# ---------------------------------------------------------------- strategies

# Ids the world fills in at run time: frames aim at real conversations, visitors and agents.
VICTIM_CONV, OWN_CONV, VICTIM_VISITOR, OWN_VISITOR = "$victim_conv", "$own_conv", "$victim", "$own"
HOLDER, OUTSIDER = "$holder", "$outsider"

# Maximum-size UTF-8: four-byte characters at every byte limit a text field has (and one
# character past it), so each field is tried at the size that costs the most to store and send.
EMOJI = "\U0001F600"
_BYTE_LIMITS = (MAX_TEXT_BYTES, MAX_NAME_BYTES, MAX_TITLE_BYTES, MAX_URL_BYTES, MAX_COMMENT_BYTES)
MAX_UTF8 = st.sampled_from([EMOJI * (limit // 4 + extra) for limit in _BYTE_LIMITS for extra in (0, 1)])
MAX_UTF8_URLS = st.sampled_from([
    prefix + EMOJI * ((MAX_URL_BYTES - len(prefix)) // 4 + extra)
    for prefix in ("https://x.example/",) for extra in (0, 1)])
ODD_TEXT = st.one_of(
    MAX_UTF8,
    st.text(max_size=40),
    st.sampled_from(["", " ", "\t\n", "\x00", "\u202e", "\ufeff", "\u200b", "null",
                     "<script>alert(1)</script>", "' OR 1=1 --", "${jndi:x}",
                     "\ud800", "a\udc80b", "\U0001F600", "CONV#x", "MSG#1",
                     "a" * 41, "é" * (MAX_TEXT_CHARS + 1), "\U0001F600" * MAX_TEXT_CHARS]),
    st.builds(lambda c, n: c * n, st.characters(), st.integers(MAX_TEXT_CHARS - 2, MAX_TEXT_CHARS + 2)),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), ODD_TEXT,
                    st.sampled_from([0, -1, 1, 10**12 - 1, 10**12, 2**63, 1.5, True, False]))
ANY_JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)

CONV_IDS = st.one_of(st.sampled_from([VICTIM_CONV, OWN_CONV]),
                     st.from_regex(CONVERSATION_ID, fullmatch=True))
SEQS = st.one_of(st.integers(0, 10), st.integers(0, 10**12 - 1), st.sampled_from([10**12 - 2, 10**12 - 1]))
URLS = st.one_of(st.sampled_from(["https://shop.example/", "http://a.b/c?d=e#f",
                                  "https://x.example/" + "p" * 2000]),
                 st.from_regex(r"\Ahttps?://[a-z0-9.]{1,20}/[^\s\x00-\x1f\x7f]{0,30}\Z"),
                 MAX_UTF8_URLS)
VALID: dict[str, st.SearchStrategy[Any]] = {
    "conversation": CONV_IDS,
    "send.id": st.from_regex(CLIENT_MESSAGE_ID, fullmatch=True),
    "text": ODD_TEXT,
    "on": st.booleans(), "accept": st.booleans(), "transcript": st.booleans(),
    "seq": SEQS, "after": SEQS, "limit": st.integers(1, MAX_SYNC_PAGE),
    "name": ODD_TEXT, "email": st.one_of(st.emails(), ODD_TEXT),
    "to": st.one_of(st.sampled_from([HOLDER, OUTSIDER, "nobody-here"]), ODD_TEXT),
    "note": ODD_TEXT,
    "visitor": st.one_of(st.sampled_from([VICTIM_VISITOR, OWN_VISITOR]), ODD_TEXT),
    "invitation.id": st.one_of(st.from_regex(r"\A[A-Za-z0-9_-]{1,40}\Z"), ODD_TEXT),
    "url": URLS, "page": st.one_of(URLS, ODD_TEXT), "referrer": st.one_of(URLS, ODD_TEXT),
    "title": ODD_TEXT, "tz": st.sampled_from(["Europe/Paris", "UTC", "Not/AZone", "", "x" * 65]),
    "website": st.one_of(st.just(""), ODD_TEXT),
}


def _valid(action: str, name: str) -> st.SearchStrategy[Any]:
    for key in (f"{action}.{name}", name):
        if key in VALID:
            return VALID[key]
    return ODD_TEXT


@st.composite
def shaped_frames(draw: st.DrawFn, actions: list[str] | None = None) -> dict[str, Any]:
    """A frame shaped after one action's schema: each field valid, mutated (any JSON value) or
    missing; sometimes a ``ref`` of any kind; sometimes fields no schema has."""
    action = draw(st.sampled_from(actions or sorted(SCHEMAS)))
    doc: dict[str, Any] = {"action": action}
    for name in SCHEMAS[action]:
        mode = draw(st.sampled_from(["valid", "valid", "valid", "mutated", "missing"]))
        if mode == "valid":
            doc[name] = draw(_valid(action, name))
        elif mode == "mutated":
            doc[name] = draw(ANY_JSON)
    if draw(st.booleans()):
        doc["ref"] = draw(st.one_of(st.text(max_size=70), ANY_JSON))
    for key, value in draw(st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=2)).items():
        doc.setdefault(key, value)
    if draw(st.integers(0, 9)) == 0:
        doc["action"] = draw(st.one_of(ODD_TEXT, ANY_JSON, st.sampled_from([a.upper() for a in SCHEMAS])))
    return doc


RAW_FRAMES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.sampled_from(["", "{", "}", "[]", "null", "true", "1e999", '"action"', "{}", '{"action":null}',
                     '{"action": "ping", "action": "teleport"}', "\ufeff{}", '{"action":"ping"}\x00',
                     "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000]),
    ANY_JSON.map(json.dumps),
    st.builds(lambda n: json.dumps({"action": "ping", "pad": "x" * n}),
              st.integers(MAX_FRAME_BYTES - 40, MAX_FRAME_BYTES + 40)),
)


# ---------------------------------------------------------------- the parser alone

PARSE_CODES = {BAD_JSON, BAD_FRAME, UNKNOWN_ACTION, TOO_LARGE}


def _check_parse(raw: str | bytes) -> None:
    try:
        frame = parse(raw)
    except Refusal as refused:
        assert refused.code in PARSE_CODES and refused.message
        return
    assert isinstance(frame, Frame) and frame.action in SCHEMAS
    schema = SCHEMAS[frame.action]
    assert set(frame.body) <= set(schema) and all(n in frame.body for n, f in schema.items() if f.required)
    # Whatever the parser lets through can be stored and sent back as UTF-8.
    encode({"type": "echo", **frame.body, "ref": frame.ref})


@_settings(1200)
@given(raw=st.one_of(RAW_FRAMES, shaped_frames().map(json.dumps)))
def test_parse_only_ever_returns_a_valid_frame_or_a_protocol_error(raw):
    _check_parse(raw)


def test_parse_refuses_text_that_is_not_unicode():
    for text in ("\ud800", "a\udc80b"):
        with pytest.raises(Refusal) as refused:
            parse(json.dumps({"action": "send", "conversation": "abcdefgh12", "id": "client1:1",
                              "text": text}))
        assert refused.value.code == BAD_FRAME


# ---------------------------------------------------------------- every action, in-process

@dataclass
class World:
    """Real connection records on a fresh site: a victim visitor chatting with an admin agent
    (the holder), an outsider agent of the same site, and Mallory, a visitor with her own
    conversation."""

    site: str
    conns: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value in self.ids:
            return self.ids[value]
        return value

    def frame(self, doc: dict[str, Any]) -> str:
        return json.dumps({k: self.resolve(v) for k, v in doc.items()})

    def victim_state(self) -> tuple[Any, ...]:
        return _snapshot(self.ids[VICTIM_CONV])

    def handle(self, who: str, raw: str | bytes, binary: bool = False) -> list[dict[str, Any]]:
        """Run one frame as ``who``; the frames addressed to the sender."""
        outbox = Outbox()
        body = raw if isinstance(raw, str) else raw.decode("latin-1")
        dispatch.handle(self.conns[who], body, outbox, binary=binary)
        return [json.loads(f) for f in outbox.frames.get(self.conns[who], [])]


def _snapshot(conv_id: str) -> tuple[Any, ...]:
    client = ConversationModel._get_connection().connection.client
    item = client.get_item(TableName=config.settings().table_name, ConsistentRead=True,
                           Key={"pk": {"S": conversation_key(conv_id)}, "sk": {"S": META}}).get("Item")
    messages = [(m.seq, m.text, m.cmid) for m in MessageModel.query(
        conversation_key(conv_id), MessageModel.sk.startswith("MSG#"), consistent_read=True)]
    return json.dumps(item, sort_keys=True), messages


def _connect(site: str, query: dict[str, str]) -> str:
    connection_id = f"fz{secrets.token_hex(6)}="
    presence.connect(connection_id, query, None, {})
    return connection_id


@pytest.fixture(scope="module")
def world(stack) -> Iterator[World]:
    # The fuzzers open and close many conversations on purpose; their flood limits are
    # tested in test_rate_limits.py, not here.
    with config.override(conversations_per_visitor_per_hour=10**6):
        site = f"fz{secrets.token_hex(5)}"
        sites.create(site)
        w = World(site)
        holder, outsider = f"holder-{site}".lower(), f"outsider-{site}".lower()
        agents.create(holder, "Holder", PASSWORD, role="admin", max_chats=50, site=site)
        agents.create(outsider, "Outsider", PASSWORD, site=site)
        w.conns["holder"] = _connect(site, {"token": auth.issue(auth.AGENT, holder, site)})
        w.conns["outsider"] = _connect(site, {"token": auth.issue(auth.AGENT, outsider, site)})
        w.conns["victim"] = _connect(site, {"site": site})
        w.conns["mallory"] = _connect(site, {"site": site})
        w.ids.update({HOLDER: holder, OUTSIDER: outsider,
                      VICTIM_VISITOR: presence.caller(w.conns["victim"]).subject,
                      OWN_VISITOR: presence.caller(w.conns["mallory"]).subject})
        presence.set_shift(presence.caller(w.conns["holder"]), True, Outbox())
        _fresh_victim_conversation(w)
        w.ids[OWN_CONV] = conversations.start(presence.caller(w.conns["mallory"]), Outbox()).id
        yield w


def _fresh_victim_conversation(w: World) -> None:
    """Make sure the victim has an open conversation held by the holder (frames from the
    fuzzers may have closed it, or sent the holder off shift)."""
    holder = presence.caller(w.conns["holder"])
    presence.set_shift(holder, True, Outbox(), away=False)
    conv_id = w.ids.get(VICTIM_CONV)
    conv = ConversationModel.get(conversation_key(conv_id), META, consistent_read=True) if conv_id else None
    if conv is None or conv.status not in routing.OPEN_STATES:
        conv = conversations.start(presence.caller(w.conns["victim"]), Outbox(), route=False)
    if conv.agent_id != holder.subject and conv.status == routing.QUEUED:
        routing.accept(holder.subject, conv.id, Outbox())
    w.ids[VICTIM_CONV] = conv.id
    victim = w.conns["victim"]
    if not _snapshot(conv.id)[1]:
        dispatch.handle(victim, json.dumps({"action": "send", "conversation": conv.id,
                                            "id": f"victim{secrets.token_hex(3)}:1",
                                            "text": "my card number is in here"}), Outbox())


def _check_replies(doc: Any, replies: list[dict[str, Any]], raw: str = "") -> None:
    errors = [r for r in replies if r.get("type") == "error"]
    assert len(errors) <= 1, replies
    for refusal in errors:
        assert refusal["code"] in ERROR_CODES and refusal["code"] != RETRY, refusal
        assert isinstance(refusal["message"], str) and refusal["message"], refusal
        ref = doc.get("ref") if isinstance(doc, dict) else None
        # a ref with a lone surrogate is not Unicode text: it cannot be echoed (protocol.parse)
        if (isinstance(ref, str) and len(ref) <= 64 and doc.get("action") != "send"
                and ref.encode("utf-8", "surrogatepass").decode("utf-8", "replace") == ref
                and len(raw.encode("utf-8", "replace")) <= MAX_FRAME_BYTES):
            assert refusal.get("ref") == ref, (doc, refusal)
    for reply in replies:
        assert isinstance(reply.get("type"), str) and reply["type"]


def test_every_action_from_outsiders_is_answered_and_changes_nothing(world):
    """Mallory (a visitor) and an agent who does not hold the conversation throw bursts of
    frames of every action at it (and at everything else); the victim's conversation stays
    exactly as it was."""
    _fresh_victim_conversation(world)
    before = world.victim_state()

    @_settings(180)
    @given(burst=st.lists(st.tuples(st.sampled_from(["mallory", "outsider"]), shaped_frames()),
                          min_size=1, max_size=6))
    def run(burst):
        for who, doc in burst:
            raw = world.frame(doc)
            _check_replies(doc, world.handle(who, raw), raw)
        assert world.victim_state() == before

    run()


def test_every_action_from_participants_is_answered_and_refusals_change_nothing(world):
    """The victim and the agent holding the chat send mutated frames of every action at their
    own conversation: valid ones do their normal thing, refused ones change nothing."""

    @_settings(90)
    @given(burst=st.lists(st.tuples(st.sampled_from(["victim", "holder"]), shaped_frames()),
                          min_size=1, max_size=4))
    def run(burst):
        _fresh_victim_conversation(world)
        for who, doc in burst:
            before = world.victim_state()
            raw = world.frame(doc)
            replies = world.handle(who, raw)
            _check_replies(doc, replies, raw)
            if any(r.get("type") == "error" for r in replies):
                assert world.victim_state() == before, (who, doc, replies)

    run()


@_settings(200)
@given(raw=RAW_FRAMES, binary=st.booleans())
def test_raw_garbage_gets_one_clear_error(world, raw, binary):
    replies = world.handle("mallory", raw, binary=binary)
    assert len(replies) == 1 and replies[0]["type"] in ("error", "pong"), replies
    _check_replies(None, replies)


# ---------------------------------------------------------------- over the wire

def _wire_frames() -> st.SearchStrategy[tuple[str, Any]]:
    """Frames that reach the app and must each get exactly one ``error`` back over the
    socket: text only, at most API Gateway's 32 KB (it closes the connection for more)."""
    def invalid(doc: dict[str, Any]) -> bool:
        raw = json.dumps(doc)  # as Client.send sends it (non-ASCII escaped: up to 12 bytes a char)
        if len(raw) > GATEWAY_FRAME_BYTES:
            return False  # the gateway would close the connection (see the test below)
        try:
            parse(raw)
        except Refusal:
            return True
        return False

    def padded(n: int) -> str:
        return json.dumps({"action": "ping", "p": "x" * n})

    overhead = len(padded(0))
    return st.one_of(
        shaped_frames().filter(invalid).map(lambda d: ("json", d)),
        st.binary(min_size=1, max_size=300).map(
            lambda b: ("text", b.decode("latin-1"))),  # bytes as text: not JSON, or odd JSON
        st.sampled_from(["{", "[1,2]", "null", '"x"', "\ufeff{}", '{"action":"teleport"}'])
        .map(lambda t: ("text", t)),
        # Over our 20,000-byte frame limit, within API Gateway's 32 KB: the app refuses it.
        st.integers(MAX_FRAME_BYTES + 1 - overhead, GATEWAY_FRAME_BYTES - overhead)
        .map(lambda n: ("text", padded(n))),
        st.sampled_from(["send", "typing", "read", "sync", "close", "note", "notes", "context",
                         "transfer", "transfer_answer", "accept"]).map(lambda a: ("aimed", a)),
    )


def _aimed(action: str, conv: str) -> dict[str, Any]:
    """A well-formed frame at the victim's conversation, which this caller has no part in."""
    body: dict[str, Any] = {"conversation": conv}
    for name, f in SCHEMAS[action].items():
        if name != "conversation" and f.required:
            body[name] = {"id": "intruder1:1", "text": "let me in", "on": True, "seq": 1, "after": 0,
                          "to": "someone", "accept": True}[name]
    return {"action": action, **body}


def test_hostile_frames_over_a_real_websocket(stack, world, visitor, agent, address_counters):
    """A few hundred hostile text frames through the API Gateway stand-in, oversize ones
    included (over our 20,000 bytes, within API Gateway's 32 KB): each gets one clear error,
    the connection stays up, no handler fails, and the victim's conversation is untouched."""
    guest = visitor()
    guest.start()
    outsider = agent(shift=False)
    failures = stack.gateway.counters["invoke_error:$default"]
    _fresh_victim_conversation(world)
    before = world.victim_state()
    sent: Counter[str] = Counter()

    @_settings(300)
    @given(item=_wire_frames(), as_agent=st.booleans())
    def run(item, as_agent):
        client = outsider if as_agent else guest
        kind, payload = item
        if kind == "json":
            client.send(payload)
        elif kind == "aimed":
            client.send(_aimed(payload, world.ids[VICTIM_CONV]))
        else:
            client.send_raw(payload)
        refusal = client.expect("error")
        assert refusal["code"] in ERROR_CODES and refusal["code"] != RETRY and refusal["message"]
        oversize = kind == "text" and len(payload.encode()) > MAX_FRAME_BYTES
        if oversize:
            assert refusal["code"] == TOO_LARGE
        sent["oversize" if oversize else kind] += 1

    run()
    assert sum(sent.values()) >= 280 and min(sent.values()) >= 10 and len(sent) == 4, sent
    assert stack.gateway.counters["invoke_error:$default"] == failures
    assert world.victim_state() == before
    for client in (guest, outsider):
        assert client.request({"action": "ping", "ref": "still-here"}, "pong")["ref"] == "still-here"
        assert not [f for f in client.backlog if f.get("type") == "error"], client.backlog


# What API Gateway refuses itself ("Quotas for configuring and running a WebSocket API":
# 32 KB frames, 128 KB messages, close code 1009; "Working with binary media types for
# WebSocket APIs": binary frames, 1003): the connection is closed and no route but
# $disconnect runs. Each case on a fresh visitor connection, which the app must forget.
GATEWAY_REFUSALS = [
    ("binary", b"", 1003),
    ("binary", b'{"action": "ping", "ref": "x"}', 1003),
    ("binary", bytes(range(256)) * 8, 1003),
    ("frame", json.dumps({"action": "ping", "p": "x" * GATEWAY_FRAME_BYTES}), 1009),
    ("frame", "y" * (GATEWAY_FRAME_BYTES + 1), 1009),
    ("frame", "z" * 100_000, 1009),
    ("message", ["{" + " " * (GATEWAY_FRAME_BYTES - 1)] * 4 + ["}"], 1009),
]


@pytest.mark.parametrize("kind,payload,code", GATEWAY_REFUSALS,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(GATEWAY_REFUSALS)])
def test_frames_api_gateway_refuses_close_the_connection(stack, visitor, kind, payload, code):
    bystander = visitor()
    bystander.start()
    known = set(stack.gateway.connection_ids())
    guest = visitor()
    (connection_id,) = set(stack.gateway.connection_ids()) - known
    presence.connection(connection_id)  # registered with the app
    counters = stack.gateway.counters.copy()

    try:
        guest.send_raw(payload)
    except ConnectionClosed:
        pass  # the gateway may close before the client has sent it all
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            guest.ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code

    after = stack.gateway.counters.copy()
    assert after["invoke:$default"] == counters["invoke:$default"]  # no route ran for it
    refused = {"binary": "refused:binary", "frame": "refused:frame_too_big",
               "message": "refused:message_too_big"}[kind]
    assert after[refused] == counters[refused] + 1

    def forgotten() -> bool:  # $disconnect ran: the app no longer knows the connection
        try:
            presence.connection(connection_id)
        except Refusal:
            return True
        return False

    eventually(forgotten)
    assert connection_id not in stack.gateway.connection_ids()
    assert bystander.request({"action": "ping", "ref": "unaffected"}, "pong")["ref"] == "unaffected"
