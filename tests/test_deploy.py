"""Deployment: infra/template.yaml, the stage config and policies, the Lambda package, the
deploy script against a fake AWS (moto's server), and the app's AWS calls against the policy.

``test_app_calls_match_prod_policy`` runs after every other test of the session
(tests/aws_recorder.py moves it there).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from infra.deploy import DeployError
from infra.deploy.chalice_config import function_setting, load_chalice_config, stage_config, stage_env
from infra.deploy.cli import main
from infra.deploy.names import names as stage_names
from infra.deploy.packaging import (
    BUILD_ROOT,
    MAX_PACKAGE_BYTES,
    NOT_SHIPPED,
    SHIPPED_SERVICES,
    Package,
    package,
)
from infra.deploy.policy import policy_path, render_policy
from infra.deploy.protection import Throttle, api_protection, rest_stage_patch, websocket_stage_update
from infra.deploy.stack import LOGGING_ROLE_TEMPLATE, Deployer, Options
from infra.deploy.template import (
    TEMPLATE,
    load_template,
    postprocess_sam,
    table_schema,
    table_yaml,
    template_table_schema,
)
from infra.deploy.uploads import CACHE_IMMUTABLE, CACHE_WIDGET
from tests import aws_recorder
from tests.aws_recorder import Call

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("dev", "prod")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def chalice_config() -> dict[str, Any]:
    return load_chalice_config()


# ---- the template -------------------------------------------------------------------------------


def test_table_matches_models(template: dict[str, Any]) -> None:
    """Keys, attributes and every GSI (queue, shift, due, site_visitors, team, by_visitor,
    by_email) as the models define them; `python -m infra.deploy table` prints the block to
    paste on drift."""
    assert template_table_schema(template) == table_schema(), table_yaml()
    props = template["Resources"]["Table"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert {i["IndexName"] for i in props["GlobalSecondaryIndexes"]} == {
        "queue", "shift", "due", "site_visitors", "team", "by_visitor", "by_email"}


def test_table_drift_is_detected(template: dict[str, Any]) -> None:
    drifted = json.loads(json.dumps(template))
    drifted["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"].pop()
    assert template_table_schema(drifted) != table_schema()
    assert main(["table", "--check"]) == 0


@pytest.mark.parametrize("stage", STAGES)
def test_mail_queue_redrive_and_visibility(template: dict[str, Any], chalice_config: dict[str, Any],
                                           stage: str) -> None:
    from chalicelib import config

    queue = template["Resources"]["MailQueue"]["Properties"]
    dlq = template["Resources"]["MailDeadLetterQueue"]["Properties"]
    default = config.settings().mail_max_receives
    receives = int(stage_env(chalice_config, stage).get("MAIL_MAX_RECEIVES", default))
    assert queue["RedrivePolicy"]["maxReceiveCount"] == receives == default
    assert template["Outputs"]["MailMaxReceives"]["Value"] == str(receives)
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["MailDeadLetterQueue", "Arn"]}
    sender_timeout = function_setting(chalice_config, stage, "send_mail", "lambda_timeout")
    assert queue["VisibilityTimeout"] > 6 * sender_timeout
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    from chalicelib.mail import LEASE_SECONDS

    assert sender_timeout < LEASE_SECONDS  # a worker killed mid-send is not overtaken


@pytest.mark.parametrize("stage", STAGES)
def test_stage_config_names_the_stacks_resources(chalice_config: dict[str, Any], stage: str) -> None:
    names = stage_names(stage)
    env = stage_env(chalice_config, stage)
    assert env["TABLE_NAME"] == names.table
    assert env["MAIL_QUEUE_NAME"] == names.mail_queue
    assert env["MAIL_DLQ_NAME"] == names.mail_dlq
    assert env["TOKEN_SECRET_PARAM"] == names.token_secret_param
    assert env["WEBSOCKET_STAGE"] == chalice_config["websocket_api_stage"]
    assert "TOKEN_SECRET" not in env  # the key lives in SSM, never in the Lambda configuration
    assert chalice_config["autogen_policy"] is False
    st = stage_config(chalice_config, stage)
    assert (ROOT / ".chalice" / st["iam_policy_file"]).exists()
    assert function_setting(chalice_config, stage, "send_mail", "reserved_concurrency") >= 2
    # The template derives the same names from AppName and Stage.
    rendered = json.dumps(load_template()).replace("${AppName}", names.app).replace("${Stage}", stage)
    for name in (names.table, names.mail_queue, names.mail_dlq, names.token_secret_param):
        assert name in rendered


@pytest.mark.parametrize("stage", STAGES)
def test_policy_is_scoped_to_the_stage(chalice_config: dict[str, Any], stage: str) -> None:
    policy = json.loads(policy_path(ROOT, chalice_config, stage).read_text())
    names = stage_names(stage)
    other = [s for s in STAGES if s != stage]
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in aws_recorder._list(statement["Resource"]):
            if resource == "*":  # X-Ray has no resource-level permissions; nothing else may
                assert all(a.startswith("xray:Put") for a in aws_recorder._list(statement["Action"]))
                continue
            service = resource.split(":")[2]
            if service in ("dynamodb", "sqs", "ssm", "ses", "logs"):
                assert resource.rsplit(":", 1)[-1] != "*" or service == "logs", resource
                assert not any(f"-{o}" in resource or f"/{o}/" in resource for o in other), resource
        for action in aws_recorder._list(statement["Action"]):
            assert "*" not in action, action
    table = next(s for s in policy["Statement"] if s["Sid"] == "ChatTableIndexes")
    assert sorted(r.rsplit("/", 1)[1] for r in table["Resource"]) == sorted(
        i["IndexName"] for i in table_schema()["GlobalSecondaryIndexes"])
    trigger = next(s for s in policy["Statement"] if s["Sid"] == "MailQueueTrigger")
    assert trigger["Resource"] == [f"arn:aws:sqs:*:*:{names.mail_queue}"]
    assert set(trigger["Action"]) == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def test_render_policy_pins_identity_and_api() -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    rendered = render_policy(policy, mail_identity="shop.test", configuration_set="clicktochat-prod",
                                    websocket_api_id="abc123", websocket_stage="api")
    mail = next(s for s in rendered["Statement"] if s["Sid"] == "SendMail")
    assert mail["Resource"] == ["arn:aws:ses:*:*:identity/shop.test",
                                "arn:aws:ses:*:*:configuration-set/clicktochat-prod"]
    ws = next(s for s in rendered["Statement"] if s["Sid"] == "WebSocketConnections")
    assert ws["Resource"] == ["arn:aws:execute-api:*:*:abc123/api/POST/@connections/*",
                              "arn:aws:execute-api:*:*:abc123/api/DELETE/@connections/*"]
    again = render_policy(rendered, mail_identity="shop.test", configuration_set="clicktochat-prod",
                                 websocket_api_id="abc123", websocket_stage="api")
    assert again == rendered


# ---- the package ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Package:
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
    for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
        del env[key]

    def run(args: list[str], cwd: Path, child_env: Mapping[str, str]) -> None:
        done = subprocess.run(args, cwd=cwd, env=dict(child_env), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    return package("prod", runner=run, env=env, out=lambda line: None)


def test_chalice_package_is_small(built: Package) -> None:
    assert built.zip_bytes < MAX_PACKAGE_BYTES, f"{built.zip_bytes} bytes"
    with zipfile.ZipFile(built.zip_path) as archive:
        top = {name.split("/", 1)[0] for name in archive.namelist()}
    assert {"app.py", "chalicelib", "pynamodb", "aws_lambda_powertools", "chalice", "botocore",
            "tzdata"} <= top
    assert not top & NOT_SHIPPED, top


def test_merged_template_sets_partial_batch_responses(built: Package) -> None:
    merged = json.loads(built.merged_template.read_text())
    resources = merged["Resources"]
    sqs_events = [e["Properties"] for r in resources.values() if r["Type"] == "AWS::Serverless::Function"
                  for e in r["Properties"].get("Events", {}).values() if e["Type"] == "SQS"]
    assert sqs_events and all(e["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for e in sqs_events)
    assert sqs_events[0]["Queue"] == {"Fn::GetAtt": ["MailQueue", "Arn"]}
    assert sqs_events[0]["ScalingConfig"] == {"MaximumConcurrency": 2}
    send_mail = resources["SendMail"]["Properties"]
    assert send_mail["ReservedConcurrentExecutions"] == 2
    assert send_mail["Environment"]["Variables"]["TABLE_NAME"] == {"Ref": "Table"}
    assert {"Table", "MailQueue", "Distribution", "WebsocketAPI", "APIHandler"} <= set(resources)
    groups = [r["Properties"]["LogGroupName"] for r in resources.values()
              if r["Type"] == "AWS::Logs::LogGroup"]
    assert "/aws/lambda/clicktochat-prod" in groups


# Every rule cfn-lint has: the informational ones (-c I), the experimental ones (-e), and the
# strict setting of the configurable rules that have one. One rule is left out, on purpose:
# I4010 (experimental) wants a com.aws.cloudformation.Context metadata block with a "why" on
# the template and on every resource. Each resource's why is in the templates' comments and in
# docs/deploy.md; a second copy in metadata would drift. (W4011 and W4012, also experimental,
# still check any such block someone adds.)
CFN_LINT_ALL_RULES = ["--include-checks", "I", "--include-experimental", "--ignore-checks", "I4010",
                      "--configure-rule", "E3012:strict=true", "I3042:region=true", "I3042:accountId=true"]


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    return subprocess.run([cfn_lint, "--format", "parseable", *CFN_LINT_ALL_RULES, "--", str(path)],
                          capture_output=True, text=True)


def test_merged_template_passes_cfn_lint(built: Package) -> None:
    """No errors, warnings or informational findings, experimental rules included (cfn-lint
    exits 0 only then)."""
    done = _cfn_lint(built.merged_template)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", [TEMPLATE, LOGGING_ROLE_TEMPLATE], ids=lambda p: p.name)
def test_infra_templates_pass_cfn_lint(path: Path) -> None:
    done = _cfn_lint(path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_runs_informational_and_experimental_rules(tmp_path: Path) -> None:
    """The lint above would see an informational finding (I3011: a log group without an explicit
    deletion policy) and an experimental one (W4012: a malformed Context block)."""
    canary = tmp_path / "canary.yaml"
    canary.write_text('AWSTemplateFormatVersion: "2010-09-09"\nResources:\n  Logs:\n'
                      "    Type: AWS::Logs::LogGroup\n    Metadata:\n      com.aws.cloudformation.Context:\n"
                      "        why: a canary\n        trust: {src: infer}\n"
                      "    Properties:\n      RetentionInDays: 7\n")
    done = _cfn_lint(canary)
    assert done.returncode != 0 and ":I3011:" in done.stdout and ":W4012:" in done.stdout, done.stdout


# ---- flood protection at the edge ------------------------------------------------------------------

INTERACTIVE = {"APIHandler": "api_handler", "WebsocketConnect": "websocket_connect",
               "WebsocketMessage": "websocket_message", "WebsocketDisconnect": "websocket_disconnect"}


def _throttle(limits: Throttle) -> dict[str, Any]:
    return {"ThrottlingBurstLimit": limits.burst_limit, "ThrottlingRateLimit": limits.rate_limit}


def test_merged_template_protects_the_apis(built: Package, chalice_config: dict[str, Any]) -> None:
    """Reserved concurrency on every function, API Gateway throttling on both stages ($connect
    and the costly REST routes tighter), and access logs without bodies or addresses."""
    merged = json.loads(built.merged_template.read_text())
    resources = merged["Resources"]
    functions = {**INTERACTIVE, "Housekeeping": "housekeeping", "SendMail": "send_mail"}
    for logical_id, name in functions.items():
        wanted = function_setting(chalice_config, "prod", name, "reserved_concurrency")
        assert isinstance(wanted, int) and wanted >= 1, name
        assert resources[logical_id]["Properties"]["ReservedConcurrentExecutions"] == wanted, name
    protection = api_protection(chalice_config, "prod")

    rest = resources["RestAPI"]["Properties"]
    settings = {(s["HttpMethod"], s["ResourcePath"]): s for s in rest["MethodSettings"]}
    assert settings.pop(("*", "/*")) == {"HttpMethod": "*", "ResourcePath": "/*",
                                         **_throttle(protection.rest)}
    assert settings.pop(("POST", "/~1auth~1login"))["ThrottlingRateLimit"] < protection.rest.rate_limit
    assert settings.pop(("POST", "/~1offline"))["ThrottlingBurstLimit"] < protection.rest.burst_limit
    assert settings == {}
    assert rest["TracingEnabled"] is True  # as `chalice deploy` sets it ("xray": true)
    assert rest["AccessLogSetting"]["DestinationArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                   "${RestApiAccessLogs}"}
    rest_log = json.loads(rest["AccessLogSetting"]["Format"])
    assert {"requestId", "time", "method", "resource", "status", "integrationLatency",
            "error"} <= set(rest_log)

    ws = resources["WebsocketAPIStage"]["Properties"]
    assert ws["DefaultRouteSettings"] == _throttle(protection.websocket)
    assert ws["RouteSettings"] == {"$connect": _throttle(protection.websocket_routes["$connect"])}
    assert protection.websocket_routes["$connect"].rate_limit < protection.websocket.rate_limit
    assert ws["AccessLogSettings"]["DestinationArn"]["Fn::Sub"].endswith(
        ":log-group:${WebsocketApiAccessLogs}")
    ws_log = json.loads(ws["AccessLogSettings"]["Format"])
    assert {"requestId", "time", "eventType", "routeKey", "status", "connectionId", "integrationLatency",
            "error"} <= set(ws_log)
    for line in (rest_log, ws_log):  # no bodies, no addresses, no user agents, no paths with values
        assert all(re.fullmatch(r"\$context\.[\w.]+", v) for v in line.values()), line
        assert not re.search(r"body|sourceIp|userAgent|\$context\.path\b|querystring", json.dumps(line), re.I)

    for key in ("RestApiAccessLogs", "WebsocketApiAccessLogs"):
        assert resources[key]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert merged["Parameters"]["LogRetentionDays"]["Default"] == stage_config(
        chalice_config, "prod")["log_retention_in_days"]


@pytest.mark.parametrize("stage", STAGES)
def test_api_protection_per_stage(chalice_config: dict[str, Any], stage: str) -> None:
    protection = api_protection(chalice_config, stage)
    assert set(protection.rest_routes) == {("POST", "/auth/login"), ("POST", "/offline")}
    assert set(protection.websocket_routes) == {"$connect"}
    assert protection.access_log_source_ip is False  # docs/privacy.md: no IP address is stored
    for name in INTERACTIVE.values():
        assert function_setting(chalice_config, stage, name, "reserved_concurrency") >= 1, name


def test_reserved_concurrency_fits_a_default_account(chalice_config: dict[str, Any]) -> None:
    """Both stages in one account with the default quota (1,000), Lambda keeping 100 of it
    unreserved: at most 900 reserved, so a deploy is never refused for it."""
    reserved = sum(function_setting(chalice_config, stage, name, "reserved_concurrency") or 0
                   for stage in STAGES for name in [*INTERACTIVE.values(), "housekeeping", "send_mail"])
    assert reserved <= 900


@pytest.mark.parametrize("change", [
    lambda p: p.pop("rest"),
    lambda p: p.update(surprise=1),
    lambda p: p["rest"].update(rate_limit=0),
    lambda p: p["rest"].update(burst_limit=2.5),
    lambda p: p["websocket"].pop("burst_limit"),
    lambda p: p["rest_routes"].update({"POST /auth/login": {"rate_limit": 1000, "burst_limit": 1}}),
    lambda p: p["rest_routes"].update({"FETCH /offline": {"rate_limit": 1, "burst_limit": 1}}),
    lambda p: p["websocket_routes"].update({"sendMessage": {"rate_limit": 1, "burst_limit": 1}}),
    lambda p: p.update(access_log_source_ip="no"),
], ids=["no-rest", "unknown-key", "zero-rate", "fractional-burst", "no-burst", "route-above-api",
        "bad-method", "custom-route", "ip-not-bool"])
def test_api_protection_refuses_bad_settings(chalice_config: dict[str, Any], change: Any) -> None:
    config = json.loads(json.dumps(chalice_config))
    change(config["stages"]["dev"]["api_protection"])
    with pytest.raises(DeployError, match="api_protection"):
        api_protection(config, "dev")


def test_postprocess_refuses_a_route_the_app_does_not_have(built: Package,
                                                           chalice_config: dict[str, Any]) -> None:
    config = json.loads(json.dumps(chalice_config))
    routes = config["stages"]["prod"]["api_protection"]["rest_routes"]
    routes["POST /signin"] = {"rate_limit": 1, "burst_limit": 1}
    with pytest.raises(DeployError, match="no POST /signin"):
        postprocess_sam(json.loads(built.sam_template.read_text()), config, stage_names("prod"))


ACCESS_ARN = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/apigateway/clicktochat-prod-rest-access"


def test_rest_stage_patch_then_nothing(chalice_config: dict[str, Any]) -> None:
    """The patch `make deploy` sends to the REST stage Chalice made, and none once applied
    (method settings keyed as AWS returns them)."""
    protection = api_protection(chalice_config, "prod")
    ops = rest_stage_patch({"stageName": "api"}, protection, ACCESS_ARN)
    paths = {op["path"]: op["value"] for op in ops}
    assert paths["/*/*/throttling/rateLimit"] == str(protection.rest.rate_limit)
    assert paths["/~1auth~1login/POST/throttling/burstLimit"] == str(
        protection.rest_routes[("POST", "/auth/login")].burst_limit)
    assert paths["/accessLogSettings/destinationArn"] == ACCESS_ARN
    assert json.loads(paths["/accessLogSettings/format"])["requestId"] == "$context.requestId"
    applied: dict[str, Any] = {"methodSettings": {}, "accessLogSettings": {}}
    for op in ops:
        head, _, key = op["path"].rpartition("/")
        if head == "/accessLogSettings":
            applied["accessLogSettings"][key] = op["value"]
        else:
            resource, method, what = head.split("/")[1], head.split("/")[2], head.split("/")[3]
            value: float = float(op["value"]) if key == "rateLimit" else int(op["value"])
            applied["methodSettings"].setdefault(f"{resource}/{method}", {"cachingEnabled": False})[
                f"{what}{key[0].upper()}{key[1:]}"] = value
    assert rest_stage_patch(applied, protection, ACCESS_ARN) == []


def test_websocket_stage_update_then_nothing(chalice_config: dict[str, Any]) -> None:
    protection = api_protection(chalice_config, "prod")
    stage = {"StageName": "api", "DefaultRouteSettings": {"DataTraceEnabled": False, "LoggingLevel": "OFF"},
             "RouteSettings": {}}
    update = websocket_stage_update(stage, protection, ACCESS_ARN)
    assert update["DefaultRouteSettings"] == {"DataTraceEnabled": False, "LoggingLevel": "OFF",
                                              **_throttle(protection.websocket)}
    assert update["RouteSettings"] == {"$connect": _throttle(protection.websocket_routes["$connect"])}
    assert update["AccessLogSettings"]["DestinationArn"] == ACCESS_ARN
    assert websocket_stage_update({**stage, **update}, protection, ACCESS_ARN) == {}


# ---- the policy checker -----------------------------------------------------------------------------


def _call(service: str, operation: str, *resource: tuple[str, str]) -> Call:
    return Call(service, operation, tuple(resource))


CALLS = {
    _call("dynamodb", "GetItem", ("table", "$TABLE_NAME")): "chalicelib/x.py:1",
    _call("dynamodb", "Query", ("table", "$TABLE_NAME")): "chalicelib/x.py:2",
    _call("dynamodb", "Query", ("table", "$TABLE_NAME"), ("index", "queue")): "chalicelib/x.py:3",
    _call("sqs", "SendMessage", ("queue", "$MAIL_QUEUE_NAME")): "chalicelib/queue.py:27",
    _call("sesv2", "SendEmail", ("from", "$MAIL_FROM")): "chalicelib/mail.py:56",
    _call("apigatewaymanagementapi", "PostToConnection", ("connection", "abc="), ("endpoint", "")): "f:1",
}
PROD = {"TABLE_NAME": "t-prod", "MAIL_QUEUE_NAME": "t-prod-mail", "MAIL_FROM": "chat@shop.test",
        "WEBSOCKET_STAGE": "api", "CONFIGURATION_SET": "t-prod"}
POLICY = {"Statement": [
    {"Sid": "T", "Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:Query"],
     "Resource": ["arn:aws:dynamodb:*:*:table/t-prod"]},
    {"Sid": "I", "Effect": "Allow", "Action": "dynamodb:Query",
     "Resource": "arn:aws:dynamodb:*:*:table/t-prod/index/*"},
    {"Sid": "Q", "Effect": "Allow", "Action": ["sqs:SendMessage"],
     "Resource": ["arn:aws:sqs:*:*:t-prod-mail"]},
    {"Sid": "M", "Effect": "Allow", "Action": ["ses:SendEmail"],
     "Resource": ["arn:aws:ses:*:*:identity/shop.test", "arn:aws:ses:*:*:configuration-set/t-prod"]},
    {"Sid": "W", "Effect": "Allow", "Action": ["execute-api:ManageConnections"],
     "Resource": ["arn:aws:execute-api:*:*:*/api/POST/@connections/*"]},
    {"Sid": "L", "Effect": "Allow", "Action": ["logs:PutLogEvents"], "Resource": ["arn:aws:logs:*:*:*"]},
]}


def test_policy_checker_accepts_exact_policy() -> None:
    result = aws_recorder.evaluate(POLICY, CALLS, PROD)
    assert result.denied == [] and result.unused == []


def test_policy_checker_fails_when_a_permission_is_removed() -> None:
    for sid, action in (("Q", "sqs:SendMessage"), ("M", "ses:SendEmail"), ("I", "dynamodb:Query")):
        policy = json.loads(json.dumps(POLICY))
        statement = next(s for s in policy["Statement"] if s["Sid"] == sid)
        kept = [a for a in aws_recorder._list(statement["Action"]) if a != action]
        statement["Action"] = kept or ["x:None"]
        result = aws_recorder.evaluate(policy, CALLS, PROD)
        assert action in result.report(True), (sid, action)
    narrowed = json.loads(json.dumps(POLICY))
    narrowed["Statement"][3]["Resource"] = ["arn:aws:ses:*:*:identity/shop.test"]  # no configuration set
    assert "configuration-set/t-prod" in aws_recorder.evaluate(narrowed, CALLS, PROD).report(True)
    denied = json.loads(json.dumps(POLICY))
    denied["Statement"].append({"Sid": "D", "Effect": "Deny", "Action": "sqs:*", "Resource": "*"})
    assert "sqs:SendMessage" in aws_recorder.evaluate(denied, CALLS, PROD).report(True)


def test_policy_checker_reports_unused_grants() -> None:
    policy = json.loads(json.dumps(POLICY))
    policy["Statement"][0]["Action"].append("dynamodb:Scan")
    policy["Statement"][2]["Resource"].append("arn:aws:sqs:*:*:t-prod-mail-dlq")
    result = aws_recorder.evaluate(policy, CALLS, PROD)
    assert result.denied == []
    assert result.unused == ["T: action dynamodb:Scan", "Q: resource arn:aws:sqs:*:*:t-prod-mail-dlq"]


def test_harness_calls_are_not_the_apps() -> None:
    """A call made from a test (or infra/) is not recorded; the app's own threads are."""
    assert aws_recorder._classify(sys._getframe()) is None
    code = compile("def f(g):\n    return g()\n", str(ROOT / "chalicelib" / "fake.py"), "exec")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    import threading

    seen: list[str | None] = []
    thread = threading.Thread(target=namespace["f"], args=(lambda: seen.append(
        aws_recorder._classify(sys._getframe(1))),))
    thread.start()
    thread.join()
    assert seen == ["chalicelib/fake.py:2"]


# ---- a fake AWS: moto's server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def _session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                 region_name="us-east-1")


def test_token_secret_read_from_ssm_on_cold_start(moto_url: str, stack: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The app-side contract: with TOKEN_SECRET_PARAM (and no TOKEN_SECRET) the key comes from
    that SSM SecureString, once per cold start. Driven through a real handler (REST sign-in),
    so the recorder checks ssm:GetParameter against the prod policy too."""
    from chalicelib import config

    secret = os.environ["TOKEN_SECRET"]
    name = "/clicktochat/test/token-secret"
    ssm = _session().client("ssm", endpoint_url=moto_url)
    ssm.put_parameter(Name=name, Type="SecureString", Value=secret, Overwrite=True)
    monkeypatch.delenv("TOKEN_SECRET")
    monkeypatch.setenv("TOKEN_SECRET_PARAM", name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    config.token_secret.cache_clear()  # a cold start
    try:
        request = urllib.request.Request(
            f"{stack.gateway.http_url}/api/auth/login", method="POST",
            data=json.dumps({"agent": "nobody-here", "password": "not the password"}).encode(),
            headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
        assert config.token_secret() == secret.encode()
    finally:
        config.token_secret.cache_clear()
    assert any(c.service == "ssm" and c.resource == (("parameter", "$TOKEN_SECRET_PARAM"),)
               for c in aws_recorder.RECORDER.calls)


# The template minus what moto's CloudFormation cannot create (CloudFront, SES, alarms, bucket
# policy); their outputs are replaced by a distribution made through moto's CloudFront API.
MOTO_TYPES = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::SNS::Topic",
              "AWS::Logs::LogGroup"}


def moto_template(distribution_id: str, domain: str, stage: str) -> str:
    doc = load_template()
    dropped = {k for k, r in doc["Resources"].items() if r["Type"] not in MOTO_TYPES}
    doc["Resources"] = {k: r for k, r in doc["Resources"].items() if k not in dropped}
    constants = {"DistributionId": distribution_id, "DistributionDomainName": domain,
                 "SiteUrl": f"https://{domain}", "ConfigurationSetName": f"clicktochat-{stage}"}
    mentions = re.compile(r"\b(" + "|".join(sorted(dropped)) + r")\b")
    outputs = {}
    for key, output in doc["Outputs"].items():
        if key in constants:
            outputs[key] = {"Value": constants[key]}
        elif not mentions.search(json.dumps(output)):
            outputs[key] = output
    doc["Outputs"] = outputs
    return str(yaml.safe_dump(doc, sort_keys=False))


class FakeWebsocketStages:
    """moto 5.2 has no apigatewayv2 UpdateStage: this plays GetStage and UpdateStage of the
    WebSocket API's stage (botocore's before-call hook answers instead of the network), as AWS
    keeps it: settings not given are left as they are."""

    def __init__(self, session: boto3.session.Session) -> None:
        self.stages: dict[tuple[str, str], dict[str, Any]] = {}
        self.params: dict[str, Any] = {}
        session.events.register("before-parameter-build.apigatewayv2.*", self._params)
        session.events.register("before-call.apigatewayv2.GetStage", self._get)
        session.events.register("before-call.apigatewayv2.UpdateStage", self._update)

    def _params(self, params: dict[str, Any], **_: Any) -> None:
        self.params = dict(params)

    def _stage(self) -> dict[str, Any]:
        key = (self.params["ApiId"], self.params["StageName"])
        defaults = {"DataTraceEnabled": False, "DetailedMetricsEnabled": False, "LoggingLevel": "OFF"}
        return self.stages.setdefault(key, {"StageName": key[1], "RouteSettings": {},
                                            "DefaultRouteSettings": defaults})

    def _answer(self, stage: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse

        return AWSResponse("", 200, {}, None), json.loads(json.dumps(stage))

    def _get(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        return self._answer(self._stage())

    def _update(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        stage = self._stage()
        stage.update({k: v for k, v in self.params.items() if k not in ("ApiId", "StageName")})
        return self._answer(stage)


class FakeChalice:
    """Plays `chalice deploy/delete`: records each run (with the staged environment) and
    creates in moto what Chalice would (the send_mail function and its SQS mapping, the REST
    API and its stage)."""

    def __init__(self, session: boto3.session.Session, url: str, stage: str) -> None:
        self.session, self.url, self.stage = session, url, stage
        self.runs: list[tuple[str, dict[str, str]]] = []
        self.rest_api_id = ""

    def __call__(self, args: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        command = args[args.index("--project-dir") + 2]
        config = json.loads((cwd / ".chalice" / "config.json").read_text())
        self.runs.append((command, dict(config["stages"][self.stage]["environment_variables"])))
        vendor = cwd / "vendor"  # our pinned botocore, trimmed to the services the app calls
        assert (vendor / "pynamodb").is_dir() and (vendor / "tzdata").is_dir()
        models = {p.name for p in (vendor / "botocore" / "data").iterdir() if p.is_dir()}
        assert models == SHIPPED_SERVICES
        record = cwd / ".chalice" / "deployed" / f"{self.stage}.json"
        lam = self.session.client("lambda", endpoint_url=self.url)
        name = f"clicktochat-{self.stage}-send_mail"
        apigateway = self.session.client("apigateway", endpoint_url=self.url)
        if command == "delete":
            for mapping in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]:
                lam.delete_event_source_mapping(UUID=mapping["UUID"])
            lam.delete_function(FunctionName=name)
            apigateway.delete_rest_api(restApiId=self.rest_api_id)
            record.unlink()
            return
        assert command == "deploy"
        if record.exists():
            return  # already there: Chalice would update code and configuration in place
        iam = self.session.client("iam", endpoint_url=self.url)
        role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                    "Principal": {"Service": "lambda.amazonaws.com"}}]}))
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", "def send_mail(event, context):\n    return {}\n")
        function = lam.create_function(FunctionName=name, Runtime="python3.11", Role=role["Role"]["Arn"],
                                       Handler="app.send_mail", Code={"ZipFile": code.getvalue()})
        queue = self.session.client("sqs", endpoint_url=self.url)
        queue_url = queue.get_queue_url(QueueName=f"clicktochat-{self.stage}-mail")["QueueUrl"]
        queue_arn = queue.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        mapping = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName=name, BatchSize=10)
        rest = self.rest_api_id = apigateway.create_rest_api(name="clicktochat")["id"]
        root = apigateway.get_resources(restApiId=rest)["items"][0]["id"]
        apigateway.put_method(restApiId=rest, resourceId=root, httpMethod="GET",
                              authorizationType="NONE")
        apigateway.put_integration(restApiId=rest, resourceId=root, httpMethod="GET", type="MOCK")
        apigateway.create_deployment(restApiId=rest, stageName="api")
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"schema_version": "2.0", "backend": "api", "resources": [
            {"name": "send_mail", "resource_type": "lambda_function", "lambda_arn": function["FunctionArn"]},
            {"name": "send_mail-sqs-event-source", "resource_type": "sqs_event", "queue_arn": queue_arn,
             "event_uuid": mapping["UUID"], "queue": f"clicktochat-{self.stage}-mail",
             "lambda_arn": function["FunctionArn"]},
            {"name": "websocket_api", "resource_type": "websocket_api", "websocket_api_id": "wsapi12345",
             "websocket_api_url": "wss://wsapi12345.execute-api.us-east-1.amazonaws.com/api/"},
            {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": rest,
             "rest_api_url": f"https://{rest}.execute-api.us-east-1.amazonaws.com/api/"},
        ]}))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project for the deploy script to write into (config, policy, records)."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, root / name)
    shutil.copytree(ROOT / "chalicelib", root / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "infra").mkdir()
    for name in ("__init__.py", "runtime.py", "template.yaml"):
        shutil.copy2(ROOT / "infra" / name, root / "infra" / name)
    shutil.copytree(ROOT / "infra" / "deploy", root / "infra" / "deploy",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "widget").mkdir()
    for name in ("widget.js", "chatlink.js"):
        shutil.copy2(ROOT / "widget" / name, root / "widget" / name)
    shutil.copytree(ROOT / "console", root / "console")
    (root / ".chalice").mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy2(path, root / ".chalice" / path.name)
    build = ROOT / BUILD_ROOT
    for vendor in build.glob("vendor-*"):  # built by the package test or an earlier run
        shutil.copytree(vendor, root / BUILD_ROOT / vendor.name)
    return root


def _mutating(operation: str) -> bool:
    return not operation.startswith(("Describe", "Get", "List", "Head"))


def test_deploy_then_redeploy_changes_nothing_then_destroy(moto_url: str, project: Path) -> None:
    session = _session()
    stage = "prod"
    calls: list[tuple[str, str]] = []
    session.events.register("before-call.*.*", lambda model, **_: calls.append(
        (model.service_model.service_name, model.name)))
    websocket_stages = FakeWebsocketStages(session)
    cloudfront = session.client("cloudfront", endpoint_url=moto_url)
    distribution = cloudfront.create_distribution(DistributionConfig={
        "CallerReference": f"test-{time.time()}", "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "site", "DomainName": "site.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "site", "ViewerProtocolPolicy": "redirect-to-https",
                                 "CachePolicyId": "658327ea-f89d-4fab-a63f-7e88639e58f6"}})["Distribution"]
    calls.clear()
    fake_chalice = FakeChalice(session, moto_url, stage)
    printed: list[str] = []
    env = {"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "ADMIN_PASSWORD": "first admin password"}
    body = moto_template(distribution["Id"], distribution["DomainName"], stage)
    deployer = Deployer(stage, session=session, endpoint_url=moto_url, root=project,
                               runner=fake_chalice, out=printed.append, env=env, template_body=body)
    options = Options(mail_from="chat@shop.test", team_email="team@shop.test")

    first = deployer.deploy(options)

    # Order: secret, stack, chalice (twice: the WebSocket API id exists only after the first),
    # the SQS mapping fix, the uploads, the invalidation.
    mutations = [c for c in calls if _mutating(c[1])]
    order = [c for c in mutations if c in {("ssm", "PutParameter"), ("cloudformation", "CreateStack"),
                                           ("lambda", "UpdateEventSourceMapping"), ("s3", "PutObject"),
                                           ("cloudfront", "CreateInvalidation")}]
    assert [order[0], order[1], order[2]] == [("ssm", "PutParameter"), ("cloudformation", "CreateStack"),
                                              ("lambda", "UpdateEventSourceMapping")]
    assert order[-1] == ("cloudfront", "CreateInvalidation") and ("s3", "PutObject") in order
    assert [run[0] for run in fake_chalice.runs] == ["deploy", "deploy"]
    assert "WEBSOCKET_API_ID" not in fake_chalice.runs[0][1]
    assert fake_chalice.runs[1][1]["WEBSOCKET_API_ID"] == "wsapi12345"
    assert fake_chalice.runs[1][1]["TABLE_NAME"] == "clicktochat-prod"
    assert fake_chalice.runs[1][1]["MAIL_FROM"] == "chat@shop.test"

    lam = session.client("lambda", endpoint_url=moto_url)
    mapping = lam.list_event_source_mappings(
        FunctionName="clicktochat-prod-send_mail")["EventSourceMappings"][0]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}

    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert config["stages"][stage]["environment_variables"]["WEBSOCKET_API_ID"] == "wsapi12345"
    policy = json.loads((project / ".chalice" / "policy-prod.json").read_text())
    assert "arn:aws:ses:*:*:identity/shop.test" in json.dumps(policy)
    assert "wsapi12345/api/POST/@connections/*" in json.dumps(policy)

    ssm = session.client("ssm", endpoint_url=moto_url)
    key = ssm.get_parameter(Name="/clicktochat/prod/token-secret", WithDecryption=True)["Parameter"]
    assert key["Type"] == "SecureString" and len(key["Value"]) >= 32

    # Both API stages throttled and logging, into the stack's groups; the account got API
    # Gateway's CloudWatch role from a stack of its own (moto's account has none).
    protection = api_protection(config, stage)
    apigateway = session.client("apigateway", endpoint_url=moto_url)
    rest_stage = apigateway.get_stage(restApiId=fake_chalice.rest_api_id, stageName="api")
    assert rest_stage["methodSettings"]["*/*"]["throttlingRateLimit"] == protection.rest.rate_limit
    assert rest_stage["methodSettings"]["*/*"]["throttlingBurstLimit"] == protection.rest.burst_limit
    login = next(v for k, v in rest_stage["methodSettings"].items() if "login" in k)
    assert login["throttlingBurstLimit"] == protection.rest_routes[("POST", "/auth/login")].burst_limit
    assert rest_stage["accessLogSettings"]["destinationArn"].endswith(
        ":log-group:/aws/apigateway/clicktochat-prod-rest-access")
    ws_stage = websocket_stages.stages[("wsapi12345", "api")]
    assert ws_stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == protection.websocket.rate_limit
    assert ws_stage["DefaultRouteSettings"]["LoggingLevel"] == "OFF"  # what it had is kept
    assert ws_stage["RouteSettings"]["$connect"]["ThrottlingBurstLimit"] == protection.websocket_routes[
        "$connect"].burst_limit
    assert ws_stage["AccessLogSettings"]["DestinationArn"].endswith(
        ":log-group:/aws/apigateway/clicktochat-prod-websocket-access")
    groups = session.client("logs", endpoint_url=moto_url).describe_log_groups(
        logGroupNamePrefix="/aws/apigateway/clicktochat-prod-")["logGroups"]
    assert [g["retentionInDays"] for g in groups] == [30, 30]
    assert ("cloudformation", "CreateStack") in calls
    role_stack = session.client("cloudformation", endpoint_url=moto_url).describe_stacks(
        StackName="clicktochat-apigateway-logging")["Stacks"][0]
    assert role_stack["StackStatus"] == "CREATE_COMPLETE"

    ws = "wss://wsapi12345.execute-api.us-east-1.amazonaws.com/api"
    api = f"https://{fake_chalice.rest_api_id}.execute-api.us-east-1.amazonaws.com/api"
    assert first.snippet == (f'<script async src="https://{distribution["DomainName"]}/widget/widget.js" '
                             f'data-site="default"\n        data-ws="{ws}" data-api="{api}"></script>')
    assert first.snippet in "\n".join(printed)
    assert first.admin_password == "first admin password"

    s3 = session.client("s3", endpoint_url=moto_url)
    outputs = deployer.outputs()
    bucket = outputs["SiteBucketName"]
    widget = s3.get_object(Bucket=bucket, Key="widget/widget.js")
    assert widget["CacheControl"] == CACHE_WIDGET
    assert widget["ContentType"] == "text/javascript; charset=utf-8"
    console_config = s3.get_object(Bucket=bucket, Key="console/config.js")["Body"].read().decode()
    assert json.dumps(ws) in console_config and json.dumps(api) in console_config
    index = s3.get_object(Bucket=bucket, Key="console/index.html")
    html = index["Body"].read().decode()
    assert index["CacheControl"] == "no-cache"
    hashed = re.findall(r'src="/(console/config\.[0-9a-f]{10}\.js|console/console\.[0-9a-f]{10}\.js)"', html)
    assert len(hashed) == 2, html[-600:]
    assert s3.head_object(Bucket=bucket, Key=hashed[1])["CacheControl"] == CACHE_IMMUTABLE

    table = session.client("dynamodb", endpoint_url=moto_url)
    admin = table.get_item(TableName="clicktochat-prod",
                           Key={"pk": {"S": "AGENT#admin"}, "sk": {"S": "META"}})
    assert admin["Item"]["role"]["S"] == "admin" and admin["Item"]["team_pk"]["S"] == "TEAM#default"
    assert table.describe_table(TableName="clicktochat-prod")["Table"]["GlobalSecondaryIndexes"]

    # Second run: nothing changes anywhere.
    calls.clear()
    printed.clear()
    config_before = (project / ".chalice" / "config.json").read_text()
    second = deployer.deploy(options)
    assert second.changes == []
    assert [c for c in calls if _mutating(c[1])] == []
    assert [run[0] for run in fake_chalice.runs] == ["deploy", "deploy"]
    assert second.snippet == first.snippet and second.admin_password is None
    assert "nothing changed" in printed
    assert (project / ".chalice" / "config.json").read_text() == config_before

    # Destroy: everything goes, and the stage config forgets the API.
    removed = deployer.destroy(backup=True)
    assert any(r.startswith("table backed up") for r in removed)
    assert [run[0] for run in fake_chalice.runs] == ["deploy", "deploy", "delete"]
    assert deployer.stack() is None
    assert any("deleted" in r for r in removed)
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name="/clicktochat/prod/token-secret")
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert "WEBSOCKET_API_ID" not in config["stages"][stage]["environment_variables"]
    assert "*/api/POST/@connections/*" in (project / ".chalice" / "policy-prod.json").read_text()
    assert deployer.destroy() == []  # and again: nothing left to remove


def test_deploy_refuses_placeholder_mail(project: Path) -> None:
    deployer = Deployer("prod", session=_session(), root=project,
                               runner=FakeChalice(_session(), "", "prod"), out=lambda line: None, env={})
    with pytest.raises(DeployError, match=re.escape("MAIL_FROM is chat@example.com")):
        deployer.deploy(Options(team_email="team@shop.test"))


# ---- the app's calls against the prod policy (last test of the run) ------------------------------


@pytest.mark.aws_policy_last
def test_app_calls_match_prod_policy(aws_calls: tuple[aws_recorder.Recorder, bool]) -> None:
    """Every AWS action the app performed in this run is allowed by .chalice/policy-prod.json
    on the prod resources; after a full run, the policy also grants nothing unused."""
    recorder, complete = aws_calls
    assert not [c for c in recorder.calls if c.service == "recorder-error"], recorder.calls
    evaluation = aws_recorder.evaluate(aws_recorder.load_policy(), recorder.calls,
                                       aws_recorder.prod_settings())
    problems = evaluation.report(complete)
    assert not problems, problems


def test_stack_parameters_follow_mail_from(project: Path) -> None:
    deployer = Deployer("prod", session=_session(), root=project, out=lambda line: None, env={})
    first = deployer.stack_parameters(Options(), "chat@shop.test", {}, "")
    assert first["MailIdentity"] == "shop.test" and first["MailIdentityMode"] == "domain"
    assert first["TableDeletionProtection"] == "true" and first["Stage"] == "prod"
    address = deployer.stack_parameters(Options(mail_identity_mode="address"), "chat@shop.test",
                                        first, "")
    assert address["MailIdentity"] == "chat@shop.test"
    kept = deployer.stack_parameters(Options(), "chat@shop.test", address, "")
    assert kept == address  # a later run without options changes nothing
    moved = deployer.stack_parameters(Options(), "chat@other.test", first, "")
    assert moved["MailIdentity"] == "other.test"
    with_alarm = deployer.stack_parameters(Options(alarm_email="ops@shop.test"), "chat@shop.test",
                                           first, "https://api.shop.test")
    assert with_alarm["AlarmEmail"] == "ops@shop.test" and with_alarm["ApiOrigins"] == "https://api.shop.test"
