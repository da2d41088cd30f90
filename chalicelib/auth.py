"""Credentials: signed, expiring tokens for visitors and agents, and slow password hashes.

Tokens are ``base64url(json claims) "." base64url(HMAC-SHA256)``: small enough for a query
string (browsers cannot set headers on a WebSocket handshake), verifiable without a
database read, and signed with a secret the deployment owns. Standard library only, so the
Lambda package carries no crypto dependency.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from chalicelib import config

VISITOR = "visitor"
AGENT = "agent"

# scrypt cost: ~50 ms per check on a Lambda vCPU makes offline guessing expensive while a
# sign-in stays instant for a person. Parameters are stored with each hash so they can rise.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


class InvalidToken(Exception):
    """The token is malformed, tampered with, expired, or for another purpose."""


@dataclass(frozen=True)
class Claims:
    """Who a token speaks for."""

    role: str
    subject: str
    site: str
    expires: int


@dataclass(frozen=True)
class Caller:
    """The identity behind a connection."""

    connection_id: str
    role: str
    subject: str
    site: str
    ip_hash: str | None = None  # keyed hash of the source address (per-network limits)

    @property
    def tag(self) -> str:
        """The value stored in a conversation's ``conns`` map for this caller."""
        return f"{self.role[0]}:{self.subject}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: str) -> str:
    return _b64(hmac.new(config.token_secret(), payload.encode("ascii"), hashlib.sha256).digest())


def issue(role: str, subject: str, site: str, ttl: int | None = None, now: float | None = None) -> str:
    """Sign a token for ``subject`` acting as ``role`` on ``site``."""
    lifetime = ttl if ttl is not None else (
        config.settings().agent_token_ttl if role == AGENT else config.settings().visitor_token_ttl)
    issued = int(now if now is not None else time.time())
    claims = {"r": role, "s": subject, "w": site, "e": issued + lifetime}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_mac(payload)}"


def verify(token: str, now: float | None = None) -> Claims:
    """Return the claims of a valid token or raise InvalidToken; constant-time comparison."""
    # Tokens are ASCII by construction; anything else is refused here, before hmac (whose
    # compare_digest raises TypeError on non-ASCII text) could turn a stranger's token into a 500.
    if not isinstance(token, str) or not token.isascii() or token.count(".") != 1 or len(token) > 1024:
        raise InvalidToken("malformed token")
    payload, mac = token.split(".")
    if not hmac.compare_digest(mac, _mac(payload)):
        raise InvalidToken("bad signature")
    try:
        doc = json.loads(_unb64(payload))
        claims = Claims(role=str(doc["r"]), subject=str(doc["s"]), site=str(doc["w"]),
                        expires=int(doc["e"]))
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed claims") from None
    if claims.role not in (VISITOR, AGENT):
        raise InvalidToken("unknown role")
    if claims.expires <= int(now if now is not None else time.time()):
        raise InvalidToken("expired")
    return claims


def sign(purpose: str, doc: dict[str, str], ttl: int, now: float | None = None) -> str:
    """A signed, expiring token for one ``purpose`` other than signing in (a link in an email):
    same format and key as ``issue``, but the purpose is part of what is signed, so it can
    never pass for a visitor or agent token, nor for another purpose's token."""
    claims = {**doc, "e": int(now if now is not None else time.time()) + ttl}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_mac(f'{purpose}:{payload}')}"


def unsign(purpose: str, token: str, now: float | None = None) -> dict[str, str]:
    """The document of a valid ``sign``ed token for ``purpose``, or raise InvalidToken."""
    if not isinstance(token, str) or token.count(".") != 1 or len(token) > 1024 or not token.isascii():
        raise InvalidToken("malformed token")
    payload, mac = token.split(".")
    if not hmac.compare_digest(mac, _mac(f"{purpose}:{payload}")):
        raise InvalidToken("bad signature")
    try:
        doc = json.loads(_unb64(payload))
        expires = int(doc.pop("e"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidToken("malformed claims") from None
    if expires <= int(now if now is not None else time.time()):
        raise InvalidToken("expired")
    return {str(k): str(v) for k, v in doc.items()}


def short_mac(purpose: str, text: str, chars: int = 16) -> str:
    """A truncated MAC (``chars`` base64url characters: 96 bits by default) for a place a full
    ``sign`` token does not fit: an email address's local part holds 64 characters in all."""
    return _mac(f"{purpose}:{text}")[:chars]


def check_short_mac(purpose: str, text: str, mac: str, chars: int = 16) -> bool:
    """Constant-time check of a ``short_mac``; False (never an error) on any stranger's text."""
    if not isinstance(mac, str) or not mac.isascii() or len(mac) != chars or not text.isascii():
        return False
    return hmac.compare_digest(mac, short_mac(purpose, text, chars))


def hash_password(password: str) -> str:
    """A salted scrypt hash, self-describing so the cost can be raised later."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, maxmem=64 * 1024 * 1024)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; never raises on a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=_unb64(salt), n=int(n),
                                   r=int(r), p=int(p), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, _unb64(digest))


def fingerprint(value: str) -> str:
    """A keyed, irreversible stand-in for a value we must count but not keep (an IP)."""
    return _mac(f"fingerprint:{value}")[:22]


def new_id(nbytes: int = 12) -> str:
    """A random URL-safe identifier (conversations, visitors)."""
    return secrets.token_urlsafe(nbytes)
