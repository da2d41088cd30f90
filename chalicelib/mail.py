"""Email through SES (the sesv2 API), at most once per job key; and the mail jobs the queue
carries, one typed definition each.

``send_once`` claims the key with a lease in DynamoDB, sends, then marks it sent. A
redelivered or re-queued job finds it sent and sends nothing. A send that certainly failed
releases the lease at once; a worker that died or timed out mid-send leaves the lease to
expire, and only then can another attempt go ahead (the one case where SES may have sent it
and a second email is possible).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
from dataclasses import MISSING, dataclass, fields
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formataddr, parseaddr
from typing import Any, ClassVar

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from chalicelib import aws, clock, config, telemetry
from chalicelib.hours import from_ms
from chalicelib.store import MailModel, get_or_none, keys, update_or_old

log = logging.getLogger(__name__)

# Longer than the sender's Lambda timeout, so a worker killed mid-send is not overtaken.
LEASE_SECONDS = 300
KEEP_DAYS = 30


# --- mail jobs: one queue record is one job ---------------------------------------------
#
# A job names what to mail, never the mail itself: the consumer (``offline.process``) reads
# the record when the job runs, so an erased record cancels its queued mail. On the queue a
# job is ``{"kind": ..., <fields in order>}`` in compact JSON, an optional field left out when
# it is None. Records queued before these types existed are exactly that: they stay readable.


class _Job:
    KIND: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The record's JSON object; an optional field without a value is left out."""
        return {"kind": self.KIND, **{f.name: getattr(self, f.name) for f in fields(self)  # type: ignore[arg-type]
                                      if f.default is MISSING or getattr(self, f.name)}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Any:
        """The job in ``doc``; a required field missing raises (the record is retried, then
        dead-lettered), an optional one is None."""
        return cls(**{f.name: _READ[str(f.type)](doc[f.name] if f.default is MISSING else doc.get(f.name))
                      for f in fields(cls)})  # type: ignore[arg-type]


# How each field type is read back (as the string dispatcher before these types read them).
_READ: dict[str, Any] = {"str": str, "int": int, "str | None": lambda value: str(value) if value else None}


@dataclass(frozen=True)
class OfflineJob(_Job):
    """An offline message: the team's email and the visitor's receipt."""

    KIND = "offline"
    id: str


@dataclass(frozen=True)
class DigestJob(_Job):
    """The team's digest of a waiting chat's unanswered lines after ``after`` up to ``upto``."""

    KIND = "digest"
    conv: str
    after: int
    upto: int


@dataclass(frozen=True)
class ReplyJob(_Job):
    """An agent's reply, by email, to a visitor who is no longer connected."""

    KIND = "reply"
    conv: str
    seq: int


@dataclass(frozen=True)
class WaitingByEmailJob(_Job):
    """Tell the team a visitor waits for an answer by email (``unattended``)."""

    KIND = "waiting_by_email"
    conv: str


@dataclass(frozen=True)
class TranscriptJob(_Job):
    """The transcript, for the visitor: at close, or one request (``rid``) of ``transcripts``."""

    KIND = "transcript"
    conv: str
    rid: str | None = None


@dataclass(frozen=True)
class ConfirmJob(_Job):
    """The confirmation link for one transcript request's address."""

    KIND = "confirm"
    conv: str
    rid: str | None = None


Job = OfflineJob | DigestJob | ReplyJob | WaitingByEmailJob | TranscriptJob | ConfirmJob
#: kind -> job type: every job the queue may carry.
JOBS: dict[str, type[Job]] = {cls.KIND: cls for cls in (
    OfflineJob, DigestJob, ReplyJob, WaitingByEmailJob, TranscriptJob, ConfirmJob)}


def encode(job: Job) -> str:
    """The queue record's body."""
    return json.dumps(job.to_dict(), separators=(",", ":"))


def decode(body: str) -> Job:
    """The job in a queue record's body; ValueError for a kind nobody handles."""
    doc = json.loads(body)
    kind = doc.get("kind")
    if kind not in JOBS:
        raise ValueError(f"unknown mail job {kind!r}")
    job: Job = JOBS[kind].from_dict(doc)
    return job


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    reply_to: str | None = None
    # Threading headers (Message-ID, In-Reply-To, References: email_channel.thread_headers).
    # SES v2's Simple content cannot carry them, so an email with headers goes as Raw MIME.
    headers: tuple[tuple[str, str], ...] = ()


class Busy(Exception):
    """Another worker holds the lease for this email; retry later."""


@functools.cache
def _client() -> Any:
    return aws.client("sesv2")


def send(email: Email) -> str:
    """Send one plain-text email; returns SES's message id."""
    kwargs: dict[str, Any] = {
        "FromEmailAddress": config.settings().mail_from,
        "Destination": {"ToAddresses": [email.to]},
        "Content": {"Simple": {"Subject": {"Data": email.subject, "Charset": "UTF-8"},
                               "Body": {"Text": {"Data": email.text, "Charset": "UTF-8"}}}},
    }
    if email.headers:
        kwargs["Content"] = {"Raw": {"Data": raw(email)}}
    elif email.reply_to:
        kwargs["ReplyToAddresses"] = [email.reply_to]
    return str(_client().send_email(**kwargs).get("MessageId", ""))


def raw(email: Email) -> bytes:
    """The email as MIME bytes (for SES's Raw content): the only way to set Message-ID and
    the threading headers. The stdlib builds it, so encoding (UTF-8, folding) is standard."""
    message = EmailMessage()
    name, address = parseaddr(config.settings().mail_from)
    message["From"] = formataddr((name, address)) if name else address
    message["To"] = email.to
    if email.reply_to:
        message["Reply-To"] = email.reply_to
    message["Subject"] = email.subject
    for header, value in email.headers:
        message[header] = value
    message.set_content(email.text)
    return message.as_bytes()


# --- receiving: the raw email SES stored ---------------------------------------------------


@functools.cache
def _s3() -> Any:
    return aws.client("s3")


def received(message_id: str, limit: int) -> bytes:
    """The raw MIME SES receiving stored for ``message_id``, at most ``limit`` + 1 bytes (a
    ranged read: a huge email is recognised as too large without being downloaded)."""
    settings = config.settings()
    answer = _s3().get_object(Bucket=settings.inbound_bucket, Key=settings.inbound_prefix + message_id,
                              Range=f"bytes=0-{limit}")
    return bytes(answer["Body"].read(limit + 1))


# --- addresses that bounced or complained: nothing more goes to them ------------------------


def _suppression_key(address: str) -> str:
    """A keyed hash, not the address: the list outlives conversations and erasure requests."""
    mac = hmac.new(config.token_secret(), f"suppressed:{address.strip().lower()}".encode(), hashlib.sha256)
    return keys.mail_key("suppressed:" + base64.urlsafe_b64encode(mac.digest()[:16]).decode().rstrip("="))


def suppress(address: str, reason: str) -> None:
    """Never mail ``address`` again (a bounce or a complaint came back from it)."""
    MailModel(_suppression_key(address), suppressed=reason).save()


def suppressed(address: str) -> bool:
    item = get_or_none(MailModel, _suppression_key(address), consistent_read=True)
    return item is not None and bool(item.suppressed)


def send_once(key: str, email: Email) -> bool:
    """Send ``email`` unless ``key`` was sent already, or its address bounced or complained;
    True when this call sent it."""
    if suppressed(email.to):
        log.info("mail not sent: the address bounced or complained before")
        telemetry.count("MailSuppressed")
        return False
    M = MailModel
    now = clock.now_ms()
    ok, old = update_or_old(
        M, keys.mail_key(key), [M.lease_until.set(now + LEASE_SECONDS * 1000), M.attempts.add(1)],
        M.sent_at.does_not_exist() & (M.lease_until.does_not_exist() | (M.lease_until < now)))
    if not ok:
        if old is not None and old.sent_at is not None:
            return False
        raise Busy(key)
    try:
        provider_id = send(email)
    except (ClientError, EndpointConnectionError, ConnectTimeoutError):
        # SES refused it or was unreachable: certainly not sent, so retry at once.
        telemetry.count("MailFailures")
        MailModel(keys.mail_key(key)).update(actions=[M.lease_until.remove()])
        raise
    except Exception:
        telemetry.count("MailFailures")
        raise
    telemetry.count("MailSent")
    # Any other failure (a read timeout: SES may have sent it) keeps the lease, so a retry
    # waits for it to expire; that rare unknown outcome is the only way to a second email.
    MailModel(keys.mail_key(key)).update(actions=[
        M.sent_at.set(clock.now_ms()), M.provider_id.set(provider_id), M.lease_until.remove(),
        M.ttl.set(from_ms(clock.now_ms()) + timedelta(days=KEEP_DAYS))])
    return True
