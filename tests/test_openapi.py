"""The REST API against its description: docs/openapi.yaml lists exactly app.py's routes,
and schemathesis throws generated requests at every operation of the local stand-in.

Checks: no server error (5xx), every status code, content type, header and body as the
description says. The bearer token is a real admin's, and path parameters are pointed at
the test's own site for the signed-in routes, so the generated bodies reach the validation
and storage code rather than stopping at the authorization check (that check has its own
matrix in test_authorization.py). Runs are derandomised and bounded.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import app
from chalicelib import agents, sites
from tests.support.client import Client
from tests.support.flows import PASSWORD, kept_address_counters

OPENAPI = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
PUBLIC_SITE_ROUTES = ("/sites/{site}/status", "/sites/{site}/widget")

schema = schemathesis.openapi.from_path(OPENAPI)


def test_the_description_lists_exactly_the_apps_routes():
    described = yaml.safe_load(OPENAPI.read_text())["paths"]
    documented = {(path, method.upper()) for path, ops in described.items()
                  for method in ops if method != "parameters"}
    routed = {(path, method) for path, methods in app.app.routes.items() for method in methods}
    assert documented == routed


def test_every_signed_in_route_says_so():
    described = yaml.safe_load(OPENAPI.read_text())["paths"]
    source = Path(app.__file__).read_text()
    for path, ops in described.items():
        for method, op in ops.items():
            if method == "parameters":
                continue
            handler = app.app.routes[path][method.upper()].view_function
            body = re.search(rf"def {handler.__name__}\(.*?(?=\n(?:@app|def )|\Z)", source, re.S)
            assert body is not None
            # _holdings (the privacy routes) checks for an admin before anything else
            signed_in = any(check in body.group(0) for check in ("_admin(", "_signed_in(", "_holdings("))
            assert signed_in == ("security" in op), f"{method.upper()} {path}"


@pytest.fixture(scope="module")
def api(stack) -> Iterator[dict[str, Any]]:
    """A site with a real admin, whose token every generated request carries."""
    site = f"oa{secrets.token_hex(4)}"
    sites.create(site)
    admin = f"admin-{site}"
    agents.create(admin, "Admin", PASSWORD, role="admin", site=site)
    agents.create(f"member-{site}", "Member", PASSWORD, site=site)
    with kept_address_counters():
        yield {"site": site, "base_url": f"{stack.gateway.http_url}/api",
               "token": Client.login(stack.gateway.http_url, admin, PASSWORD), "admin": admin}


@schema.parametrize()
@settings(max_examples=30, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_and_never_fails(case, api):
    if "site" in (case.path_parameters or {}) and case.path not in PUBLIC_SITE_ROUTES:
        case.path_parameters["site"] = api["site"]
    if (case.path_parameters or {}).get("agent_id") == api["admin"]:
        case.path_parameters["agent_id"] = f"member-{api['site']}"  # keep the token valid
    case.call_and_validate(base_url=api["base_url"], checks=CHECKS,
                           headers={"Authorization": f"Bearer {api['token']}"})
