"""Email through SES (the sesv2 API), at most once per job key.

``send_once`` claims the key with a lease in DynamoDB, sends, then marks it sent. A
redelivered or re-queued job finds it sent and sends nothing. A send that certainly failed
releases the lease at once; a worker that died or timed out mid-send leaves the lease to
expire, and only then can another attempt go ahead (the one case where SES may have sent it
and a second email is possible).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from chalicelib import aws, clock, config, telemetry
from chalicelib.hours import from_ms
from chalicelib.models import MailModel, update_or_old

# Longer than the sender's Lambda timeout, so a worker killed mid-send is not overtaken.
LEASE_SECONDS = 300
KEEP_DAYS = 30


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    reply_to: str | None = None


class Busy(Exception):
    """Another worker holds the lease for this email; retry later."""


@functools.cache
def _client() -> Any:
    return aws.client("sesv2")


def send(email: Email) -> str:
    """Send one plain-text email; returns SES's message id."""
    kwargs: dict[str, Any] = {
        "FromEmailAddress": config.MAIL_FROM,
        "Destination": {"ToAddresses": [email.to]},
        "Content": {"Simple": {"Subject": {"Data": email.subject, "Charset": "UTF-8"},
                               "Body": {"Text": {"Data": email.text, "Charset": "UTF-8"}}}},
    }
    if email.reply_to:
        kwargs["ReplyToAddresses"] = [email.reply_to]
    return str(_client().send_email(**kwargs).get("MessageId", ""))


def send_once(key: str, email: Email) -> bool:
    """Send ``email`` unless ``key`` was sent already; True when this call sent it."""
    M = MailModel
    now = clock.now_ms()
    ok, old = update_or_old(
        M, f"MAIL#{key}", [M.lease_until.set(now + LEASE_SECONDS * 1000), M.attempts.add(1)],
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
        MailModel(f"MAIL#{key}").update(actions=[M.lease_until.remove()])
        raise
    except Exception:
        telemetry.count("MailFailures")
        raise
    telemetry.count("MailSent")
    # Any other failure (a read timeout: SES may have sent it) keeps the lease, so a retry
    # waits for it to expire; that rare unknown outcome is the only way to a second email.
    MailModel(f"MAIL#{key}").update(actions=[
        M.sent_at.set(clock.now_ms()), M.provider_id.set(provider_id), M.lease_until.remove(),
        M.ttl.set(from_ms(clock.now_ms()) + timedelta(days=KEEP_DAYS))])
    return True
