"""pytest plugin: every AWS API call the app makes during the run, checked against the IAM
policy the app is deployed with (``.chalice/policy-prod.json``).

Recording: ``botocore.client.BaseClient._make_api_call`` is wrapped for the whole session, so
every client sees it, whenever it was created (PynamoDB's, and ``store.base._call_or_old`` which
calls ``_make_api_call`` itself, included). A call counts as the app's when its stack holds

* a frame of ``app.py``: a Lambda handler is running, whoever invoked it (the local gateway
  in ``infra/local/``, the SQS poller, a test calling the handler); or
* frames of ``chalicelib/`` and none of ``tests/`` or ``infra/``: the app's own threads (the
  fan-out pool posting to connections).

Everything else is the test harness: the local stack creating the table and queues, tests
reading DynamoDB or calling ``chalicelib`` directly, the admin CLI, ``infra/deploy/``.

Checking: each call is translated into the IAM action(s) and the resource ARN(s) AWS would
authorize, with local names mapped to the prod stage's (the local table is the table named by
``TABLE_NAME``, so in prod it is ``.chalice/config.json``'s prod ``TABLE_NAME``, and so on), then
evaluated against the policy's statements. ``test_app_calls_match_prod_policy`` (in
``tests/test_deploy.py``, moved to the very end of the run by this plugin) fails when a call
is not allowed, and, when the whole suite ran, when the policy grants an action or a resource
no call needed (an unused grant) other than those AWS itself uses with the functions' role
(``PLATFORM_GRANTS``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlparse

import botocore.client
import pytest

ROOT = Path(__file__).resolve().parents[1]
POLICY_STAGE = "prod"
REGION, ACCOUNT = "us-east-1", "123456789012"
# Stands in for the WebSocket API id until .chalice/config.json names the deployed one.
PLACEHOLDER_API_ID = "a1b2c3d4e5"

# Granted for AWS itself rather than for a call in the code; never reported as unused.
PLATFORM_GRANTS = {
    "logs:CreateLogStream": "Lambda writes each function's logs with the function's role",
    "logs:PutLogEvents": "Lambda writes each function's logs with the function's role",
    "sqs:ReceiveMessage": "the SQS event source mapping polls the mail queue with send_mail's role",
    "sqs:DeleteMessage": "the event source mapping deletes the records send_mail handled",
    "sqs:GetQueueAttributes": "the event source mapping reads the queue's attributes",
    "xray:PutTraceSegments": "Lambda active tracing sends each invocation's segments",
    "xray:PutTelemetryRecords": "Lambda active tracing reports the X-Ray daemon's telemetry",
}

_ROOT_S = str(ROOT) + os.sep
_SKIP_S = tuple(str(ROOT / d) + os.sep for d in (".venv", ".tools", ".local"))


@dataclass(frozen=True)
class Call:
    """One kind of call: service, operation, and what it touched in local terms."""

    service: str
    operation: str
    resource: tuple[tuple[str, str], ...]


@dataclass
class Recorder:
    calls: dict[Call, str] = field(default_factory=dict)  # -> where it was first seen
    harness: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call, where: str) -> None:
        with self.lock:
            self.calls.setdefault(call, where)


RECORDER = Recorder()
_original_make_api_call = botocore.client.BaseClient._make_api_call


def _classify(frame: FrameType | None) -> str | None:
    """Where in the app the call comes from ("chalicelib/mail.py:56"), or None for the harness."""
    innermost: str | None = None
    handler = tool = False
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_ROOT_S) and not filename.startswith(_SKIP_S):
            rel = filename[len(_ROOT_S):].replace(os.sep, "/")
            if innermost is None and rel.startswith(("chalicelib/", "app.py")):
                innermost = f"{rel}:{frame.f_lineno}"
            if rel == "app.py":
                handler = True
            elif rel.startswith(("tests/", "infra/")):
                tool = True
        frame = frame.f_back
    if handler or (innermost is not None and not tool):
        return innermost
    return None


def _logical(kind: str, name: str, roles: Mapping[str, str]) -> tuple[str, str]:
    """("table", "$TABLE_NAME") when the name is the one an environment variable gives."""
    for role, value in roles.items():
        if value and name == value:
            return kind, f"${role}"
    return kind, name


def _local_roles() -> dict[str, str]:
    from chalicelib import config

    return {"TABLE_NAME": config.settings().table_name, "MAIL_QUEUE_NAME": config.settings().mail_queue_name,
            "MAIL_DLQ_NAME": config.settings().mail_dlq_name, "MAIL_FROM": config.settings().mail_from,
            "TOKEN_SECRET_PARAM": os.environ.get("TOKEN_SECRET_PARAM", ""),
            "INBOUND_BUCKET": config.settings().inbound_bucket}


def describe(service: str, operation: str, params: Mapping[str, Any], endpoint: str) -> Call:
    """What a call touched, in local terms resolved to the variables that name them."""
    roles = _local_roles()
    parts: list[tuple[str, str]] = []
    if service == "dynamodb":
        tables = [params["TableName"]] if "TableName" in params else []
        tables += list(params.get("RequestItems", {}))
        kinds: set[str] = set()
        for item in params.get("TransactItems", []):
            tables += [v["TableName"] for v in item.values() if isinstance(v, dict) and "TableName" in v]
            kinds.update(item)
        parts += [_logical("table", t, roles) for t in dict.fromkeys(tables)]
        parts += [("item", k) for k in sorted(kinds)]
        if params.get("IndexName"):
            parts.append(("index", str(params["IndexName"])))
    elif service == "sqs":
        name = params.get("QueueName") or str(params.get("QueueUrl", "")).rstrip("/").rsplit("/", 1)[-1]
        parts.append(_logical("queue", name, roles))
    elif service in ("sesv2", "ses"):
        sender = str(params.get("FromEmailAddress") or params.get("Source") or "")
        parts.append(_logical("from", sender, roles))
        if params.get("ConfigurationSetName"):
            parts.append(("configuration-set", str(params["ConfigurationSetName"])))
    elif service == "apigatewaymanagementapi":
        parts.append(("connection", str(params.get("ConnectionId", ""))))
        parts.append(("endpoint", urlparse(endpoint).path.strip("/") or "local"))
    elif service == "s3":
        parts.append(_logical("bucket", str(params.get("Bucket", "")), roles))
        parts.append(("key", str(params.get("Key", ""))))
    elif service == "ssm":
        for name in [params.get("Name"), *params.get("Names", [])]:
            if name:
                parts.append(_logical("parameter", str(name), roles))
    else:
        parts.append(("unknown", json.dumps(sorted(params))))
    return Call(service, operation, tuple(parts))


def _recording_make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
    try:
        where = _classify(sys._getframe(1))
        if where is None:
            RECORDER.harness += 1
        else:
            RECORDER.add(describe(self.meta.service_model.service_name, operation_name,
                                  api_params or {}, str(self.meta.endpoint_url or "")), where)
    except Exception as exc:  # never break the call being made
        RECORDER.add(Call("recorder-error", operation_name, (("error", repr(exc)),)), "tests/aws_recorder.py")
    return _original_make_api_call(self, operation_name, api_params)


# ---- prod terms --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One authorization AWS makes for a call: an action on one of ``resources`` (alternatives:
    SES authorizes the sending address or its domain, whichever is the verified identity)."""

    action: str
    resources: tuple[str, ...]


def prod_settings(root: Path = ROOT, stage: str = POLICY_STAGE) -> dict[str, str]:
    config = json.loads((root / ".chalice" / "config.json").read_text())
    env = dict(config.get("environment_variables", {}))
    env.update(config["stages"][stage].get("environment_variables", {}))
    env.setdefault("WEBSOCKET_STAGE", str(config.get("websocket_api_stage", "api")))
    env["CONFIGURATION_SET"] = f"{config.get('app_name', 'clicktochat')}-{stage}"
    return env


_TRANSACT_ACTIONS = {"Update": "UpdateItem", "Put": "PutItem", "Delete": "DeleteItem",
                     "ConditionCheck": "ConditionCheckItem"}


def requirements_for(call: Call, prod: Mapping[str, str]) -> list[Requirement]:
    def resolve(value: str) -> str:
        return prod.get(value[1:], value) if value.startswith("$") else value

    arn = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:"
    parts = dict(call.resource)
    if call.service == "dynamodb":
        tables = [resolve(v) for k, v in call.resource if k == "table"]
        suffix = f"/index/{parts['index']}" if "index" in parts else ""
        # A transaction has no IAM action of its own: AWS authorizes each item's action.
        actions = ([_TRANSACT_ACTIONS[v] for k, v in call.resource if k == "item"]
                   if call.operation == "TransactWriteItems" else [call.operation])
        return [Requirement(f"dynamodb:{a}", (arn.format("dynamodb") + f"table/{t}{suffix}",))
                for t in tables for a in actions]
    if call.service == "sqs":
        return [Requirement(f"sqs:{call.operation}", (arn.format("sqs") + resolve(parts["queue"]),))]
    if call.service in ("sesv2", "ses"):
        sender = resolve(parts["from"])
        identities = (arn.format("ses") + f"identity/{sender}",
                      arn.format("ses") + f"identity/{sender.rsplit('@', 1)[-1]}")
        config_set = parts.get("configuration-set") or prod["CONFIGURATION_SET"]
        config_arn = arn.format("ses") + f"configuration-set/{config_set}"
        return [Requirement(f"ses:{call.operation}", identities),
                Requirement(f"ses:{call.operation}", (config_arn,))]
    if call.service == "apigatewaymanagementapi":
        verbs = {"PostToConnection": "POST", "DeleteConnection": "DELETE", "GetConnection": "GET"}
        api = prod.get("WEBSOCKET_API_ID") or PLACEHOLDER_API_ID
        path = f"{api}/{prod['WEBSOCKET_STAGE']}/{verbs[call.operation]}/@connections/{parts['connection']}"
        return [Requirement("execute-api:ManageConnections", (arn.format("execute-api") + path,))]
    if call.service == "s3":  # S3 ARNs name no region or account
        key = f"{resolve(parts['bucket'])}/{parts['key']}"
        return [Requirement(f"s3:{call.operation}", (f"arn:aws:s3:::{key}",))]
    if call.service == "ssm":
        return [Requirement(f"ssm:{call.operation}", (arn.format("ssm") + f"parameter{resolve(v)}",))
                for k, v in call.resource if k == "parameter"]
    return [Requirement(f"{call.service}:{call.operation}", ("*",))]


# ---- policy evaluation ------------------------------------------------------------------------


def _pattern(glob: str, case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(body, 0 if case else re.IGNORECASE)


def _list(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


@dataclass
class Evaluation:
    denied: list[tuple[Requirement, Call, str]]
    unused: list[str]
    used: set[tuple[str, str]]

    def report(self, complete: bool) -> str:
        lines = [f"not allowed by the policy: {r.action} on {' or '.join(r.resources)} "
                 f"({c.service}.{c.operation} at {where})" for r, c, where in self.denied]
        if complete:
            lines += [f"unused grant: {u}" for u in self.unused]
        return "\n".join(lines)


def evaluate(policy: Mapping[str, Any], calls: Mapping[Call, str], prod: Mapping[str, str]) -> Evaluation:
    """Which calls the policy refuses, and which of its grants no call used."""
    statements = []
    for i, s in enumerate(policy.get("Statement", [])):
        if "Condition" in s or "NotAction" in s or "NotResource" in s:
            raise ValueError(f"statement {s.get('Sid', i)}: Condition/NotAction/NotResource not modelled")
        statements.append((str(s.get("Sid", i)), s["Effect"],
                           [(a, _pattern(a, False)) for a in _list(s["Action"])],
                           [(r, _pattern(r, True)) for r in _list(s["Resource"])]))
    used: set[tuple[str, str]] = set()
    denied = []
    for call, where in sorted(calls.items(), key=lambda kv: repr(kv[0])):
        for req in requirements_for(call, prod):
            allowed = False
            hits: list[tuple[str, str]] = []
            for sid, effect, actions, resources in statements:
                acts = [a for a, p in actions if p.fullmatch(req.action)]
                res = [r for r, p in resources if any(p.fullmatch(x) for x in req.resources)]
                if not acts or not res:
                    continue
                if effect == "Deny":
                    allowed, hits = False, []
                    break
                allowed = True
                hits += [(sid, f"action {a}") for a in acts] + [(sid, f"resource {r}") for r in res]
            if allowed:
                used.update(hits)
            else:
                denied.append((req, call, where))
    unused = []
    for sid, effect, actions, resources in statements:
        if effect != "Allow":
            continue
        platform = all(a in PLATFORM_GRANTS for a, _ in actions)
        for a, _ in actions:
            if a not in PLATFORM_GRANTS and (sid, f"action {a}") not in used:
                unused.append(f"{sid}: action {a}")
        if not platform:
            unused += [f"{sid}: resource {r}" for r, _ in resources if (sid, f"resource {r}") not in used]
    return Evaluation(denied, unused, used)


def load_policy(root: Path = ROOT, stage: str = POLICY_STAGE) -> dict[str, Any]:
    config = json.loads((root / ".chalice" / "config.json").read_text())
    name = config["stages"][stage].get("iam_policy_file") or f"policy-{stage}.json"
    return dict(json.loads((root / ".chalice" / name).read_text()))


# ---- pytest wiring ------------------------------------------------------------------------------


@dataclass
class RunState:
    complete: bool = False
    deselected: int = 0
    missing_modules: list[str] = field(default_factory=list)


STATE = RunState()
LAST_MARK = "aws_policy_last"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{LAST_MARK}: run after every other test (tests/aws_recorder.py)")
    botocore.client.BaseClient._make_api_call = _recording_make_api_call


def pytest_unconfigure(config: pytest.Config) -> None:
    botocore.client.BaseClient._make_api_call = _original_make_api_call


def pytest_deselected(items: Iterable[pytest.Item]) -> None:
    STATE.deselected += len(list(items))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    last = [i for i in items if i.get_closest_marker(LAST_MARK)]
    items[:] = [i for i in items if not i.get_closest_marker(LAST_MARK)] + last
    collected = {Path(str(i.fspath)).resolve() for i in items}
    modules = sorted((ROOT / "tests").glob("test_*.py"))
    STATE.missing_modules = [m.name for m in modules if m.resolve() not in collected]


@pytest.fixture
def aws_calls(request: pytest.FixtureRequest) -> tuple[Recorder, bool]:
    """The recorder, and whether this run exercised the whole suite (no -k, -m, deselection,
    or modules left out), which is when unused grants are meaningful."""
    option = request.config.option
    complete = (not STATE.missing_modules and not STATE.deselected
                and not getattr(option, "keyword", "") and not getattr(option, "markexpr", ""))
    STATE.complete = complete
    return RECORDER, complete


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not RECORDER.calls:
        return
    try:
        evaluation = evaluate(load_policy(), RECORDER.calls, prod_settings())
    except Exception as exc:  # the test reports it properly; the summary stays quiet
        terminalreporter.write_line(f"aws_recorder: {exc}")
        return
    actions = sorted({r.action for c in RECORDER.calls for r in requirements_for(c, prod_settings())})
    terminalreporter.section("AWS calls by the app (tests/aws_recorder.py)")
    terminalreporter.write_line(f"{len(RECORDER.calls)} distinct calls, {RECORDER.harness} harness calls "
                                f"ignored; actions: {', '.join(actions)}")
    terminalreporter.write_line(f"refused by .chalice/policy-{POLICY_STAGE}.json: {len(evaluation.denied)}"
                                + ("" if STATE.complete else " (partial run: unused grants not checked)"))
    for line in evaluation.report(STATE.complete).splitlines():
        terminalreporter.write_line(f"  {line}")
