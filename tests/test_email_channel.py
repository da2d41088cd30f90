"""The email channel end to end on the stand-in: an agent's reply is emailed with a signed
reply address and threading headers; the visitor answers with a real SMTP client to the local
SMTP server (SES receiving's stand-in), and the answer lands in the conversation, live on the
agent's WebSocket. Every bad input is recognised and changes nothing (or stores once)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from typing import Any

import pytest

from chalicelib import clock, config, email_channel, mail
from chalicelib.store import META, MailModel, MessageModel, conversation_key, plain_map
from tests.support.client import Client, eventually
from tests.support.flows import email_answer, smtp_send
from tests.support.state import conv_item

VISITOR = "dana@example.org"


@pytest.fixture
def sent_raw(stack: Any) -> Iterator[list[EmailMessage]]:
    """Every email the app hands SES during the test, parsed from the request's own params
    (the SES stand-in keeps no headers of a Raw email)."""
    seen: list[EmailMessage] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        data = params.get("Content", {}).get("Raw", {}).get("Data")
        if data:
            seen.append(BytesParser(policy=default).parsebytes(data))  # type: ignore[arg-type]

    events = mail._client().meta.events
    events.register("provide-client-params.sesv2.SendEmail", capture)
    yield seen
    events.unregister("provide-client-params.sesv2.SendEmail", capture)


@pytest.fixture
def emailed(stack: Any, visitor: Callable[..., Client], agent: Callable[..., Client],
            mailbox: Callable[[str], list[dict[str, Any]]]) -> tuple[Client, str, str]:
    """A chat whose visitor gave an address and went away; the agent's reply went by email.
    (console, conversation id, the reply address the email gave)."""
    console, conv = away_with_address(visitor, agent)
    console.say(conv, "Your parcel left today.")
    (reply,) = [e for e in mailbox(VISITOR) if "replied" in e["subject"]]
    (address,) = reply["replyTo"]
    return console, conv, address


def away_with_address(visitor: Callable[..., Client], agent: Callable[..., Client]) -> tuple[Client, str]:
    """An agent's chat with a visitor who gave their address before chatting and then left."""
    console = agent()
    guest = visitor()
    guest.send({"action": "start", "email": VISITOR})
    conv = str(guest.expect("conversation")["conversation"])
    console.expect("assigned", conversation=conv)
    guest.close()
    eventually(lambda: conv_item(conv).v_left_at is not None)
    return console, conv


REPLY = "Thanks, got it!\n\nBest,\nDana\n\nOn Mon, Team wrote:\n> Your parcel left today.\n"


def answer(to: str, text: str = REPLY, sender: str = VISITOR, message_id: str = "<a1@mail.example.org>",
           **headers: str) -> EmailMessage:
    """Dana's answer, as most tests here send it."""
    return email_answer(to, text, sender=sender, message_id=message_id, **headers)


def email_lines(conv: str) -> list[MessageModel]:
    return [m for m in MessageModel.query(conversation_key(conv), MessageModel.sk.startswith("MSG#"),
                                          consistent_read=True) if m.channel == "email"]


def test_a_reply_by_email_lands_in_the_conversation_live_and_in_the_figures(stack, emailed, sent_raw):
    console, conv, address = emailed
    assert address.startswith("reply+") and address.endswith(f"@{config.settings().reply_domain}")
    assert smtp_send(stack, answer(address), address) == "stored"
    live = console.expect("message", conversation=conv, channel="email")
    assert live["text"] == "Thanks, got it!"  # quote and signature cut (mail-parser-reply)
    assert live["from"]["role"] == "visitor"
    (line,) = email_lines(conv)
    assert "Your parcel left today." in line.original and line.text == "Thanks, got it!"
    item = conv_item(conv)
    assert plain_map(item.message_counts)["email"] == 1
    assert plain_map(item.client_owners)["email"] == "v:email"  # a visitor's line in the figures
    page = console.request({"action": "sync", "conversation": conv, "after": 0}, "messages")
    assert page["items"][-1]["channel"] == "email"


def test_the_emailed_reply_carries_reply_to_and_threading_headers(stack, visitor, agent, mailbox,
                                                                   sent_raw):
    console, conv = away_with_address(visitor, agent)
    seq = console.say(conv, "First answer")["seq"]
    mailbox(VISITOR)
    later = console.say(conv, "Second answer")["seq"]
    mailbox(VISITOR)
    first, second = [m for m in sent_raw if m["To"] == VISITOR][-2:]
    domain = config.settings().reply_domain
    assert first["Message-ID"] == f"<conv-{conv}-{seq}@{domain}>"
    assert second["Message-ID"] == f"<conv-{conv}-{later}@{domain}>"
    root = f"<conv-{conv}@{domain}>"
    assert first["In-Reply-To"] == second["In-Reply-To"] == root and second["References"] == root
    assert str(second["Reply-To"]).startswith("reply+") and "Second answer" in second.get_content()


def test_an_answer_to_a_closed_conversation_puts_it_back_in_the_inbox(stack, emailed, agent):
    """Stored and nobody told would be a lost customer: the closed conversation goes back in
    the site's inbox (one conditional write), is taken like a new message, and its figures
    are not counted twice. A redelivery after the agent closed it again reopens nothing."""
    console, conv, address = emailed
    closed = console.request({"action": "close", "conversation": conv}, "closed")
    assert closed["summary"]["reason"] == "resolved"
    site = conv_item(conv).site
    assert smtp_send(stack, answer(address), address) == "stored"
    assert console.expect("message", conversation=conv, channel="email")["text"] == "Thanks, got it!"
    item = conv_item(conv)
    assert (item.status, item.q_pk, item.agent_id, item.reason) == ("queued", f"INBOX#{site}", None, None)
    assert item.counted  # settled at the first close, and only then
    bo = agent(name="Bo", shift=False)
    assert [i["conversation"] for i in bo.request({"action": "inbox"}, "inbox")["items"]] == [conv]
    bo.send({"action": "take", "conversation": conv, "ref": f"take:{conv}"})
    assert bo.expect("assigned", conversation=conv)["summary"]["status"] == "assigned"
    bo.request({"action": "close", "conversation": conv}, "closed")
    assert smtp_send(stack, answer(address), address) == "duplicate"
    assert conv_item(conv).status == "closed" and len(email_lines(conv)) == 1


def test_redelivery_of_the_same_message_id_stores_once(stack, emailed):
    _, conv, address = emailed
    assert smtp_send(stack, answer(address), address) == "stored"
    seq = int(conv_item(conv).seq)
    assert smtp_send(stack, answer(address), address) == "duplicate"
    assert int(conv_item(conv).seq) == seq and len(email_lines(conv)) == 1
    assert plain_map(conv_item(conv).message_counts)["email"] == 1


def test_an_emailed_line_costs_two_requests_and_survives_a_crash_between_them(stack, emailed,
                                                                             dynamodb_calls):
    """Like a chat line: one conditional UpdateItem, one conditional PutItem, no read. A
    redelivery after a crash between the two (simulated: the message item removed) stores
    the line at the seq it was given, once."""
    console, conv, address = emailed
    dynamodb_calls.clear()
    assert smtp_send(stack, answer(address), address) == "stored"
    assert dynamodb_calls == ["UpdateItem", "PutItem"]
    (line,) = email_lines(conv)
    seq = int(line.seq)
    console.expect("message", conversation=conv, channel="email", seq=seq)
    line.delete()
    assert smtp_send(stack, answer(address), address) == "duplicate"
    (again,) = email_lines(conv)
    assert int(again.seq) == seq == int(conv_item(conv).seq) and again.text == "Thanks, got it!"
    # Delivered again, as a resent chat line is: the console may have missed the first.
    console.expect("message", conversation=conv, channel="email", seq=seq)


@pytest.mark.parametrize("case", ["forged", "expired", "mismatch", "auto_reply", "loop"])
def test_a_reply_that_must_not_count_changes_nothing(stack, emailed, case):
    console, conv, address = emailed
    to, sender, headers = address, VISITOR, {}
    if case == "forged":
        to = address[:address.index("@") - 2] + "xx" + address[address.index("@"):]
    elif case == "expired":
        long_ago = clock.now_ms() - (config.settings().reply_token_days + 1) * 86_400_000
        to = email_channel.reply_address(conv_item(conv), now_ms=long_ago)
    elif case == "mismatch":
        sender = "mallory@example.net"
    elif case == "auto_reply":
        headers = {"Auto_Submitted": "auto-replied"}
    elif case == "loop":
        sender = config.settings().mail_from
    before = int(conv_item(conv).seq)
    # An expired address is a forged one: the token no longer proves anything.
    assert smtp_send(stack, answer(to, sender=sender, **headers), to, sender) == (
        "forged" if case == "expired" else case)
    assert int(conv_item(conv).seq) == before and email_lines(conv) == []
    console.quiet("message", conversation=conv)


def test_bad_mime_changes_nothing(stack, emailed):
    _, conv, address = emailed
    before = int(conv_item(conv).seq)
    garbage = b"\x00\xff\xfe not a header\r\n\r\n\xff\xff"
    assert smtp_send(stack, garbage, address, VISITOR) == "malformed"
    huge = answer(address, text="x" * (email_channel.MAX_RAW_BYTES + 10), message_id="<big@x.org>")
    assert smtp_send(stack, huge, address) == "too_large"
    nested = EmailMessage()
    inner = nested
    for _ in range(email_channel.MAX_DEPTH + 3):
        child = EmailMessage()
        inner.make_mixed()
        inner.attach(child)
        inner = child
    inner.set_content("deep")
    nested["From"], nested["To"], nested["Message-ID"] = VISITOR, address, "<deep@x.org>"
    assert smtp_send(stack, nested, address) == "malformed"
    assert int(conv_item(conv).seq) == before and email_lines(conv) == []


def test_html_only_mail_is_stored_as_text(stack, emailed):
    console, conv, address = emailed
    message = answer(address, message_id="<html@x.org>")
    message.set_content("<html><head><style>p{}</style></head><body><script>alert(1)</script>"
                        "<p>Merci <b>beaucoup</b> &amp; bye</p><img src=x onerror=alert(2)></body></html>",
                        subtype="html")
    assert smtp_send(stack, message, address) == "stored"
    live = console.expect("message", conversation=conv, channel="email")
    assert live["text"] == "Merci beaucoup & bye"
    assert "<" not in email_lines(conv)[0].original


def test_a_latin_1_reply_is_decoded(stack, emailed):
    console, conv, address = emailed
    raw = (f"From: {VISITOR}\r\nTo: {address}\r\nSubject: Re\r\nMessage-ID: <latin@x.org>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\n").encode("ascii")
    raw += "Très bien, merci à vous".encode("latin-1")
    assert smtp_send(stack, raw, address, VISITOR) == "stored"
    assert console.expect("message", conversation=conv, channel="email")["text"] == "Très bien, merci à vous"


@pytest.fixture
def unsuppressed() -> Iterator[None]:
    """The table outlives the test: the address it suppressed is mailed again by later tests."""
    yield
    MailModel(mail._suppression_key(VISITOR), META).delete()


@pytest.mark.usefixtures("unsuppressed")
@pytest.mark.parametrize(("report_type", "reason"), [("delivery-status", "bounce"),
                                                     ("feedback-report", "complaint")])
def test_a_bounce_or_complaint_stops_further_mail_to_that_address(stack, emailed, mailbox, report_type,
                                                                  reason):
    console, conv, address = emailed
    report = EmailMessage()
    report["From"], report["To"], report["Subject"] = "MAILER-DAEMON@mx.example.org", address, "Undelivered"
    report.set_content("Your message could not be delivered.")
    report.make_mixed()
    report.set_type("multipart/report")
    report.set_param("report-type", report_type)
    assert not mail.suppressed(VISITOR)
    assert smtp_send(stack, report, address, sender="") == "bounce"
    assert email_lines(conv) == []
    assert MailModel.get(mail._suppression_key(VISITOR), META, consistent_read=True).suppressed == reason
    console.say(conv, "Are you there?")
    assert [e for e in mailbox(VISITOR) if "Are you there?" in e["body"]["text"]] == []
    assert [e for e in mailbox(VISITOR) if "Your parcel left today." in e["body"]["text"]]  # before


def test_the_reply_parser_is_not_paid_for_at_every_cold_start():
    """Every function imports app (and so email_channel); only the inbound handler extracts
    replies, so mail-parser-reply (~50 ms of import) loads on first use, not at cold start."""
    probe = "import sys, app; print('mailparser_reply' in sys.modules)"
    cold = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert cold.stdout.strip() == "False"
    answer = email_channel.reply_text("Yes, Tuesday works.\n\nOn Mon, Ann wrote:\n> When?")
    assert answer == "Yes, Tuesday works."


@pytest.mark.parametrize("verdict,outcome", [("virusVerdict", "virus"), ("spamVerdict", "spam"),
                                             ("dmarcVerdict", "spoofed")])
def test_an_email_ses_judged_bad_is_dropped_unread(stack, emailed, verdict, outcome):
    """SES's verdicts come with the event: a FAIL is dropped before the raw email is even read
    (it was never stored in S3 here, so reading it would fail the handler)."""
    import app
    from infra.local.gateway import LocalLambdaContext
    from infra.local.smtp import ses_event

    _, conv, address = emailed
    before = int(conv_item(conv).seq)
    raw = answer(address, message_id=f"<{outcome}@mail.example.org>").as_bytes()
    event = ses_event(raw, f"never-stored-{outcome}", VISITOR, [address])
    event["Records"][0]["ses"]["receipt"][verdict] = {"status": "FAIL"}
    context = LocalLambdaContext("clicktochat-local-receive_email", timeout_s=30)
    assert app.receive_email(event, context) == {"outcomes": [outcome]}
    assert int(conv_item(conv).seq) == before and email_lines(conv) == []
