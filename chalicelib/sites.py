"""Site settings: business hours, the team's address, a display name, the widget's look and
FAQ, and the console's snippets, holding message, invitation rules and allowed origins.

All sites live in one partition (``SITE``), so the minute timer pages through them with a
cursor (``walk``). A site exists only once an admin created it (``create``: the
``infra.admin create-site`` command, deploy's first admin, ``make dev``'s demo site): a
visitor naming any other id is refused before anything is written, so strangers cannot
fill the table (and the timer's round) with sites. A created site with no settings is always
open and mails the deployment's ``TEAM_EMAIL``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from pynamodb.exceptions import PutError
from pynamodb.expressions.update import Action

from chalicelib import config, lifecycle, validate
from chalicelib.hours import Schedule, ScheduleError
from chalicelib.store import META, CursorModel, SiteModel, get_or_none, keys, update_or_old
from chalicelib.validate import SITE_ID, is_web_url


class UnknownSite(ValueError):
    """No admin created a site with this id."""


def find(site: str) -> SiteModel | None:
    """The site, or None when no admin created it (or the id is not a site id at all)."""
    if not isinstance(site, str) or not SITE_ID.match(site):
        return None
    return get_or_none(SiteModel, keys.SITES, site, consistent_read=True)


def get(site: str) -> SiteModel:
    """The site's settings, for a site known to exist (a signed-in agent's, a registered
    connection's). An id nobody created gets defaults, but nothing is written for it."""
    return find(site) or SiteModel(keys.SITES, site)


def create(site_id: str, name: str | None = None) -> SiteModel:
    """Create a site (admins only: the admin command, deploy, ``make dev``); UnknownSite's
    sibling ValueError when the id is malformed or taken."""
    if not isinstance(site_id, str) or not SITE_ID.match(site_id):
        raise ValueError("Site id: 1-40 characters, letters, digits, - or _.")
    item = SiteModel(keys.SITES, site_id, name=valid_name(name))
    try:
        item.save(condition=SiteModel.sk.does_not_exist())
    except PutError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise ValueError(f"Site {site_id!r} already exists.") from None
        raise
    return item


def ensure(site_id: str, name: str | None = None) -> SiteModel:
    """The site, created first when missing (deploy's first admin, ``make dev``): safe to repeat."""
    try:
        return create(site_id, name)
    except ValueError:
        found = find(site_id)
        if found is None:
            raise
        return found


def schedule(site: SiteModel) -> Schedule:
    return Schedule.from_dict(json.loads(site.hours)) if site.hours else Schedule.open_always()


def team_email(site: SiteModel) -> str:
    return site.team_email or config.settings().team_email


# What visitors and customers read where the company's name goes ("Your chat with ...",
# "Thank you for writing to ...", mail From names) while an admin has not named the site.
# Never the site id: that is an internal key ("default"), not a name anyone chose.
NEUTRAL_NAME = "Support"


def display_name(site: SiteModel) -> str:
    """The company's name as visitors and customers see it: the site's name, or a neutral
    word; never the site id (issue 16: "Your chat with default")."""
    return site.name or NEUTRAL_NAME


def all_sites() -> list[SiteModel]:
    """Every site. Not for the minute timer (see ``walk``): for admin tools and tests."""
    return list(SiteModel.query(keys.SITES))


WALK_CURSOR = keys.cursor_key(keys.HOUSEKEEPING)  # the last site the minute timer served
WALK_PAGE = 25


def walk(serve: Callable[[SiteModel], None], time_left: Callable[[], float]) -> list[str]:
    """Serve sites one by one, from where the last run stopped, while ``time_left()`` (in
    seconds) is positive; at most one full lap. Returns the ids served, in order.

    Why: the minute timer must finish whatever the number of sites. Each run pages through
    the ``SITE`` partition after a cursor kept in DynamoDB, stops when its time budget is
    spent and saves where it stopped, so the next run goes on from there and every site is
    served in turn (each at most once per run).
    """
    start = _cursor()
    served: list[str] = []
    try:
        for site in _lap(start):
            if time_left() <= 0:
                break
            served.append(site.id)  # served even if a step fails: one bad site must not stall the round
            serve(site)
    finally:
        if served:
            _save_cursor(served[-1])
    return served


def _lap(start: str) -> Iterator[SiteModel]:
    """Every site once: those after ``start``, then from the top up to ``start``."""
    yield from _pages("", None) if not start else _pages(start, None)
    if start:
        yield from _pages("", start)


def _pages(after: str, stop: str | None) -> Iterator[SiteModel]:
    S = SiteModel
    while True:
        page = list(S.query(keys.SITES, (S.sk > after) if after else None, consistent_read=True,
                            limit=WALK_PAGE))
        for site in page:
            if stop is not None and site.id > stop:
                return
            yield site
        if len(page) < WALK_PAGE:
            return
        after = page[-1].id


def _cursor() -> str:
    cursor = get_or_none(CursorModel, WALK_CURSOR, consistent_read=True)
    return "" if cursor is None else cursor.after or ""


def _save_cursor(after: str) -> None:
    CursorModel(WALK_CURSOR, META, after=after).save()


def public(site: SiteModel) -> dict[str, Any]:
    """The settings as admins edit them (REST, the admin command). ``name`` is what the admin
    set (None while unset, so the console's field shows it empty); ``display_name`` is what
    visitors read meanwhile."""
    return {"site": site.id, "name": site.name or None, "display_name": display_name(site),
            "team_email": team_email(site),
            "hours": schedule(site).to_dict(), "widget": widget(site), "console": console(site)}


# presence: visitors who never clicked connect too (session-scoped id, no localStorage), so
# agents see them browsing and invitation rules can reach them. Off by default.
# position: the launcher's corner. offline_message: what the widget shows while nobody can
# chat and the text of the ``no_agents`` frame; empty means the widget's own words, in the
# visitor's language. prechat_fields: what the pre-chat form (``prechat``) asks, each field
# off, optional or required.
WIDGET_DEFAULTS: dict[str, Any] = {"color": "#1f6f5c", "greeting": "", "prechat": False, "faq": [],
                                   "presence": False, "position": "right", "offline_message": "",
                                   "prechat_fields": {"name": "optional", "email": "required"}}
POSITIONS = ("left", "right")
PRECHAT_FIELDS = ("name", "email")
PRECHAT_MODES = ("off", "optional", "required")
OFFLINE_MESSAGE_MAX = 500
NAME_MAX = 100
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def widget(site: SiteModel) -> dict[str, Any]:
    """What the embedded widget needs to draw itself; public, no secrets."""
    return {**WIDGET_DEFAULTS, **(json.loads(site.widget) if site.widget else {})}


def validate_widget(doc: Any) -> dict[str, Any]:
    """Check the widget settings an admin sends; every refusal names the field."""
    if not isinstance(doc, dict) or not set(doc) <= set(WIDGET_DEFAULTS):
        raise ValueError(f"widget: an object with any of {', '.join(WIDGET_DEFAULTS)}.")
    if "color" in doc and not (isinstance(doc["color"], str) and _COLOR.match(doc["color"])):
        raise ValueError("widget.color: a color like #1f6f5c.")
    if "greeting" in doc and not (isinstance(doc["greeting"], str) and len(doc["greeting"]) <= 200):
        raise ValueError("widget.greeting: at most 200 characters.")
    for flag in ("prechat", "presence"):
        if flag in doc and not isinstance(doc[flag], bool):
            raise ValueError(f"widget.{flag}: true or false.")
    if "position" in doc and doc["position"] not in POSITIONS:
        raise ValueError("widget.position: left or right.")
    if "offline_message" in doc and not (isinstance(doc["offline_message"], str)
                                         and len(doc["offline_message"]) <= OFFLINE_MESSAGE_MAX):
        raise ValueError(f"widget.offline_message: at most {OFFLINE_MESSAGE_MAX} characters.")
    if "prechat_fields" in doc:
        fields = doc["prechat_fields"]
        if not (isinstance(fields, dict) and set(fields) <= set(PRECHAT_FIELDS)
                and all(mode in PRECHAT_MODES for mode in fields.values())):
            raise ValueError("widget.prechat_fields: {name, email}, each off, optional or required.")
    faq = doc.get("faq", [])
    if not isinstance(faq, list) or len(faq) > 50:
        raise ValueError("widget.faq: a list of at most 50 links.")
    for item in faq:
        ok = (isinstance(item, dict) and isinstance(item.get("title"), str) and 0 < len(item["title"]) <= 100
              and is_web_url(item.get("url"))
              and isinstance(item.get("keywords", []), list) and len(item.get("keywords", [])) <= 10
              and all(isinstance(k, str) and 0 < len(k) <= 30 for k in item.get("keywords", [])))
        if not ok:
            raise ValueError("widget.faq: each is {title (1-100 chars), url (http/https), "
                             "keywords (up to 10 words)}.")
    return doc


CONSOLE_DEFAULTS: dict[str, Any] = {
    "snippets": [],
    "holding": {"enabled": True, "after_seconds": 90,
                "text": "Your agent is looking into your question and will be right back."},
    "rules": [],
    "origins": [],
    # How long a visitor may be gone (every tab closed) before their chat closes as abandoned:
    # while it waits, and once an agent has it (chalicelib.lifecycle, chalicelib.abandonment).
    "abandon": dict(lifecycle.ABANDON_DEFAULTS),
    # Mail the team address each offline message (chalicelib.offline); the message waits in
    # the console's inbox either way (chalicelib.inbox), so a team working there turns it off.
    "notify_team": True,
}
_SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,29}$")
_RULE_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def console(site: SiteModel) -> dict[str, Any]:
    """Snippets, holding message, invitation rules, allowed origins and abandonment timers,
    with defaults (a partial ``abandon`` keeps the default of the timer it leaves out)."""
    doc = {**CONSOLE_DEFAULTS, **(json.loads(site.console) if site.console else {})}
    doc["abandon"] = {**lifecycle.ABANDON_DEFAULTS, **(doc.get("abandon") or {})}
    return doc


def allows_origin(site: SiteModel, origin: str | None) -> bool:
    """Whether a page on ``origin`` may use the site's visitor side ($connect, offline
    messages): any page when the site lists no origins, else only the ones listed (a request
    that names no origin is not a page on one of them)."""
    allowed = console(site)["origins"]
    return not allowed or origin in allowed


def validate_console(doc: Any) -> dict[str, Any]:
    """Check console settings an admin sends; every refusal names the field."""
    if not isinstance(doc, dict) or not set(doc) <= set(CONSOLE_DEFAULTS):
        raise ValueError(f"console: an object with any of {', '.join(CONSOLE_DEFAULTS)}.")
    snippets = doc.get("snippets", [])
    if not isinstance(snippets, list) or len(snippets) > 200:
        raise ValueError("console.snippets: a list of at most 200 snippets.")
    for item in snippets:
        if not (isinstance(item, dict) and isinstance(item.get("shortcut"), str)
                and _SHORTCUT.match(item["shortcut"]) and isinstance(item.get("text"), str)
                and 0 < len(item["text"]) <= 2000):
            raise ValueError("console.snippets: each is {shortcut (a-z, 0-9, - or _), text "
                             "(1-2000 chars)}.")
    if len({s["shortcut"] for s in snippets}) != len(snippets):
        raise ValueError("console.snippets: shortcuts must be unique.")
    holding = doc.get("holding", CONSOLE_DEFAULTS["holding"])
    if not (isinstance(holding, dict) and set(holding) <= {"enabled", "after_seconds", "text"}
            and isinstance(holding.get("enabled", True), bool)
            and isinstance(holding.get("after_seconds", 90), int)
            and 15 <= holding.get("after_seconds", 90) <= 3600
            and isinstance(holding.get("text", "x"), str) and 0 < len(holding.get("text", "x")) <= 300):
        raise ValueError("console.holding: {enabled, after_seconds (15-3600), text (1-300 chars)}.")
    rules = doc.get("rules", [])
    if not isinstance(rules, list) or len(rules) > 20:
        raise ValueError("console.rules: a list of at most 20 rules.")
    for rule in rules:
        ok = (isinstance(rule, dict) and isinstance(rule.get("id"), str) and _RULE_ID.match(rule["id"])
              and isinstance(rule.get("text"), str) and 0 < len(rule["text"]) <= 300
              and isinstance(rule.get("url_contains"), str) and 0 < len(rule["url_contains"]) <= 200
              and (("min_seconds" in rule) != ("min_pages" in rule))
              and all(isinstance(rule.get(k, 1), int) and 1 <= rule.get(k, 1) <= 3600
                      for k in ("min_seconds", "min_pages")))
        if not ok:
            raise ValueError("console.rules: each is {id, text, url_contains, and either min_seconds "
                             "(time on a matching page) or min_pages (matching pages this visit)}.")
    origins = doc.get("origins", [])
    if not (isinstance(origins, list) and len(origins) <= 50
            and all(isinstance(o, str) and _ORIGIN.match(o) for o in origins)):
        raise ValueError("console.origins: a list of origins like https://shop.example.com.")
    if "abandon" in doc:
        lifecycle.validate_abandon(doc["abandon"])
    if not isinstance(doc.get("notify_team", True), bool):
        raise ValueError("console.notify_team: true or false.")
    return doc


def valid_name(value: Any) -> str | None:
    """The company name as given (trimmed), or None to unset it (visitors then read
    ``NEUTRAL_NAME``). It goes into mail subjects and From names: one line, no control
    characters. Raises ValueError naming the field."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) > NAME_MAX or _CONTROL.search(value):
        raise ValueError(f"name: one line of at most {NAME_MAX} characters.")
    return value.strip() or None


def update(site_id: str, doc: Any) -> SiteModel:
    """Apply a settings document (any of hours, team_email, name, widget, console); raises
    ValueError naming the field. ``name`` or ``team_email`` null or empty unsets it."""
    fields = {"hours", "team_email", "name", "widget", "console"}
    if not isinstance(doc, dict) or not set(doc) <= fields or not doc:
        raise ValueError(f"Send an object with any of: {', '.join(sorted(fields))}.")
    S = SiteModel
    actions: list[Action] = []
    if "hours" in doc:
        if doc["hours"] is None:
            actions.append(S.hours.remove())
        else:
            parsed = Schedule.from_dict(doc["hours"])  # ScheduleError is a ValueError
            actions.append(S.hours.set(json.dumps(parsed.to_dict())))
    if "team_email" in doc:
        if doc["team_email"] in (None, ""):  # back to the deployment's TEAM_EMAIL
            actions.append(S.team_email.remove())
        else:
            team_email = validate.email_address(doc["team_email"])
            if team_email is None:
                raise ValueError("team_email: not a valid email address.")
            actions.append(S.team_email.set(team_email))
    if "widget" in doc:
        actions.append(S.widget.set(json.dumps(validate_widget(doc["widget"]))))
    if "console" in doc:
        actions.append(S.console.set(json.dumps(validate_console(doc["console"]))))
    if "name" in doc:
        name = valid_name(doc["name"])
        actions.append(S.name.set(name) if name else S.name.remove())
    ok, item = update_or_old(S, keys.SITES, actions, S.sk.exists(), range_key=site_id)
    if not ok or item is None:
        raise UnknownSite(f"No site {site_id!r}: an admin creates it first (python -m infra.admin "
                          f"create-site).")
    return item


__all__ = ["ScheduleError", "UnknownSite", "all_sites", "create", "ensure", "find", "get", "public",
           "schedule", "update", "valid_name", "walk"]
