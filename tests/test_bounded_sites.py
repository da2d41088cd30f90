"""Issue 15, "bounded everywhere": sites exist only once an admin creates them, the minute
timer finishes whatever the number of sites, and sign-in cannot be turned against its owners.

Each test is a hostile input that today's product must withstand: made-up site ids on
$connect and REST, a stranger guessing an agent's password, a burst of concurrent guesses,
and more sites than one timer run can serve.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

import pytest

from chalicelib import agents, auth, sites
from chalicelib.errors import Refusal
from chalicelib.models import SiteModel
from tests.support.client import Client, rest
from tests.support.clock import Clock
from tests.support.flows import PASSWORD

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def _no_site_item(site_id: str) -> bool:
    try:
        SiteModel.get("SITE", site_id, consistent_read=True)
    except SiteModel.DoesNotExist:
        return True
    return False


def test_a_made_up_site_is_refused_at_connect_and_nothing_is_written(stack, site, dynamodb_calls):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    made_up = f"junk{secrets.token_hex(5)}"
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.gateway.ws_url}?site={made_up}", open_timeout=5)
    assert refused.value.response.status_code == 404
    assert not WRITES & set(dynamodb_calls), dynamodb_calls  # one read, nothing written
    assert _no_site_item(made_up)
    # A site an admin created (the fixture's) is let in as before.
    with connect(f"{stack.gateway.ws_url}?site={site}", open_timeout=5):
        pass


def test_rest_on_an_unknown_site_is_404_and_writes_nothing(stack, address_counters, dynamodb_calls):
    http, made_up = stack.gateway.http_url, f"junk{secrets.token_hex(5)}"
    status, body = rest(http, "POST", "/offline", {"site": made_up, "email": "v@example.org",
                                                    "text": "hello?"})
    assert status == 404 and body["code"] == "no_site"
    assert rest(http, "GET", f"/sites/{made_up}/status")[0] == 404
    assert rest(http, "GET", f"/sites/{made_up}/widget")[0] == 404
    assert not WRITES & set(dynamodb_calls), dynamodb_calls
    assert _no_site_item(made_up)


def test_sites_and_their_agents_come_only_from_an_admin(stack):
    from infra import admin

    made_up = f"junk{secrets.token_hex(5)}"
    with pytest.raises(Refusal):  # no agent (and so no admin) of a site nobody created
        agents.create(f"a{secrets.token_hex(4)}", "Nobody", PASSWORD, site=made_up)
    with pytest.raises(sites.UnknownSite):  # settings do not create a site either
        sites.update(made_up, {"name": "Sneaky"})
    assert _no_site_item(made_up)
    assert admin.main(["create-site", made_up, "--name", "Shop"]) == 0
    assert admin.main(["create-site", made_up]) == 1  # taken
    try:
        assert sites.get(made_up).name == "Shop"
    finally:
        SiteModel("SITE", made_up).delete()


def _one_window(monkeypatch: Any) -> None:
    """Freeze the app's clock: the budgets' fixed windows must not roll over mid-test."""
    Clock(monkeypatch, int(time.time() * 1000))


def _member(site: str, role: str = "agent") -> str:
    agent_id = f"a{secrets.token_hex(4)}"
    agents.create(agent_id, agent_id, PASSWORD, role=role, site=site)
    return agent_id


def test_a_strangers_guesses_do_not_lock_the_owner_out_of_their_usual_place(stack, site, monkeypatch):
    _one_window(monkeypatch)
    owner = _member(site)
    home, stranger = auth.fingerprint("198.51.100.7"), auth.fingerprint("203.0.113.66")
    assert agents.sign_in(owner, PASSWORD, home)  # the owner's usual place
    for _ in range(agents.LOGIN_FAILURES):
        assert agents.sign_in(owner, "wrong password!", stranger) is None
    with pytest.raises(agents.TooManyAttempts):  # the stranger is stopped...
        agents.sign_in(owner, "wrong password!", stranger)
    with pytest.raises(agents.TooManyAttempts):  # ...even with the right password, from there
        agents.sign_in(owner, PASSWORD, stranger)
    assert agents.sign_in(owner, PASSWORD, home)  # the owner is not

    # Guesses spread over many addresses fill the account's own (larger) ceiling: a new
    # address is refused then, but the owner's usual place still gets in.
    monkeypatch.setattr(agents, "LOGIN_FAILURES_PER_ACCOUNT", agents.LOGIN_FAILURES + 3)
    botnet = [auth.fingerprint(f"192.0.2.{n}-{secrets.token_hex(3)}") for n in range(4)]
    for source in botnet[:3]:
        assert agents.sign_in(owner, "wrong password!", source) is None
    with pytest.raises(agents.TooManyAttempts):
        agents.sign_in(owner, "wrong password!", botnet[3])
    assert agents.sign_in(owner, PASSWORD, home)


def test_admins_see_lock_events_with_a_hashed_source(stack, site, monkeypatch):
    _one_window(monkeypatch)
    boss, victim = _member(site, "admin"), _member(site)
    token = Client.login(stack.gateway.http_url, boss, PASSWORD)
    raw_ip = f"203.0.113.{secrets.randbelow(250)}"
    for _ in range(agents.LOGIN_FAILURES):
        agents.sign_in(victim, "wrong password!", auth.fingerprint(raw_ip))
    status, body = rest(stack.gateway.http_url, "GET", f"/sites/{site}/locks", token=token)
    assert status == 200
    (event,) = body["locks"]
    assert event["agent"] == victim and event["scope"] == "account+source"
    assert event["source"] == auth.fingerprint(raw_ip) and raw_ip not in str(body)
    assert abs(event["at"] - time.time() * 1000) < 60_000
    member_token = Client.login(stack.gateway.http_url, victim, PASSWORD)
    assert rest(stack.gateway.http_url, "GET", f"/sites/{site}/locks", token=member_token)[0] == 403


def test_concurrent_wrong_guesses_beyond_the_limit_never_reach_the_password_check(stack, site,
                                                                                  monkeypatch):
    _one_window(monkeypatch)
    owner = _member(site)
    checks = []
    real_check = auth.check_password

    def counted(password: str, stored: str) -> bool:
        checks.append(password)
        return real_check(password, stored)

    monkeypatch.setattr(auth, "check_password", counted)
    guesses, source = 3 * agents.LOGIN_FAILURES, auth.fingerprint(secrets.token_hex(4))
    start = threading.Barrier(guesses)
    outcomes: list[Any] = []

    def guess(n: int) -> None:
        start.wait()
        try:
            outcomes.append(agents.sign_in(owner, f"guess number {n}", source))
        except agents.TooManyAttempts as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == guesses
    assert len(checks) == agents.LOGIN_FAILURES, len(checks)
    assert sum(isinstance(o, agents.TooManyAttempts) for o in outcomes) == guesses - agents.LOGIN_FAILURES


def test_the_minute_timer_serves_many_sites_in_turn_within_its_budget(stack, new_site, app_settings):
    """More sites than one run can serve: each run stops on time and the next goes on where it
    stopped (served sites get their status recorded, so progress shows in the table)."""
    many = [new_site("many") for _ in range(80)]
    budget = 0.25
    app_settings(housekeeping_site_seconds=budget)

    def served() -> set[str]:
        return {s for s in many if SiteModel.get("SITE", s, consistent_read=True).online is not None}

    before: set[str] = set()
    runs = 0
    while before != set(many):
        runs += 1
        assert runs <= 40, f"{len(before)} of {len(many)} sites served after {runs - 1} runs"
        started = time.monotonic()
        stack.gateway.run_schedules()
        assert time.monotonic() - started < budget + 2.0  # the run ends on time
        now = served()
        assert now > before  # every run serves sites not served yet: it goes on, not over
        if runs == 1:
            assert now != set(many)  # one run could not serve them all
        before = now
