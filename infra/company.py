"""The company's name for a site, as ``make dev``, ``make deploy`` and ``infra.admin`` set it.

Why: visitors read the site's name in the widget, transcripts and mail ("Your chat with
Acme Shoes"); a site nobody named shows a neutral word (``sites.NEUTRAL_NAME``), never its
id. So the commands that create a site ask for the name, or take it as ``--company`` (make:
``COMPANY="Acme Shoes"``). They never block a run nobody is watching (no TTY, ``CI=true``,
tests): there they take the flag, else keep the name the site already has, else leave it
unset (the neutral word shows until an admin sets it in the console's Settings).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from chalicelib import sites
from chalicelib.models import SiteModel

PROMPT = "Company name (visitors see it in the chat and in emails)"


def interactive() -> bool:
    """Whether someone can answer a prompt: a terminal on stdin and stdout, and not CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return sys.stdin.isatty() and sys.stdout.isatty()


def choose(flag: str | None, current: str | None, *, ask: Callable[[str], str] = input,
           can_ask: bool | None = None) -> str | None:
    """The name to give the site: ``flag`` when given; otherwise, when someone is there, what
    they type (Enter keeps ``current``); otherwise ``current``. None: leave it unset.
    Raises ValueError (the field's message) for a name the site would refuse."""
    if flag is not None and flag.strip():
        return sites.valid_name(flag)
    if not (interactive() if can_ask is None else can_ask):
        return current or None
    hint = current or sites.NEUTRAL_NAME
    while True:
        try:
            typed = ask(f"{PROMPT} [{hint}]: ")
        except EOFError:
            return current or None
        try:
            return sites.valid_name(typed) or current or None
        except ValueError as exc:
            print(f"  {exc}", file=sys.stderr)


def apply(site_id: str, flag: str | None, *, ask: Callable[[str], str] = input,
          can_ask: bool | None = None) -> SiteModel:
    """Create the site when missing and give it the chosen name (see ``choose``); safe to
    repeat: a run without a flag keeps the name an admin set."""
    site = sites.ensure(site_id)
    name = choose(flag, site.name, ask=ask, can_ask=can_ask)
    if name and name != site.name:
        site = sites.update(site_id, {"name": name})
    return site
