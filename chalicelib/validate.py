"""Checks on values that strangers send us: email addresses, web addresses, site ids.

One home for each rule, so the pre-chat form, the offline form, transcript requests, agent
profiles and a site's settings accept exactly the same things. The rules are pure (no I/O,
no project imports): the protocol's frame schemas, the domain and the mail adapter all use
them.
"""

from __future__ import annotations

import re
from typing import Any

#: A site id as it appears in URLs, tokens and keys.
SITE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

_WEB_URL = re.compile(r"^https?://[^\s\x00-\x1f\x7f]+$")

# RFC 5322 dot-atom, ASCII only: SES takes no SMTPUTF8 local part, and a control character or
# a space would be accepted here and refused there (into the dead-letter queue).
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


def utf8_len(value: str) -> int:
    """Bytes of ``value`` in UTF-8: what DynamoDB stores and bills."""
    return len(value.encode("utf-8", errors="surrogatepass"))


def is_web_url(value: Any, limit: int = 2048) -> bool:
    """An http(s) address on one line: the one rule for every URL we store or show."""
    return (isinstance(value, str) and len(value) <= limit and utf8_len(value) <= limit
            and bool(_WEB_URL.match(value)))


def email_address(value: object) -> str | None:
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
