"""The flows tests (and the benchmarks) go through again and again: sign an agent in, start a
chat and have it accepted, change a site's settings as its admin, leave.

Each is written once here so that a change to the protocol or to sign-in is made in one place.
They drive the stack the way its clients do (WebSocket frames, REST calls) and return what a
test asserts on next.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import smtplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

from tests.support.client import Client, eventually, rest

# Every agent the suite creates signs in with this password (one slow hash to remember).
PASSWORD = "correct horse battery"


def start_chat(visitor: Callable[..., Client], agent: Callable[..., Client],
               **agent_kwargs: Any) -> tuple[Client, Client, str]:
    """An agent on shift (``agent_kwargs`` as the ``agent`` fixture takes them), a visitor who
    starts a chat and the agent's ``assigned``: (visitor, console, conversation id)."""
    console = agent(**agent_kwargs)
    guest = visitor()
    conv = guest.start()
    console.expect("assigned")
    return guest, console, conv


def close(client: Client, conv: str) -> dict[str, Any]:
    """Close ``conv`` from either side; the ``closed`` frame the closer gets."""
    return client.request({"action": "close", "conversation": conv}, "closed", conversation=conv)


def gone(client: Client, conv: str) -> None:
    """The visitor closes their (only) tab; wait until the server noted it."""
    from tests.support.state import conv_item

    client.close()
    eventually(lambda: conv_item(conv).v_left_at is not None)


def member_token(stack: Any, site: str, role: str = "admin", prefix: str | None = None,
                 name: str = "Boss") -> tuple[str, str]:
    """A new member of ``site`` with ``role`` (an admin by default), signed in over REST:
    (agent id, bearer token)."""
    from chalicelib import agents

    agent_id = f"{prefix or 'boss'}{secrets.token_hex(3)}"
    agents.create(agent_id, name, PASSWORD, role=role, site=site)
    return agent_id, Client.login(stack.gateway.http_url, agent_id, PASSWORD)


def site_settings(stack: Any, site: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``put(doc)``: the site's admin changes its settings over REST (200 asserted); the admin's
    id is ``put.agent_id``."""
    agent_id, token = member_token(stack, site)

    def put(doc: dict[str, Any]) -> dict[str, Any]:
        status, body = rest(stack.gateway.http_url, "PUT", f"/sites/{site}", doc, token)
        assert status == 200, body
        return dict(body)

    put.agent_id = agent_id  # type: ignore[attr-defined]
    return put


def mails_to(stack: Any, to: str) -> list[dict[str, Any]]:
    """Every email the SES stand-in holds for ``to``, once the mail queue's jobs have run
    (mail goes out through SQS: a job still queued is a mail not yet sent)."""
    assert stack.poller is not None and stack.ses is not None
    stack.poller.drain()
    return [e for e in stack.ses.emails() if any(to in a for a in e["destination"]["to"])]


@contextlib.contextmanager
def kept_address_counters() -> Iterator[None]:
    """Give a test the whole per-address allowance of 127.0.0.1, and put the counters back
    afterwards.

    Every REST call of the local stand-in comes from 127.0.0.1 (Chalice's local gateway
    says so), so a test that spends that address's hourly offline-message or failed-sign-in
    allowance would otherwise leave later tests refused."""
    from chalicelib import auth, limits
    from chalicelib.models import META, CounterModel

    keys = [limits.OFFLINE_PER_NETWORK.counter_key(auth.fingerprint('127.0.0.1')),
            limits.LOGIN_FAILURES_PER_SOURCE.counter_key(auth.fingerprint('127.0.0.1'))]

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


# ------------------------------------------------------------------ the email channel


def email_answer(to: str, text: str, *, sender: str, message_id: str, **headers: str) -> EmailMessage:
    """A visitor's plain-text email to ``to`` (a reply address); ``headers`` with ``_`` for
    ``-`` (``Auto_Submitted=...``)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, "Re: replied"
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    return message


def smtp_send(stack: Any, message: EmailMessage | bytes, to: str, sender: str | None = None) -> str:
    """Deliver with a real SMTP client to the stand-in's SMTP server (SES receiving's place);
    the inbound handler's outcome for it. The envelope sender is the message's From unless
    given (raw bytes must give it)."""
    if sender is None:
        assert isinstance(message, EmailMessage), "raw bytes need an envelope sender"
        sender = str(message["From"])
    before = len(stack.smtp.outcomes)
    with smtplib.SMTP("127.0.0.1", stack.smtp.port, timeout=10) as client:
        if isinstance(message, EmailMessage):
            client.send_message(message, from_addr=sender, to_addrs=[to])
        else:
            client.sendmail(sender, [to], message)
    eventually(lambda: len(stack.smtp.outcomes) > before)
    return str(stack.smtp.outcomes[before])


def configure_site(stack: Any, site: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A new admin of ``site`` changes its settings over REST (for what a test only sets up)."""
    return site_settings(stack, site)(doc)


# ------------------------------------------------------------------ hostile visitors

EMOJI = "\U0001f600"  # four bytes of UTF-8


def hostile_page(n: int) -> dict[str, Any]:
    """The largest page the schema lets a visitor send, in four-byte characters (its limits
    are in UTF-8 bytes: protocol.MAX_URL_BYTES, MAX_TITLE_BYTES)."""
    from chalicelib.protocol import MAX_TITLE_BYTES, MAX_URL_BYTES

    prefix = f"https://x.example/{n}/"
    return {"action": "page", "url": prefix + EMOJI * ((MAX_URL_BYTES - len(prefix)) // 4),
            "title": EMOJI * (MAX_TITLE_BYTES // 4), "referrer": EMOJI * (MAX_URL_BYTES // 4)}


def send_utf8(client: Client, frame: dict[str, Any]) -> None:
    """As our clients send: raw UTF-8 (escaped, 4,000 emoji would be over 20,000 bytes)."""
    client.send_raw(json.dumps(frame, ensure_ascii=False))


def queued_hostile_visitors(visitor: Callable[..., Client], count: int) -> list[str]:
    """``count`` visitors, each on the largest page allowed and waiting in line: their chats."""
    from chalicelib.models import META, VisitorModel, visitor_key

    convs = []
    for n in range(count):
        guest = visitor()
        send_utf8(guest, hostile_page(n))
        key = visitor_key(guest.welcome["visitor"])
        eventually(lambda k=key: VisitorModel.get(k, META, consistent_read=True).page is not None)
        convs.append(guest.start())
    return convs
