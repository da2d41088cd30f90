"""The site the deployment sets up: named for the company, with a first admin.

The site and its admin are written by the app's own code (``chalicelib.sites``,
``chalicelib.agents``), so every rule they enforce applies. That code reads the table from its
environment, so it runs in a child process (``python -m infra.deploy ensure-admin``) whose
``TABLE_NAME`` is the deployed table and whose AWS is the deployment's.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.deploy import DeployError


def first_admin(root: Path, env: Mapping[str, str], table: str, *, site: str, admin_id: str,
                admin_name: str, admin_email: str | None, company: str | None) -> str | None:
    """Create an admin on the site unless it has one; the password, if one was made.

    ``env`` is the environment of the deployment's child processes (``Deployer.child_env``)."""
    password = env.get("ADMIN_PASSWORD") or secrets.token_urlsafe(15)
    child = dict(env)
    child.update({"TABLE_NAME": table, "ADMIN_PASSWORD": password})
    for key in list(child):  # the child must reach this deployment's AWS, not a local override
        if key.startswith("AWS_ENDPOINT_URL_") or key == "TOKEN_SECRET":
            del child[key]
    args = [sys.executable, "-m", "infra.deploy", "ensure-admin", "--site", site,
            "--id", admin_id, "--name", admin_name]
    if admin_email:
        args += ["--email", admin_email]
    if company:
        args += ["--company", company]
    done = subprocess.run(args, cwd=root, env=child, capture_output=True, text=True)
    if done.returncode != 0:
        raise DeployError(f"Creating the first admin failed:\n{done.stderr.strip()}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return password if report["created"] else None


def ensure_admin_here(site: str, agent_id: str, name: str, email: str | None,
                      company: str | None = None) -> dict[str, Any]:
    """In a child process whose TABLE_NAME is the deployed table: create the site unless it
    exists (sites exist only once created) and name it ``company`` when given (else it keeps
    its name), then its admin unless it already has an active one. Never prompts: the parent
    asked already (``company_name``)."""
    from chalicelib import agents, sites

    found = sites.ensure(site)
    if company and company != found.name:
        sites.update(site, {"name": company})
    if any(a["role"] == "admin" and not a["disabled"] for a in agents.team(site)):
        return {"created": False}
    agents.create(agent_id, name, os.environ["ADMIN_PASSWORD"], role="admin", email=email, site=site)
    return {"created": True, "id": agent_id}


def company_name(flag: str | None) -> str | None:
    """The company name for deploy's site: the flag, or what someone at a terminal types
    (Enter: keep the site's name, or the neutral word for a new site); None keeps it. Checked
    here, before anything is deployed, so a bad name costs nothing."""
    from chalicelib import sites
    from infra import company

    if flag is None and company.interactive():
        flag = input(f"{company.PROMPT} [keep the current name]: ")
    try:
        return sites.valid_name(flag)
    except ValueError as exc:
        raise DeployError(str(exc)) from None
