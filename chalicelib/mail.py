"""Email through SES (the sesv2 API), at most once per job key.

``send_once`` claims the key with a lease in DynamoDB, sends, then marks it sent. A
redelivered or re-queued job finds it sent and sends nothing. A send that certainly failed
releases the lease at once; a worker that died or timed out mid-send leaves the lease to
expire, and only then can another attempt go ahead (the one case where SES may have sent it
and a second email is possible).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from chalicelib import aws, clock, config, limits, telemetry
from chalicelib.hours import from_ms
from chalicelib.store import MailModel, keys, update_or_old

# Longer than the sender's Lambda timeout, so a worker killed mid-send is not overtaken.
LEASE_SECONDS = 300
KEEP_DAYS = 30


# RFC 5322 dot-atom, ASCII only: SES takes no SMTPUTF8 local part, and a control character or
# a space would be accepted here and refused there (into the dead-letter queue).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def address(value: object) -> str | None:
    """The address as SES will take it, or None when it is not one we can send to.

    The one check for every address that enters (pre-chat, offline form, transcript
    requests, agents, a site's team): a local part of printable ASCII (RFC 5322 dot-atom)
    and a domain IDNA-encoded to ASCII (``user@bücher.example`` -> ``user@xn--bcher-kva.example``).
    Anything else is refused up front rather than failing at SES after it was accepted.
    """
    if not isinstance(value, str) or len(value) > 254 or value.count("@") != 1:
        return None
    local, domain = value.split("@")
    if not 1 <= len(local) <= 64 or not _LOCAL.fullmatch(local):
        return None
    if not domain.isprintable() or any(c.isspace() for c in domain):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_domain.split(".")
    if (len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels)
            or not _TLD.fullmatch(labels[-1])):
        return None
    result = f"{local}@{ascii_domain}"
    return result if len(result) <= 254 else None


# --- budgets: mails a stranger can cause, per hour ------------------------------------------

BUDGET_WINDOW = 3600


class OverBudget(Exception):
    """An hourly mail budget is spent: refuse with ``retry_after`` (WebSocket) or 429 with
    ``Retry-After`` (REST). ``scope`` says which: network, site or deployment."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(f"mail budget of this {scope} spent")
        self.scope = scope
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return {"network": "Too many emails asked for from your network; try again later.",
                "site": "This site has sent too many emails this hour; try again later."}.get(
            self.scope, "Too many emails are being sent just now; try again later.")


def network_budget_key(ip_hash: str) -> str:
    return f"mail-net#{ip_hash}"


def spend(site: str, mails: int, network: str | None = None) -> None:
    """Count ``mails`` emails that a request will cause against the hourly budgets of its
    network (keyed hash of the source address), its site and the whole deployment; raise
    ``OverBudget`` when one is spent (then that one counted nothing).

    Why three: a per-person limit alone is one tokenless connect from a fresh identity, a
    network limit alone is beaten by many addresses, and the deployment's SES reputation is
    one for all sites. A limit of 0 turns that budget off (the local stand-in turns off the
    per-network one: every local client is 127.0.0.1).
    """
    scopes = [("network", network_budget_key(network) if network else None, config.MAIL_PER_NETWORK_PER_HOUR),
              ("site", f"mail-site#{site}", config.MAIL_PER_SITE_PER_HOUR),
              ("deployment", "mail-all", config.MAIL_PER_DEPLOYMENT_PER_HOUR)]
    for scope, key, limit in scopes:
        if key and limit > 0 and not limits.allow(key, limit, BUDGET_WINDOW, cost=mails):
            raise OverBudget(scope, limits.retry_after(BUDGET_WINDOW))


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
