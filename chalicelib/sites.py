"""Site settings: business hours, the team's address, a display name.

All sites live in one partition (``SITE``), so the scheduled status check lists them with
one Query. A site nobody configured has no item: it is always open, mail goes to the
deployment's ``TEAM_EMAIL``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pynamodb.expressions.update import Action

from chalicelib import config
from chalicelib.hours import Schedule, ScheduleError
from chalicelib.models import SiteModel
from chalicelib.protocol import is_web_url

EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


def valid_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and bool(EMAIL.match(value))


def get(site: str) -> SiteModel:
    """The site's settings, or defaults when it was never configured."""
    try:
        return SiteModel.get("SITE", site, consistent_read=True)
    except SiteModel.DoesNotExist:
        return SiteModel("SITE", site)


def schedule(site: SiteModel) -> Schedule:
    return Schedule.from_dict(json.loads(site.hours)) if site.hours else Schedule.open_always()


def team_email(site: SiteModel) -> str:
    return site.team_email or config.TEAM_EMAIL


def display_name(site: SiteModel) -> str:
    return site.name or site.id


def all_sites() -> list[SiteModel]:
    return list(SiteModel.query("SITE"))


def public(site: SiteModel) -> dict[str, Any]:
    return {"site": site.id, "name": display_name(site), "team_email": team_email(site),
            "hours": schedule(site).to_dict(), "widget": widget(site)}


WIDGET_DEFAULTS: dict[str, Any] = {"color": "#1f6f5c", "greeting": "", "prechat": False, "faq": []}
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


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
    if "prechat" in doc and not isinstance(doc["prechat"], bool):
        raise ValueError("widget.prechat: true or false.")
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


def update(site_id: str, doc: Any) -> SiteModel:
    """Apply a settings document (any of hours, team_email, name); raises ValueError."""
    if not isinstance(doc, dict) or not set(doc) <= {"hours", "team_email", "name", "widget"} or not doc:
        raise ValueError("Send an object with any of: hours, team_email, name, widget.")
    S = SiteModel
    actions: list[Action] = []
    if "hours" in doc:
        if doc["hours"] is None:
            actions.append(S.hours.remove())
        else:
            parsed = Schedule.from_dict(doc["hours"])  # ScheduleError is a ValueError
            actions.append(S.hours.set(json.dumps(parsed.to_dict())))
    if "team_email" in doc:
        if not valid_email(doc["team_email"]):
            raise ValueError("team_email: not a valid email address.")
        actions.append(S.team_email.set(doc["team_email"]))
    if "widget" in doc:
        actions.append(S.widget.set(json.dumps(validate_widget(doc["widget"]))))
    if "name" in doc:
        if not isinstance(doc["name"], str) or not 0 < len(doc["name"]) <= 100:
            raise ValueError("name: 1 to 100 characters.")
        actions.append(S.name.set(doc["name"]))
    item = SiteModel("SITE", site_id)
    item.update(actions=actions)
    return item


__all__ = ["ScheduleError", "all_sites", "get", "public", "schedule", "update", "valid_email"]
