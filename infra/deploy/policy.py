"""The stage's hand-written least-privilege IAM policy (``.chalice/policy-<stage>.json``).

Chalice's policy autogen sees neither PynamoDB nor chalicelib, so the policy is written by hand;
a deployment only fills in what it alone knows: the SES identity and the WebSocket API id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.deploy import DeployError
from infra.deploy.chalice_config import stage_config


def policy_path(root: Path, config: Mapping[str, Any], stage: str) -> Path:
    name = stage_config(config, stage).get("iam_policy_file") or f"policy-{stage}.json"
    return root / ".chalice" / str(name)


def statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    for found in policy.get("Statement", []):
        if found.get("Sid") == sid:
            return dict(found)
    raise DeployError(f"The policy has no statement {sid!r}.")


def _replace_statement(policy: dict[str, Any], new: dict[str, Any]) -> None:
    policy["Statement"] = [new if s.get("Sid") == new["Sid"] else s
                           for s in policy["Statement"]]


def render_policy(policy: dict[str, Any], *, mail_identity: str, configuration_set: str,
                  websocket_api_id: str | None, websocket_stage: str) -> dict[str, Any]:
    """The stage policy with this deployment's SES identity and WebSocket API filled in.

    The SendMail statement keeps any identity ARNs already listed (sandbox recipients, see
    docs/deploy.md) and gains the sender's; WebSocketConnections is pinned to the API id once
    it is known (``*`` before the first deploy, and again after a destroy).
    """
    policy = json.loads(json.dumps(policy))
    mail = statement(policy, "SendMail")
    resources = [r for r in as_list(mail["Resource"]) if ":configuration-set/" not in r]
    wanted = f"arn:aws:ses:*:*:identity/{mail_identity}"
    if wanted not in resources:
        resources.insert(0, wanted)
    resources = [r for r in resources if not r.endswith("identity/example.com") or r == wanted]
    mail["Resource"] = [*resources, f"arn:aws:ses:*:*:configuration-set/{configuration_set}"]
    _replace_statement(policy, mail)
    ws = statement(policy, "WebSocketConnections")
    api = websocket_api_id or "*"
    ws["Resource"] = [f"arn:aws:execute-api:*:*:{api}/{websocket_stage}/{verb}/@connections/*"
                      for verb in ("POST", "DELETE")]
    _replace_statement(policy, ws)
    return dict(policy)


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def mail_identity(policy: dict[str, Any]) -> str:
    """The SES identity the SendMail statement names (``example.com`` when it names none)."""
    return next((r.rsplit("identity/", 1)[1] for r in as_list(statement(policy, "SendMail")["Resource"])
                 if "identity/" in r), "example.com")
