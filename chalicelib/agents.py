"""Agent accounts: creation (admin command), sign-in, and the public view of an agent."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pynamodb.exceptions import PutError
from pynamodb.expressions.update import Action

from chalicelib import auth, clock, config, limits, sites, validate
from chalicelib.errors import BAD_REQUEST, FORBIDDEN, NOT_FOUND, RATE_LIMITED, Refusal
from chalicelib.store import (
    META,
    AgentModel,
    CounterModel,
    LockEventModel,
    agent_key,
    get_or_none,
    keys,
    update_or_old,
)

AGENT_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
# agent: chats. supervisor: chats, and sees the team (overview, history, reports).
# admin: all that, and changes settings and the team.
ROLES = ("agent", "supervisor", "admin")
LEADS = ("supervisor", "admin")
MIN_PASSWORD = 10
# Failed sign-ins allowed per 15-minute window (docs/resilience.md): per account from one
# address; per address, whatever the accounts (an office shares one); and a much larger
# ceiling per account from every address together, which addresses the account signed in
# from before are exempt from, so strangers cannot lock an agent out of their usual place.
# The per-address budget is the setting login_failures_per_address (0: off; the local stand-in
# turns it off, every local client being 127.0.0.1).
LOGIN_FAILURES = 10  # per window of limits.LOGIN_FAILURES_PER_ACCOUNT_AND_SOURCE
LOGIN_FAILURES_PER_ACCOUNT = 500
KNOWN_SOURCE_DAYS = 30  # an address an account signed in from is "usual" this long
LOCK_EVENTS_KEPT_DAYS, LOCK_EVENTS_LISTED = 30, 50


def create(agent_id: str, name: str, password: str, *, role: str = "agent",
           max_chats: int | None = None, email: str | None = None,
           site: str | None = None) -> AgentModel:
    """Create an agent account; refuses to overwrite an existing one."""
    if not AGENT_ID.match(agent_id):
        raise Refusal(BAD_REQUEST, "Agent id: 2-40 characters, lowercase letters, digits, . _ -")
    if role not in ROLES:
        raise Refusal(BAD_REQUEST, f"Role must be one of {', '.join(ROLES)}.")
    if len(password) < MIN_PASSWORD:
        raise Refusal(BAD_REQUEST, f"Password must be at least {MIN_PASSWORD} characters.")
    chats = config.settings().default_max_chats if max_chats is None else max_chats
    if not isinstance(chats, int) or isinstance(chats, bool) or not 1 <= chats <= 50:
        raise Refusal(BAD_REQUEST, "Maximum concurrent chats must be between 1 and 50.")
    if email is not None:
        email = validate.email_address(email)
        if email is None:
            raise Refusal(BAD_REQUEST, "Email: a valid address, or leave it out.")
    if len(name) > 100:
        raise Refusal(BAD_REQUEST, "Name: at most 100 characters.")
    site = site or config.settings().default_site
    if sites.find(site) is None:  # agents join sites an admin created (sites.create)
        raise Refusal(BAD_REQUEST, f"No site {site!r}: create it first (python -m infra.admin create-site).")
    agent = AgentModel(agent_key(agent_id), name=name.strip() or agent_id, email=email,
                       pw_hash=auth.hash_password(password), role=role, max_chats=chats,
                       site=site, team_pk=keys.team_key(site), team_sk=agent_id)
    try:
        agent.save(condition=AgentModel.pk.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise Refusal(BAD_REQUEST, f"Agent {agent_id!r} already exists.") from None
        raise
    return agent


class TooManyAttempts(Refusal):
    """Sign-in refused for a while after repeated failures (guessing protection): a
    ``rate_limited`` refusal, its own type so callers and tests can tell it from the others."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(RATE_LIMITED, message, retry_after=retry_after)  # seconds to wait


def sign_in(agent_id: str, password: str, source: str | None = None) -> str | None:
    """A fresh agent token for correct credentials, else None (same answer for both faults).

    ``source`` is a keyed hash of the caller's address (``auth.fingerprint``). Every attempt
    is counted before the password is checked, each counter by one conditional UpdateItem, so
    concurrent guesses beyond a limit never reach the check; a correct password gives its
    counts back, so only failures use up the budget (an office signing in at nine behind one
    address is fine). The limits are per (account, address), per address, and a much larger
    one per account that the account's usual addresses are exempt from: a stranger's guesses
    lock out the stranger, not the agent. A limit that fills up is recorded for the admins
    (``lock_events``)."""
    account, source = agent_id.strip().lower(), source or "unknown"
    per_source = config.settings().login_failures_per_address
    budgets = [("account+source", limits.LOGIN_FAILURES_PER_ACCOUNT_AND_SOURCE, f"{account}#{source}",
                LOGIN_FAILURES),
               ("source", limits.LOGIN_FAILURES_PER_SOURCE, source, per_source),
               ("account", limits.LOGIN_FAILURES_PER_ACCOUNT, account, LOGIN_FAILURES_PER_ACCOUNT)]
    budgets = [b for b in budgets if b[3]]  # a budget of 0 is off
    taken: list[tuple[limits.Limit, str]] = []
    filled: list[str] = []
    for scope, budget, subject, limit in budgets:
        count = budget.take(subject, limit)
        if count is None and scope == "account" and _known_source(account, source):
            continue  # the account is under attack from elsewhere; its usual place still gets in
        if count is None:
            for done, whose in taken:  # a refused attempt is no guess: it costs the other budgets nothing
                done.give_back(whose)
            raise TooManyAttempts("Too many failed sign-in attempts; wait a few minutes.",
                                  budget.retry_after())
        taken.append((budget, subject))
        if count == limit:  # this attempt fills the window: from now on, refusals
            filled.append(scope)
    token = _check(agent_id, password)
    for scope in filled if token is None else ():
        _record_lock(account, scope, source)
    if token is not None:
        for done, whose in taken:
            done.give_back(whose)
        _remember_source(account, source)
    return token


def _known_source(account: str, source: str) -> bool:
    return get_or_none(CounterModel, keys.known_source_key(account, source), consistent_read=True) is not None


def _remember_source(account: str, source: str) -> None:
    """The account signed in from here: exempt from its account-wide ceiling for a while."""
    CounterModel(keys.known_source_key(account, source), META, hits=1,
                 ttl=timedelta(days=KNOWN_SOURCE_DAYS)).save()


def _record_lock(account: str, scope: str, source: str) -> None:
    """Tell the account's site admins a sign-in limit filled up (at most one event per limit
    and window, so a flood of guesses writes no more). Ids that are no account have no site
    and leave no event."""
    agent = get_or_none(AgentModel, agent_key(account))
    if agent is None:
        return
    now = clock.now_ms()
    LockEventModel(keys.locks_key(agent.site), keys.lock_sk(now, scope, account), at=now, agent=account,
                   scope=scope, source=None if scope == "account" else source,
                   ttl=timedelta(days=LOCK_EVENTS_KEPT_DAYS)).save()


def lock_events(site: str) -> list[dict[str, Any]]:
    """The site's most recent sign-in lock events, newest first (admins: who was locked out,
    when, and a hash of the address the guesses came from)."""
    return [{"at": int(e.at), "agent": e.agent, "scope": e.scope, "source": e.source}
            for e in LockEventModel.query(keys.locks_key(site), scan_index_forward=False,
                                          limit=LOCK_EVENTS_LISTED)]


def _check(agent_id: str, password: str) -> str | None:
    agent = get_or_none(AgentModel, agent_key(agent_id.strip().lower()))
    if agent is None:
        auth.hash_password(password)  # spend the same time so ids cannot be probed by timing
        return None
    if not agent.pw_hash or not auth.check_password(password, agent.pw_hash) or agent.disabled:
        return None
    return auth.issue(auth.AGENT, agent.id, agent.site)


def require_member(token: str, site: str) -> AgentModel:
    """The active agent of this site a token speaks for; a ``forbidden`` Refusal otherwise."""
    try:
        claims = auth.verify(token)
    except auth.InvalidToken:
        raise Refusal(FORBIDDEN, "Your sign-in has expired or is not valid.") from None
    if claims.role != auth.AGENT or claims.site != site:
        raise Refusal(FORBIDDEN, "Only agents of this site can do that.")
    agent = get_or_none(AgentModel, agent_key(claims.subject), consistent_read=True)
    if agent is None or agent.site != site or agent.disabled:
        raise Refusal(FORBIDDEN, "Only agents of this site can do that.")
    return agent


def require_admin(token: str, site: str) -> AgentModel:
    """The admin agent a token speaks for, on this site; a ``forbidden`` Refusal otherwise."""
    agent = require_member(token, site)
    if agent.role != "admin":
        raise Refusal(FORBIDDEN, "Only admins of this site can do that.")
    return agent


def require_lead(token: str, site: str) -> AgentModel:
    """An admin or supervisor of this site (the team's figures); a ``forbidden`` Refusal otherwise."""
    agent = require_member(token, site)
    if agent.role not in LEADS:
        raise Refusal(FORBIDDEN, "Only admins and supervisors of this site can do that.")
    return agent


def team(site: str) -> list[dict[str, Any]]:
    """Everyone on the site's team, for the admin page and the transfer picker."""
    return [{"id": a.id, "name": a.name, "role": a.role, "email": a.email, "max_chats": a.max_chats,
             "load": a.load, "on_shift": bool(a.on_shift), "away": bool(a.away),
             "online": bool(a.conns), "disabled": bool(a.disabled)}
            for a in AgentModel.team_index.query(keys.team_key(site))]


def change(site: str, agent_id: str, doc: Any) -> AgentModel:
    """An admin changes an agent's name, role, capacity or password."""
    if not isinstance(doc, dict) or not doc or not set(doc) <= {"name", "role", "max_chats", "password"}:
        raise Refusal(BAD_REQUEST, "Send any of: name, role, max_chats, password.")
    A = AgentModel
    actions: list[Action] = []
    if "name" in doc:
        if not isinstance(doc["name"], str) or not 0 < len(doc["name"].strip()) <= 100:
            raise Refusal(BAD_REQUEST, "name: 1 to 100 characters.")
        actions.append(A.name.set(doc["name"].strip()))
    if "role" in doc:
        if doc["role"] not in ROLES:
            raise Refusal(BAD_REQUEST, f"role: one of {', '.join(ROLES)}.")
        actions.append(A.role.set(doc["role"]))
    if "max_chats" in doc:
        if not isinstance(doc["max_chats"], int) or not 1 <= doc["max_chats"] <= 50:
            raise Refusal(BAD_REQUEST, "max_chats: 1 to 50.")
        actions.append(A.max_chats.set(doc["max_chats"]))
    if "password" in doc:
        if not isinstance(doc["password"], str) or len(doc["password"]) < MIN_PASSWORD:
            raise Refusal(BAD_REQUEST, f"password: at least {MIN_PASSWORD} characters.")
        actions.append(A.pw_hash.set(auth.hash_password(doc["password"])))
    ok, agent = update_or_old(A, agent_key(agent_id), actions, A.pk.exists() & (A.site == site))
    if not ok or agent is None:
        raise Refusal(BAD_REQUEST, "No such agent on this site.")
    return agent


def disable(site: str, agent_id: str) -> list[str]:
    """Revoke an agent: no sign-in, no new chats; returns their open connections to close."""
    A = AgentModel
    ok, agent = update_or_old(A, agent_key(agent_id),
                              [A.disabled.set(True), A.on_shift.set(False), A.s_pk.remove(), A.s_sk.remove()],
                              A.pk.exists() & (A.site == site))
    if not ok or agent is None:
        raise Refusal(NOT_FOUND, "No such agent on this site.")
    return sorted(agent.conns or ())


def public(agent: AgentModel) -> dict[str, Any]:
    """What the agent's own console may see about them."""
    return {"id": agent.id, "name": agent.name, "role": agent.role, "on_shift": agent.on_shift,
            "away": bool(agent.away),
            "max_chats": agent.max_chats, "load": agent.load,
            "conversations": sorted(agent.convs or ())}
