"""Agent accounts: creation (admin command), sign-in, and the public view of an agent."""

from __future__ import annotations

import re
from typing import Any

from pynamodb.exceptions import DoesNotExist, PutError
from pynamodb.expressions.update import Action

from chalicelib import auth, config, limits, mail
from chalicelib.models import META, AgentModel, agent_key, update_or_old

AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
# agent: chats. supervisor: chats, and sees the team (overview, history, reports).
# admin: all that, and changes settings and the team.
ROLES = ("agent", "supervisor", "admin")
LEADS = ("supervisor", "admin")
MIN_PASSWORD = 10
# Failed sign-ins allowed per 15 minutes: per account, and (higher: offices share one) per address.
LOGIN_WINDOW, LOGIN_FAILURES = 900, 10
LOGIN_FAILURES_PER_ADDRESS = config.LOGIN_FAILURES_PER_ADDRESS  # 0: off


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
    if not isinstance(chats, int) or isinstance(chats, bool) or not 1 <= chats <= 50:
        raise AgentError("Maximum concurrent chats must be between 1 and 50.")
    if email is not None:
        email = mail.address(email)
        if email is None:
            raise AgentError("Email: a valid address, or leave it out.")
    if len(name) > 100:
        raise AgentError("Name: at most 100 characters.")
    site = site or config.DEFAULT_SITE
    agent = AgentModel(agent_key(agent_id), name=name.strip() or agent_id, email=email,
                       pw_hash=auth.hash_password(password), role=role, max_chats=chats,
                       site=site, team_pk=f"TEAM#{site}", team_sk=agent_id)
    try:
        agent.save(condition=AgentModel.pk.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise AgentError(f"Agent {agent_id!r} already exists.") from None
        raise
    return agent


class TooManyAttempts(AgentError):
    """Sign-in refused for a while after repeated failures (guessing protection)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds until the window ends


def sign_in(agent_id: str, password: str, source: str | None = None) -> str | None:
    """A fresh agent token for correct credentials, else None (same answer for both faults).
    Failed attempts are limited per account and per source address (a whole office signing
    in at nine behind one address is fine; guessing is not)."""
    limited = {f"login#{agent_id.strip().lower()}": LOGIN_FAILURES}
    if source and LOGIN_FAILURES_PER_ADDRESS:
        limited[f"login-ip#{source}"] = LOGIN_FAILURES_PER_ADDRESS
    if any(limits.blocked(k, n, LOGIN_WINDOW) for k, n in limited.items()):
        raise TooManyAttempts("Too many failed sign-in attempts; wait a few minutes.",
                              limits.retry_after(LOGIN_WINDOW))
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
    if not agent.pw_hash or not auth.check_password(password, agent.pw_hash) or agent.disabled:
        return None
    return auth.issue(auth.AGENT, agent.id, agent.site)


def require_member(token: str, site: str) -> AgentModel:
    """The active agent of this site a token speaks for; AgentError otherwise."""
    try:
        claims = auth.verify(token)
    except auth.InvalidToken:
        raise AgentError("Your sign-in has expired or is not valid.") from None
    if claims.role != auth.AGENT or claims.site != site:
        raise AgentError("Only agents of this site can do that.")
    try:
        agent = AgentModel.get(agent_key(claims.subject), META, consistent_read=True)
    except DoesNotExist:
        raise AgentError("Only agents of this site can do that.") from None
    if agent.site != site or agent.disabled:
        raise AgentError("Only agents of this site can do that.")
    return agent


def require_admin(token: str, site: str) -> AgentModel:
    """The admin agent a token speaks for, on this site; AgentError otherwise."""
    agent = require_member(token, site)
    if agent.role != "admin":
        raise AgentError("Only admins of this site can do that.")
    return agent


def require_lead(token: str, site: str) -> AgentModel:
    """An admin or supervisor of this site (the team's figures); AgentError otherwise."""
    agent = require_member(token, site)
    if agent.role not in LEADS:
        raise AgentError("Only admins and supervisors of this site can do that.")
    return agent


def team(site: str) -> list[dict[str, Any]]:
    """Everyone on the site's team, for the admin page and the transfer picker."""
    return [{"id": a.id, "name": a.name, "role": a.role, "email": a.email, "max_chats": a.max_chats,
             "load": a.load, "on_shift": bool(a.on_shift), "away": bool(a.away),
             "online": bool(a.conns), "disabled": bool(a.disabled)}
            for a in AgentModel.team_index.query(f"TEAM#{site}")]


def change(site: str, agent_id: str, doc: Any) -> AgentModel:
    """An admin changes an agent's name, role, capacity or password."""
    if not isinstance(doc, dict) or not doc or not set(doc) <= {"name", "role", "max_chats", "password"}:
        raise AgentError("Send any of: name, role, max_chats, password.")
    A = AgentModel
    actions: list[Action] = []
    if "name" in doc:
        if not isinstance(doc["name"], str) or not 0 < len(doc["name"].strip()) <= 100:
            raise AgentError("name: 1 to 100 characters.")
        actions.append(A.name.set(doc["name"].strip()))
    if "role" in doc:
        if doc["role"] not in ROLES:
            raise AgentError(f"role: one of {', '.join(ROLES)}.")
        actions.append(A.role.set(doc["role"]))
    if "max_chats" in doc:
        if not isinstance(doc["max_chats"], int) or not 1 <= doc["max_chats"] <= 50:
            raise AgentError("max_chats: 1 to 50.")
        actions.append(A.max_chats.set(doc["max_chats"]))
    if "password" in doc:
        if not isinstance(doc["password"], str) or len(doc["password"]) < MIN_PASSWORD:
            raise AgentError(f"password: at least {MIN_PASSWORD} characters.")
        actions.append(A.pw_hash.set(auth.hash_password(doc["password"])))
    ok, agent = update_or_old(A, agent_key(agent_id), actions, A.pk.exists() & (A.site == site))
    if not ok or agent is None:
        raise AgentError("No such agent on this site.")
    return agent


def disable(site: str, agent_id: str) -> list[str]:
    """Revoke an agent: no sign-in, no new chats; returns their open connections to close."""
    A = AgentModel
    ok, agent = update_or_old(A, agent_key(agent_id),
                              [A.disabled.set(True), A.on_shift.set(False), A.s_pk.remove(), A.s_sk.remove()],
                              A.pk.exists() & (A.site == site))
    if not ok or agent is None:
        raise AgentError("No such agent on this site.")
    return sorted(agent.conns or ())


def public(agent: AgentModel) -> dict[str, Any]:
    """What the agent's own console may see about them."""
    return {"id": agent.id, "name": agent.name, "role": agent.role, "on_shift": agent.on_shift,
            "away": bool(agent.away),
            "max_chats": agent.max_chats, "load": agent.load,
            "conversations": sorted(agent.convs or ())}
