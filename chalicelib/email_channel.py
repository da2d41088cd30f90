"""The email channel: a conversation's reply address, threaded outgoing replies, and the
visitor's emailed answers coming back into the conversation.

Web chat and email are two channels behind one small interface (ARCHITECTURE.md,
"Channels"): *deliver* to the visitor (``offline._reply`` mails an agent's line with
``reply_address`` as Reply-To and ``thread_headers``), *receive* from the visitor
(``receive``: one raw email in, ``conversations.receive`` called, the same store and live
frames as a chat line) and the visitor's *identity* on the channel (the signed reply address
names the conversation; the sender must be the conversation's address).

Everything in an inbound email is a stranger's input. It is bounded before it is parsed
(``MAX_RAW_BYTES``, ``MAX_PARTS``, ``MAX_DEPTH``), HTML is turned into text here and never
stored as HTML, and whatever it is, ``receive`` answers with an outcome, never an exception:
a handler that raised would have SES/Lambda retry the same poison message.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr
from html.parser import HTMLParser
from typing import Any

from chalicelib import auth, clock, config, conversations, mail, validate
from chalicelib.fanout import Outbox
from chalicelib.protocol import MAX_TEXT_CHARS
from chalicelib.store import ConversationModel, conversation_key, get_or_none

log = logging.getLogger(__name__)

MAX_RAW_BYTES = 1_000_000  # a reply is text; SES would accept 40 MB, we read no more than this
MAX_PARTS = 64  # MIME parts walked
MAX_DEPTH = 8  # multipart nesting
MAX_ORIGINAL_BYTES = 16_000  # the whole email's text kept for the agent (MessageModel.original)
LOCAL_PREFIX = "reply+"
_PURPOSE = "reply"
_DAY_MS = 86_400_000
_TOKEN = re.compile(r"^([A-Za-z0-9_-]{1,32})\.([0-9]{1,7})\.([A-Za-z0-9_-]{16})$")
#: Languages whose quote headers and signatures the reply parser knows to cut.
LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pt", "sv"]
OUTCOMES = ("stored", "duplicate", "bounce", "auto_reply", "forged", "mismatch", "loop",
            "too_large", "malformed", "full", "virus", "spam", "spoofed")

# SES receiving's own checks of each email (the receipt's verdicts: PASS, FAIL, GRAY,
# PROCESSING_FAILED; https://docs.aws.amazon.com/ses/latest/dg/receiving-email-notifications-contents.html).
# A FAIL on any of these drops the email before it is read: a virus or spam, or a From that
# fails DMARC (someone else's domain forged; the sender check below trusts From).
SCREENS = (("virusVerdict", "virus"), ("spamVerdict", "spam"), ("dmarcVerdict", "spoofed"))


def screened(receipt: dict[str, Any]) -> str | None:
    """The outcome for an email SES itself judged bad, or None to go on and read it."""
    for verdict, outcome in SCREENS:
        if str((receipt.get(verdict) or {}).get("status", "")).upper() == "FAIL":
            return outcome
    return None


# --- identity: the reply address ----------------------------------------------------------


def reply_token(conv_id: str, now_ms: int | None = None) -> str:
    """``<conversation>.<last valid day>.<mac>``: short enough for a local part (64 chars)."""
    now = clock.now_ms() if now_ms is None else now_ms
    day = now // _DAY_MS + config.settings().reply_token_days
    return f"{conv_id}.{day}.{auth.short_mac(_PURPOSE, f'{conv_id}.{day}')}"


def reply_address(conv: ConversationModel, now_ms: int | None = None) -> str:
    """Where the visitor's answer to an emailed reply goes: ``reply+<token>@REPLY_DOMAIN``;
    empty when no reply domain is configured (the caller then uses the team's address)."""
    domain = config.settings().reply_domain
    if not domain:
        return ""
    return f"{LOCAL_PREFIX}{reply_token(conv.id, now_ms)}@{domain}"


def conversation_of(recipients: list[str], now_ms: int | None = None) -> str | None:
    """The conversation a valid, unexpired reply address among ``recipients`` names, or None."""
    domain = config.settings().reply_domain.lower()
    now = clock.now_ms() if now_ms is None else now_ms
    for recipient in recipients[:50]:
        _, address = parseaddr(str(recipient)[:320])
        local, _, at = address.rpartition("@")
        if not domain or at.lower() != domain or not local.lower().startswith(LOCAL_PREFIX):
            continue
        found = _TOKEN.match(local[len(LOCAL_PREFIX):])
        if found is None:
            continue
        conv_id, day, mac = found.groups()
        if auth.check_short_mac(_PURPOSE, f"{conv_id}.{day}", mac) and int(day) >= now // _DAY_MS:
            return conv_id
    return None


def thread_headers(conv: ConversationModel, seq: int) -> dict[str, str]:
    """Stable threading headers for the mail carrying line ``seq``: every mail of a
    conversation answers its root id ``<conv-<id>@domain>``, so mail clients keep one thread
    without the sender reading what was mailed before (no extra request). SES may replace the
    Message-ID with its own; the thread then rests on In-Reply-To/References, which it keeps."""
    domain = config.settings().reply_domain or _domain_of(config.settings().mail_from)
    root = f"<conv-{conv.id}@{domain}>"
    return {"Message-ID": f"<conv-{conv.id}-{seq}@{domain}>", "In-Reply-To": root, "References": root}


def _domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower() or "localhost"


# --- receiving ----------------------------------------------------------------------------


def receive(raw_mime: bytes, recipients: list[str], outbox: Outbox | None = None) -> str:
    """One inbound email (SES receiving's raw MIME and its envelope recipients) into its
    conversation. Returns one of ``OUTCOMES``; only "stored" changed the conversation
    (a "bounce" may mark the address so nothing more is mailed to it)."""
    if len(raw_mime) > MAX_RAW_BYTES:
        return "too_large"
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw_mime)
        if not _bounded(message):
            return "malformed"
        return _receive(message, raw_mime, recipients, Outbox() if outbox is None else outbox)
    except (ValueError, TypeError, LookupError, IndexError, AttributeError, RecursionError):
        # The stdlib parser is lenient, but a header class can still choke on a stranger's
        # bytes; nothing was written before these checks.
        log.warning("inbound email not parsed", exc_info=True)
        return "malformed"


def _receive(message: EmailMessage, raw_mime: bytes, recipients: list[str], outbox: Outbox) -> str:
    if _is_loop(message):
        return "loop"
    conv_id = conversation_of(recipients)
    if _is_bounce(message):
        if conv_id is not None:
            _suppress(conv_id, message)
        return "bounce"
    if _is_auto_reply(message):
        return "auto_reply"
    if conv_id is None:
        return "forged"
    sender = validate.email_address(parseaddr(str(message.get("From", "")))[1])
    whole = body_text(message)
    if sender is None or whole is None:
        return "malformed"
    text = reply_text(whole)[:MAX_TEXT_CHARS]
    if not text:
        return "malformed"
    return conversations.receive(conv_id, text, message_id=_message_key(message, raw_mime),
                                 channel="email", original=_bounded_text(whole, MAX_ORIGINAL_BYTES),
                                 sender=sender, outbox=outbox)


def _bounded(message: Message) -> bool:
    """At most ``MAX_PARTS`` parts and ``MAX_DEPTH`` levels, counted without recursion."""
    stack: list[tuple[Message, int]] = [(message, 0)]
    parts = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if parts > MAX_PARTS or depth > MAX_DEPTH:
            return False
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
    return True


def _message_key(message: Message, raw_mime: bytes) -> str:
    """A short key for the email's Message-ID (SES and SMTP retries keep it); the raw bytes'
    hash when it has none, which a redelivery of the same bytes shares."""
    ident = str(message.get("Message-ID", "") or "").strip()
    digest = hashlib.sha256(ident.encode("utf-8", "replace") if ident else raw_mime).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode("ascii")


def _our_domains() -> set[str]:
    return {d for d in (config.settings().reply_domain.lower(), _domain_of(config.settings().mail_from)) if d}


def _is_loop(message: Message) -> bool:
    """Our own mail coming back: sent From our address, or carrying a Message-ID we made."""
    sender = parseaddr(str(message.get("From", "")))[1].lower()
    if sender and sender == parseaddr(config.settings().mail_from)[1].lower():
        return True
    ident = str(message.get("Message-ID", "") or "").strip().strip("<>").lower()
    return ident.startswith("conv-") and ident.rpartition("@")[2] in _our_domains()


def _is_bounce(message: Message) -> bool:
    """A delivery status notification or a complaint (ARF), or mail from a mailer daemon."""
    if message.get_content_type() == "multipart/report":
        return True
    local = parseaddr(str(message.get("From", "")))[1].partition("@")[0].lower()
    return local in ("mailer-daemon", "postmaster") or str(message.get("Return-Path", "")).strip() == "<>"


def _is_auto_reply(message: Message) -> bool:
    """RFC 3834's Auto-Submitted, and the older conventions vacation responders still use."""
    submitted = str(message.get("Auto-Submitted", "") or "").strip().lower()
    precedence = str(message.get("Precedence", "") or "").strip().lower()
    return ((bool(submitted) and submitted != "no") or precedence in ("bulk", "junk", "list", "auto_reply")
            or any(message.get(h) is not None for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply")))


def _suppress(conv_id: str, message: Message) -> None:
    """A bounce or complaint about a conversation's address: no more mail to it. Only through
    a valid reply address, so a stranger cannot silence someone else's mail."""
    conv = get_or_none(ConversationModel, conversation_key(conv_id), consistent_read=True)
    if conv is None or not conv.email:
        return
    report = str(message.get_param("report-type", "", header="content-type") or "").lower()
    mail.suppress(conv.email, "complaint" if report == "feedback-report" else "bounce")


def body_text(message: EmailMessage) -> str | None:
    """The email's text: its text/plain part, else its HTML part as text, else None."""
    plain = message.get_body(preferencelist=("plain",))
    if plain is not None:
        return _decoded(plain)
    html = message.get_body(preferencelist=("html",))
    if html is not None:
        content = _decoded(html)
        return None if content is None else html_to_text(content)
    return None


def _decoded(part: Message) -> str | None:
    """A text part's content in its declared charset; an unknown or lying charset is read as
    UTF-8 with replacement characters rather than refused."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
    except (LookupError, UnicodeError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return content if isinstance(content, str) else None


class _TextOf(HTMLParser):
    """HTML to plain text: the data, a line break per block, scripts and styles dropped."""

    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.out).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def reply_text(whole: str) -> str:
    """What the visitor wrote, without the quoted mail and their signature (mail-parser-reply);
    the whole text when the parser finds nothing it would keep. Imported here, not at the top:
    it costs ~50 ms of import (its many languages' patterns), and every function's cold start
    imports this module through ``offline`` while only the inbound-mail handler extracts."""
    from mailparser_reply import EmailReplyParser

    try:
        replies = EmailReplyParser(languages=LANGUAGES).read(whole).replies
        latest = replies[0].body.strip() if replies else ""
    except Exception:  # a third-party parser on a stranger's text: never the handler's failure
        log.warning("reply extraction failed; the whole text is kept", exc_info=True)
        latest = ""
    return latest or whole.strip()


def _bounded_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes without splitting a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")
