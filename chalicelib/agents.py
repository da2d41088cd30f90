"""Agent accounts: creation (admin command), sign-in, and the public view of an agent."""

from __future__ import annotations

import re
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError

from chalicelib import auth, config, limits
from chalicelib.models import META, AgentModel, agent_key

AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
ROLES = ("agent", "admin")
MIN_PASSWORD = 10
# Failed sign-ins allowed per 15 minutes: per account, and (higher: offices share one) per address.
LOGIN_WINDOW, LOGIN_FAILURES, LOGIN_FAILURES_PER_ADDRESS = 900, 10, 50


class AgentError(ValueError):
    """An account request that cannot be honoured, with a reason fit to show."""


def create(agent_id: str, name: str, password: str, *, role: str = "agent",
           max_chats: int | None = None, email: str | None = None,
           site: str | None = None) -> AgentModel:
    """Create an agent account; refuses to overwrite an existing one."""
    if not AGENT_ID.match(agent_id):
        raise AgentError("Agent id: 2-40 characters, lowercase letters, digits, . _ -")
    if role not in ROLES:
        raise AgentError(f"Role must be one of {', '.join(ROLES)}.")
    if len(password) < MIN_PASSWORD:
        raise AgentError(f"Password must be at least {MIN_PASSWORD} characters.")
    chats = config.DEFAULT_MAX_CHATS if max_chats is None else max_chats
    if not 1 <= chats <= 50:
        raise AgentError("Maximum concurrent chats must be between 1 and 50.")
    agent = AgentModel(agent_key(agent_id), name=name.strip() or agent_id, email=email,
                       pw_hash=auth.hash_password(password), role=role, max_chats=chats,
                       site=site or config.DEFAULT_SITE)
    try:
        agent.save(condition=AgentModel.pk.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise AgentError(f"Agent {agent_id!r} already exists.") from None
        raise
    return agent


class TooManyAttempts(AgentError):
    """Sign-in refused for a while after repeated failures (guessing protection)."""


def sign_in(agent_id: str, password: str, source: str | None = None) -> str | None:
    """A fresh agent token for correct credentials, else None (same answer for both faults).
    Failed attempts are limited per account and per source address (a whole office signing
    in at nine behind one address is fine; guessing is not)."""
    limited = {f"login#{agent_id.strip().lower()}": LOGIN_FAILURES}
    if source:
        limited[f"login-ip#{source}"] = LOGIN_FAILURES_PER_ADDRESS
    if any(limits.blocked(k, n, LOGIN_WINDOW) for k, n in limited.items()):
        raise TooManyAttempts("Too many failed sign-in attempts; wait a few minutes.")
    token = _check(agent_id, password)
    if token is None:
        for k in limited:
            limits.record(k, LOGIN_WINDOW)
    return token


def _check(agent_id: str, password: str) -> str | None:
    try:
        agent = AgentModel.get(agent_key(agent_id.strip().lower()), META)
    except DoesNotExist:
        auth.hash_password(password)  # spend the same time so ids cannot be probed by timing
        return None
    if not agent.pw_hash or not auth.check_password(password, agent.pw_hash):
        return None
    return auth.issue(auth.AGENT, agent.id, agent.site)


def require_admin(token: str, site: str) -> AgentModel:
    """The admin agent a token speaks for, on this site; AgentError otherwise."""
    try:
        claims = auth.verify(token)
    except auth.InvalidToken:
        raise AgentError("Your sign-in has expired or is not valid.") from None
    if claims.role != auth.AGENT or claims.site != site:
        raise AgentError("Only admins of this site can do that.")
    try:
        agent = AgentModel.get(agent_key(claims.subject), META, consistent_read=True)
    except DoesNotExist:
        raise AgentError("Only admins of this site can do that.") from None
    if agent.role != "admin" or agent.site != site:
        raise AgentError("Only admins of this site can do that.")
    return agent


def public(agent: AgentModel) -> dict[str, Any]:
    """What the agent's own console may see about them."""
    return {"id": agent.id, "name": agent.name, "role": agent.role, "on_shift": agent.on_shift,
            "away": bool(agent.away),
            "max_chats": agent.max_chats, "load": agent.load,
            "conversations": sorted(agent.convs or ())}
