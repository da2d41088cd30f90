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

from infra import deploy
from tests import aws_recorder
from tests.aws_recorder import Call

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("dev", "prod")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return deploy.load_template()


@pytest.fixture(scope="module")
def chalice_config() -> dict[str, Any]:
    return deploy.load_chalice_config()


# ---- the template -------------------------------------------------------------------------------


def test_table_matches_models(template: dict[str, Any]) -> None:
    """Keys, attributes and every GSI (queue, shift, due, site_visitors, team, by_visitor,
    by_email) as the models define them; `python -m infra.deploy table` prints the block to
    paste on drift."""
    assert deploy.template_table_schema(template) == deploy.table_schema(), deploy.table_yaml()
    props = template["Resources"]["Table"]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert {i["IndexName"] for i in props["GlobalSecondaryIndexes"]} == {
        "queue", "shift", "due", "site_visitors", "team", "by_visitor", "by_email"}


def test_table_drift_is_detected(template: dict[str, Any]) -> None:
    drifted = json.loads(json.dumps(template))
    drifted["Resources"]["Table"]["Properties"]["GlobalSecondaryIndexes"].pop()
    assert deploy.template_table_schema(drifted) != deploy.table_schema()
    assert deploy.main(["table", "--check"]) == 0


@pytest.mark.parametrize("stage", STAGES)
def test_mail_queue_redrive_and_visibility(template: dict[str, Any], chalice_config: dict[str, Any],
                                           stage: str) -> None:
    from chalicelib import config

    queue = template["Resources"]["MailQueue"]["Properties"]
    dlq = template["Resources"]["MailDeadLetterQueue"]["Properties"]
    receives = int(deploy.stage_env(chalice_config, stage).get("MAIL_MAX_RECEIVES", config.MAIL_MAX_RECEIVES))
    assert queue["RedrivePolicy"]["maxReceiveCount"] == receives == config.MAIL_MAX_RECEIVES
    assert template["Outputs"]["MailMaxReceives"]["Value"] == str(receives)
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["MailDeadLetterQueue", "Arn"]}
    sender_timeout = deploy.function_setting(chalice_config, stage, "send_mail", "lambda_timeout")
    assert queue["VisibilityTimeout"] > 6 * sender_timeout
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    from chalicelib.mail import LEASE_SECONDS

    assert sender_timeout < LEASE_SECONDS  # a worker killed mid-send is not overtaken


@pytest.mark.parametrize("stage", STAGES)
def test_stage_config_names_the_stacks_resources(chalice_config: dict[str, Any], stage: str) -> None:
    names = deploy.names(stage)
    env = deploy.stage_env(chalice_config, stage)
    assert env["TABLE_NAME"] == names.table
    assert env["MAIL_QUEUE_NAME"] == names.mail_queue
    assert env["MAIL_DLQ_NAME"] == names.mail_dlq
    assert env["TOKEN_SECRET_PARAM"] == names.token_secret_param
    assert env["WEBSOCKET_STAGE"] == chalice_config["websocket_api_stage"]
    assert "TOKEN_SECRET" not in env  # the key lives in SSM, never in the Lambda configuration
    assert chalice_config["autogen_policy"] is False
    st = deploy.stage_config(chalice_config, stage)
    assert (ROOT / ".chalice" / st["iam_policy_file"]).exists()
    assert deploy.function_setting(chalice_config, stage, "send_mail", "reserved_concurrency") >= 2
    # The template derives the same names from AppName and Stage.
    rendered = json.dumps(deploy.load_template()).replace("${AppName}", names.app).replace("${Stage}", stage)
    for name in (names.table, names.mail_queue, names.mail_dlq, names.token_secret_param):
        assert name in rendered


@pytest.mark.parametrize("stage", STAGES)
def test_policy_is_scoped_to_the_stage(chalice_config: dict[str, Any], stage: str) -> None:
    policy = json.loads(deploy.policy_path(ROOT, chalice_config, stage).read_text())
    names = deploy.names(stage)
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
        i["IndexName"] for i in deploy.table_schema()["GlobalSecondaryIndexes"])
    trigger = next(s for s in policy["Statement"] if s["Sid"] == "MailQueueTrigger")
    assert trigger["Resource"] == [f"arn:aws:sqs:*:*:{names.mail_queue}"]
    assert set(trigger["Action"]) == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def test_render_policy_pins_identity_and_api() -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    rendered = deploy.render_policy(policy, mail_identity="shop.test", configuration_set="clicktochat-prod",
                                    websocket_api_id="abc123", websocket_stage="api")
    mail = next(s for s in rendered["Statement"] if s["Sid"] == "SendMail")
    assert mail["Resource"] == ["arn:aws:ses:*:*:identity/shop.test",
                                "arn:aws:ses:*:*:configuration-set/clicktochat-prod"]
    ws = next(s for s in rendered["Statement"] if s["Sid"] == "WebSocketConnections")
    assert ws["Resource"] == ["arn:aws:execute-api:*:*:abc123/api/POST/@connections/*",
                              "arn:aws:execute-api:*:*:abc123/api/DELETE/@connections/*"]
    again = deploy.render_policy(rendered, mail_identity="shop.test", configuration_set="clicktochat-prod",
                                 websocket_api_id="abc123", websocket_stage="api")
    assert again == rendered


# ---- the package ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> deploy.Package:
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
    for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
        del env[key]

    def run(args: list[str], cwd: Path, child_env: Mapping[str, str]) -> None:
        done = subprocess.run(args, cwd=cwd, env=dict(child_env), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    return deploy.package("prod", runner=run, env=env, out=lambda line: None)


def test_chalice_package_is_small(built: deploy.Package) -> None:
    assert built.zip_bytes < deploy.MAX_PACKAGE_BYTES, f"{built.zip_bytes} bytes"
    with zipfile.ZipFile(built.zip_path) as archive:
        top = {name.split("/", 1)[0] for name in archive.namelist()}
    assert {"app.py", "chalicelib", "pynamodb", "aws_lambda_powertools", "chalice", "botocore",
            "tzdata"} <= top
    assert not top & deploy.NOT_SHIPPED, top


def test_merged_template_sets_partial_batch_responses(built: deploy.Package) -> None:
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


def _cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    cfn_lint = str(Path(sys.executable).with_name("cfn-lint"))
    return subprocess.run([cfn_lint, "--format", "parseable", str(path)], capture_output=True, text=True)


def test_merged_template_passes_cfn_lint(built: deploy.Package) -> None:
    """No errors, and no warnings either (cfn-lint exits 0 only then)."""
    done = _cfn_lint(built.merged_template)
    assert done.returncode == 0, done.stdout + done.stderr


def test_infra_template_passes_cfn_lint() -> None:
    done = _cfn_lint(deploy.TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr


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
MOTO_TYPES = {"AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::SNS::Topic"}


def moto_template(distribution_id: str, domain: str, stage: str) -> str:
    doc = deploy.load_template()
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


class FakeChalice:
    """Plays `chalice deploy/delete`: records each run (with the staged environment) and
    creates in moto what Chalice would (the send_mail function and its SQS mapping)."""

    def __init__(self, session: boto3.session.Session, url: str, stage: str) -> None:
        self.session, self.url, self.stage = session, url, stage
        self.runs: list[tuple[str, dict[str, str]]] = []

    def __call__(self, args: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        command = args[args.index("--project-dir") + 2]
        config = json.loads((cwd / ".chalice" / "config.json").read_text())
        self.runs.append((command, dict(config["stages"][self.stage]["environment_variables"])))
        assert (cwd / "vendor" / "pynamodb").is_dir() and not (cwd / "vendor" / "botocore").exists()
        record = cwd / ".chalice" / "deployed" / f"{self.stage}.json"
        lam = self.session.client("lambda", endpoint_url=self.url)
        name = f"clicktochat-{self.stage}-send_mail"
        if command == "delete":
            for mapping in lam.list_event_source_mappings(FunctionName=name)["EventSourceMappings"]:
                lam.delete_event_source_mapping(UUID=mapping["UUID"])
            lam.delete_function(FunctionName=name)
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
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"schema_version": "2.0", "backend": "api", "resources": [
            {"name": "send_mail", "resource_type": "lambda_function", "lambda_arn": function["FunctionArn"]},
            {"name": "send_mail-sqs-event-source", "resource_type": "sqs_event", "queue_arn": queue_arn,
             "event_uuid": mapping["UUID"], "queue": f"clicktochat-{self.stage}-mail",
             "lambda_arn": function["FunctionArn"]},
            {"name": "websocket_api", "resource_type": "websocket_api", "websocket_api_id": "wsapi12345",
             "websocket_api_url": "wss://wsapi12345.execute-api.us-east-1.amazonaws.com/api/"},
            {"name": "rest_api", "resource_type": "rest_api", "rest_api_id": "rest123456",
             "rest_api_url": "https://rest123456.execute-api.us-east-1.amazonaws.com/api/"},
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
    for name in ("__init__.py", "deploy.py", "template.yaml"):
        shutil.copy2(ROOT / "infra" / name, root / "infra" / name)
    (root / "widget").mkdir()
    for name in ("widget.js", "chatlink.js"):
        shutil.copy2(ROOT / "widget" / name, root / "widget" / name)
    shutil.copytree(ROOT / "console", root / "console")
    (root / ".chalice").mkdir()
    for path in (ROOT / ".chalice").glob("*.json"):
        shutil.copy2(path, root / ".chalice" / path.name)
    build = ROOT / deploy.BUILD_ROOT
    for vendor in build.glob("vendor-*"):  # built by the package test or an earlier run
        shutil.copytree(vendor, root / deploy.BUILD_ROOT / vendor.name)
    return root


def _mutating(operation: str) -> bool:
    return not operation.startswith(("Describe", "Get", "List", "Head"))


def test_deploy_then_redeploy_changes_nothing_then_destroy(moto_url: str, project: Path) -> None:
    session = _session()
    stage = "prod"
    calls: list[tuple[str, str]] = []
    session.events.register("before-call.*.*", lambda model, **_: calls.append(
        (model.service_model.service_name, model.name)))
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
    deployer = deploy.Deployer(stage, session=session, endpoint_url=moto_url, root=project,
                               runner=fake_chalice, out=printed.append, env=env, template_body=body)
    options = deploy.Options(mail_from="chat@shop.test", team_email="team@shop.test")

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

    ws = "wss://wsapi12345.execute-api.us-east-1.amazonaws.com/api"
    api = "https://rest123456.execute-api.us-east-1.amazonaws.com/api"
    assert first.snippet == (f'<script async src="https://{distribution["DomainName"]}/widget/widget.js" '
                             f'data-site="default"\n        data-ws="{ws}" data-api="{api}"></script>')
    assert first.snippet in "\n".join(printed)
    assert first.admin_password == "first admin password"

    s3 = session.client("s3", endpoint_url=moto_url)
    outputs = deployer.outputs()
    bucket = outputs["SiteBucketName"]
    widget = s3.get_object(Bucket=bucket, Key="widget/widget.js")
    assert widget["CacheControl"] == deploy.CACHE_WIDGET
    assert widget["ContentType"] == "text/javascript; charset=utf-8"
    console_config = s3.get_object(Bucket=bucket, Key="console/config.js")["Body"].read().decode()
    assert json.dumps(ws) in console_config and json.dumps(api) in console_config
    index = s3.get_object(Bucket=bucket, Key="console/index.html")
    html = index["Body"].read().decode()
    assert index["CacheControl"] == "no-cache"
    hashed = re.findall(r'src="/(console/config\.[0-9a-f]{10}\.js|console/console\.[0-9a-f]{10}\.js)"', html)
    assert len(hashed) == 2, html[-600:]
    assert s3.head_object(Bucket=bucket, Key=hashed[1])["CacheControl"] == deploy.CACHE_IMMUTABLE

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
    deployer = deploy.Deployer("prod", session=_session(), root=project,
                               runner=FakeChalice(_session(), "", "prod"), out=lambda line: None, env={})
    with pytest.raises(deploy.DeployError, match=re.escape("MAIL_FROM is chat@example.com")):
        deployer.deploy(deploy.Options(team_email="team@shop.test"))


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
    deployer = deploy.Deployer("prod", session=_session(), root=project, out=lambda line: None, env={})
    first = deployer.stack_parameters(deploy.Options(), "chat@shop.test", {}, "")
    assert first["MailIdentity"] == "shop.test" and first["MailIdentityMode"] == "domain"
    assert first["TableDeletionProtection"] == "true" and first["Stage"] == "prod"
    address = deployer.stack_parameters(deploy.Options(mail_identity_mode="address"), "chat@shop.test",
                                        first, "")
    assert address["MailIdentity"] == "chat@shop.test"
    kept = deployer.stack_parameters(deploy.Options(), "chat@shop.test", address, "")
    assert kept == address  # a later run without options changes nothing
    moved = deployer.stack_parameters(deploy.Options(), "chat@other.test", first, "")
    assert moved["MailIdentity"] == "other.test"
    with_alarm = deployer.stack_parameters(deploy.Options(alarm_email="ops@shop.test"), "chat@shop.test",
                                           first, "https://api.shop.test")
    assert with_alarm["AlarmEmail"] == "ops@shop.test" and with_alarm["ApiOrigins"] == "https://api.shop.test"
