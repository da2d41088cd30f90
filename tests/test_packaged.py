"""The zip as shipped, run as Lambda runs it (infra/sandbox.py), against the local services.

``make package`` builds the zip; it is unpacked into a task directory and imported by a venv of
the runtime's Python that holds only the runtime-included SDK (infra/runtime.py), with the OS
zone database hidden. Every function the package declares is invoked through its handler,
``app.<handler>(event, context)``, with AWS-shaped events, in a fresh process (a cold
container), and what it did is checked where it lands: frames on a real WebSocket client of the
stand-in, items in DynamoDB Local, jobs on the SQS queue, mails in the SES stand-in.

The suite's other tests run the same code in our own venv; only this file can see an import,
an SDK feature or a data file that exists here and not on Lambda.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventModel,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
    EventBridgeModel,
    SesModel,
    SqsModel,
)

from infra import runtime, sandbox
from infra.deploy import DeployError, packaging
from infra.deploy.packaging import SHIPPED_SERVICES, Package, lambda_runtime, package
from infra.deploy.stack import Deployer, Options
from infra.local.smtp import ses_event
from infra.local.sqs import _record as sqs_record
from tests.support.client import Client, eventually
from tests.support.flows import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("stack")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Package:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env["AWS_DEFAULT_REGION"] = "us-east-1"

    def run(args: list[str], cwd: Path, child_env: Mapping[str, str]) -> None:
        done = subprocess.run(args, cwd=cwd, env=dict(child_env), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr

    return package("prod", runner=run, env=env, out=lambda line: None)


@pytest.fixture(scope="module")
def task_root(shipped: Package, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sandbox.unpack(shipped.zip_path, tmp_path_factory.mktemp("var-task"))


@pytest.fixture(scope="module")
def venv() -> Path:
    return sandbox.runtime_venv()


@pytest.fixture(scope="module")
def functions(shipped: Package) -> dict[str, tuple[str, int]]:
    return sandbox.handlers(shipped.sam_template)


def _app_env() -> dict[str, str]:
    """The settings the app reads (every name chalicelib and app.py look up), taken from the
    local stack's environment, plus credentials: what the stage's Lambda environment holds."""
    from chalicelib import config

    source = "\n".join(p.read_text() for p in [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")])
    names = set(re.findall(r"os\.environ(?:\.get)?[(\[]\"([A-Z0-9_]+)\"", source)) | set(config.variables())
    names |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    return {k: v for k, v in os.environ.items()
            if k in names or k.startswith("AWS_ENDPOINT_URL_")}


def _invoke(venv: Path, task_root: Path, functions: dict[str, tuple[str, int]], function: str,
            events: Sequence[dict[str, Any]], probes: Sequence[str] = (),
            env: Mapping[str, str] | None = None) -> dict[str, Any]:
    handler, memory = functions[function]
    report = sandbox.invoke(venv, task_root, f"clicktochat-prod-{function}", handler, events,
                            env={**_app_env(), **(env or {})}, memory_mb=memory, probes=probes)
    # Our pinned botocore from the package, never the runtime's older one.
    assert report["botocore"]["file"].startswith(str(task_root)), report["botocore"]
    assert report["botocore"]["version"] == _pinned("botocore")
    assert not report["boto3_imported"]
    failed = [r for r in report["results"] if not r["ok"]]
    assert not failed, failed[0]["trace"] + report["logs"][-3000:]
    return report


def _pinned(name: str) -> str:
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==", 1)[1].split()[0]
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def _new_connection(stack: Any, site: str, clients: list[Client]) -> tuple[Client, str]:
    """A real visitor socket on the stand-in, and its connection id."""
    before = set(stack.gateway.connection_ids())
    client = Client(stack.gateway.ws_url, {"site": site})
    clients.append(client)
    (connection_id,) = set(stack.gateway.connection_ids()) - before
    return client, connection_id


# ---- the package declares what we test -----------------------------------------------------------


def test_every_function_is_on_the_runtime_we_state(shipped: Package,
                                                   functions: dict[str, tuple[str, int]]) -> None:
    sam = json.loads(shipped.sam_template.read_text())
    runtimes = {r["Properties"]["Runtime"] for r in sam["Resources"].values()
                if r["Type"] == "AWS::Serverless::Function"}
    assert runtimes == {runtime.RUNTIME}
    assert set(functions) == {"WebsocketConnect", "WebsocketMessage", "WebsocketDisconnect",
                              "APIHandler", "SendMail", "Housekeeping", "ReceiveEmail"}


def test_the_package_carries_its_sdk_trimmed_and_the_zone_database(task_root: Path) -> None:
    models = {p.name for p in (task_root / "botocore" / "data").iterdir() if p.is_dir()}
    assert models == SHIPPED_SERVICES
    assert (task_root / "tzdata" / "zoneinfo" / "Europe" / "Paris").is_file()
    assert not (task_root / "boto3").exists()


def test_a_cold_start_compiles_nothing_but_the_handler_module(venv: Path, task_root: Path,
                                                               functions: dict[str, tuple[str, int]]) -> None:
    """/var/task is read-only: a module without its pyc in the zip is compiled on every cold
    start. Every module the app loads ships compiled, for the runtime's Python (only app.py and
    Chalice's own app.py, which ``chalice package`` adds itself, are left to compile)."""
    report = _invoke(venv, task_root, functions, "WebsocketMessage", [], probes=[
        "import os, sys, importlib.util\n"
        "task = os.environ['LAMBDA_TASK_ROOT']\n"
        "mods = [m for m in list(sys.modules.values())"
        " if (getattr(m, '__file__', None) or '').startswith(task)]\n"
        "missing = [m.__file__[len(task):] for m in mods if m.__file__.endswith('.py')"
        " and not os.path.exists(importlib.util.cache_from_source(m.__file__))]\n"
        "result = [len(mods), sorted(missing)]"])
    loaded, missing = report["probes"][0]
    assert loaded > 150
    assert missing == ["/app.py", "/chalice/__init__.py", "/chalice/app.py"]


def test_shipped_services_are_exactly_the_ones_the_code_calls() -> None:
    """Trimming botocore is only safe while this list and the code agree: every service the
    app makes a client for (``aws.client("...")``, and PynamoDB's ``dynamodb``) is shipped."""
    source = "\n".join(p.read_text() for p in (ROOT / "chalicelib").rglob("*.py"))
    called = set(re.findall(r"\bclient\(\s*\"([a-z0-9-]+)\"", source)) | {"dynamodb"}
    assert called == SHIPPED_SERVICES


def test_events_we_send_are_aws_shaped() -> None:
    """The sandbox's events pass Powertools' parser models for each event source."""
    APIGatewayWebSocketConnectEventModel.model_validate(sandbox.ws_connect("c1=", query={"site": "s"}))
    APIGatewayWebSocketMessageEventModel.model_validate(sandbox.ws_message("c1=", "{}"))
    APIGatewayWebSocketDisconnectEventModel.model_validate(sandbox.ws_disconnect("c1="))
    APIGatewayProxyEventModel.model_validate(sandbox.rest("GET", "/health", "/health"))
    EventBridgeModel.model_validate(sandbox.scheduled("clicktochat-prod-housekeeping-event"))
    record = sqs_record({"MessageId": "m", "ReceiptHandle": "r", "Body": "{}", "MD5OfBody": "x",
                         "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1",
                                        "SenderId": "AID", "ApproximateFirstReceiveTimestamp": "1"}},
                        "arn:aws:sqs:us-east-1:123456789012:q")
    SqsModel.model_validate({"Records": [record]})
    SesModel.model_validate(ses_event(b"From: a@b.org\r\n\r\nhi", "m1", "a@b.org", ["r@c.org"]))


# ---- every handler, as Lambda calls it ------------------------------------------------------------


def test_websocket_functions_run_from_the_zip(stack: Any, site: str, clients: list[Client], venv: Path,
                                              task_root: Path, functions: dict[str, tuple[str, int]]) -> None:
    from chalicelib.models import ConnectionModel

    # $connect in its own cold container: a visitor is admitted and recorded.
    fresh = "pkgConnect1234="
    report = _invoke(venv, task_root, functions, "WebsocketConnect",
                     [sandbox.ws_connect(fresh, query={"site": site}, origin="https://shop.example")])
    assert report["results"][0]["result"]["statusCode"] == 200
    assert ConnectionModel.get(f"CONN#{fresh}", "META", consistent_read=True).role == "visitor"

    # $default: the packaged handler answers a real socket of the stand-in through the
    # @connections API (DynamoDB reads and writes, a post by the management API client).
    visitor, connection_id = _new_connection(stack, site, clients)
    _invoke(venv, task_root, functions, "WebsocketMessage",
            [sandbox.ws_message(connection_id, json.dumps({"action": "hello"})),
             sandbox.ws_message(connection_id, json.dumps({"action": "start"})),
             sandbox.ws_message(connection_id, "not json")])
    assert visitor.expect("welcome")["type"] == "welcome"
    assert visitor.expect("conversation")["conversation"]
    assert visitor.expect("error")["code"] == "bad_json"

    # $disconnect forgets the connection.
    _invoke(venv, task_root, functions, "WebsocketDisconnect", [sandbox.ws_disconnect(fresh)])
    with pytest.raises(ConnectionModel.DoesNotExist):
        ConnectionModel.get(f"CONN#{fresh}", "META", consistent_read=True)


def test_rest_and_mail_functions_run_from_the_zip(stack: Any, site: str, venv: Path, task_root: Path,
                                                  functions: dict[str, tuple[str, int]]) -> None:
    from chalicelib import agents, config, sites

    hours = json.loads((ROOT / "docs" / "hours-example.json").read_text())
    sites.update(site, {"hours": hours, "team_email": f"team-{site}@example.org", "name": "Packaged"})
    agents.create("pkgadmin", "Pat", PASSWORD, site=site, role="admin")
    stack.poller.drain()  # earlier tests' jobs
    before = len(stack.ses.emails())

    report = _invoke(venv, task_root, functions, "APIHandler", [
        sandbox.rest("GET", "/health", "/health"),
        # business hours in the site's zone: zoneinfo, with only the packaged tzdata to read
        sandbox.rest("GET", f"/sites/{site}/status", "/sites/{site}/status", path_parameters={"site": site}),
        sandbox.rest("POST", "/auth/login", "/auth/login", body={"agent": "pkgadmin", "password": PASSWORD}),
        sandbox.rest("POST", "/offline", "/offline",
                     body={"site": site, "email": "pkg@example.org", "text": "Sent from the zip"}),
    ], probes=["import zoneinfo, tzdata, datetime\n"
               "result = [list(zoneinfo.TZPATH), tzdata.__file__,"
               " str(zoneinfo.ZoneInfo('Pacific/Chatham').utcoffset(datetime.datetime(2026, 7, 1)))]"])
    health, status, login, offline = (r["result"] for r in report["results"])
    assert health["statusCode"] == 200
    assert status["statusCode"] == 200 and "in_hours" in json.loads(status["body"])
    assert login["statusCode"] == 200 and json.loads(login["body"])["token"]
    assert offline["statusCode"] == 202
    tzpath, tzdata_file, chatham = report["probes"][0]
    assert tzpath == [] and tzdata_file.startswith(str(task_root)) and chatham == "12:45:00"

    # The job the packaged REST function queued, delivered by SQS to the packaged mail function.
    message_id = json.loads(offline["body"])["id"]
    sqs = stack.sqs.client()
    url = sqs.get_queue_url(QueueName=config.settings().mail_queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    mine: list[dict[str, Any]] = []

    def received() -> bool:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  AttributeNames=["All"], MessageAttributeNames=["All"])
        for message in got.get("Messages", []):
            if message_id in message["Body"]:
                mine.append(message)
            else:  # someone else's job: back on the queue at once
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
        return bool(mine)

    eventually(received, timeout=10)
    report = _invoke(venv, task_root, functions, "SendMail",
                     [{"Records": [sqs_record(m, arn) for m in mine]}])
    assert report["results"][0]["result"] == {"batchItemFailures": []}
    for message in mine:  # what the event source mapping does with a batch that succeeded
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    mails = stack.ses.emails()[before:]
    assert any("Sent from the zip" in m["body"]["text"] for m in mails), mails

    report = _invoke(venv, task_root, functions, "Housekeeping",
                     [sandbox.scheduled("clicktochat-prod-housekeeping-event")])
    assert report["results"][0]["ok"]


def test_receive_email_runs_from_the_zip(stack: Any, site: str, venv: Path, task_root: Path,
                                        functions: dict[str, tuple[str, int]]) -> None:
    """SES receiving's Lambda action, as the stand-in's SMTP server shapes it: the packaged
    function reads the raw email from S3 (moto), parses it (stdlib email, mail-parser-reply
    from the zip) and stores the visitor's line."""
    from chalicelib import clock, config, email_channel
    from chalicelib.store import META, ConversationModel, conversation_key

    conv = ConversationModel(conversation_key(f"pkg-{site}"), site=site, visitor_id="pkgvisitor",
                             status="active", seq=0, created_at=clock.now_ms(), email="pkg@example.org")
    conv.save()
    to = email_channel.reply_address(conv)
    raw = (f"From: pkg@example.org\r\nTo: {to}\r\nSubject: Re\r\nMessage-ID: <pkg@example.org>\r\n\r\n"
           "Answered from the zip\r\n\r\nOn Mon, Team wrote:\r\n> Hello\r\n").encode()
    import boto3

    s3 = boto3.session.Session().client("s3", endpoint_url=stack.sqs.endpoint, region_name="us-east-1",
                                        aws_access_key_id="local", aws_secret_access_key="local")
    s3.put_object(Bucket=config.settings().inbound_bucket, Key=f"{config.settings().inbound_prefix}pkg1",
                  Body=raw)
    report = _invoke(venv, task_root, functions, "ReceiveEmail",
                     [ses_event(raw, "pkg1", "pkg@example.org", [to])])
    assert report["results"][0]["result"] == {"outcomes": ["stored"]}
    stored = ConversationModel.get(conversation_key(f"pkg-{site}"), META, consistent_read=True)
    assert int(stored.seq) == 1 and stored.preview == "Answered from the zip"


def test_token_secret_comes_from_ssm_in_the_zip(stack: Any, site: str, venv: Path, task_root: Path,
                                                functions: dict[str, tuple[str, int]]) -> None:
    """A deployed stage has no TOKEN_SECRET variable: the packaged code reads the SSM
    parameter (moto's server plays SSM, as no real local SSM exists) and signs with it."""
    import boto3

    from chalicelib import agents, auth

    ssm = boto3.session.Session().client("ssm", endpoint_url=stack.sqs.endpoint, region_name="us-east-1",
                                         aws_access_key_id="local", aws_secret_access_key="local")
    ssm.put_parameter(Name="/clicktochat/pkg/token-secret", Value=os.environ["TOKEN_SECRET"],
                      Type="SecureString", Overwrite=True)
    agents.create("pkgssm", "Sam", PASSWORD, site=site)
    env = {"TOKEN_SECRET": "", "TOKEN_SECRET_PARAM": "/clicktochat/pkg/token-secret",
           "AWS_ENDPOINT_URL_SSM": stack.sqs.endpoint}
    report = _invoke(venv, task_root, functions, "APIHandler",
                     [sandbox.rest("POST", "/auth/login", "/auth/login",
                                   body={"agent": "pkgssm", "password": PASSWORD})], env=env)
    answer = report["results"][0]["result"]
    assert answer["statusCode"] == 200, answer
    # signed with the parameter's value: our own process (same secret) accepts the token
    assert auth.verify(json.loads(answer["body"])["token"]).subject == "pkgssm"


# ---- one Python, a supported runtime -------------------------------------------------------------


def test_one_python_for_everything() -> None:
    """The venv running the tests is the runtime's Python, and the Makefile builds it from
    the same line of infra/runtime.py."""
    import sys

    assert f"{sys.version_info[0]}.{sys.version_info[1]}" == runtime.PYTHON_VERSION
    makefile = (ROOT / "Makefile").read_text()
    assert "LAMBDA_PYTHON := $(shell sed -n 's/^PYTHON_VERSION = " in makefile
    assert re.search(r'^PYTHON_VERSION = "3\.\d+"$', (ROOT / "infra" / "runtime.py").read_text(), re.M)
    deprecated, _, _ = runtime.SCHEDULE[runtime.RUNTIME]
    assert deprecated > runtime.SCHEDULE_CHECKED


@pytest.mark.parametrize(("version", "date"), [((3, 11), "2026-06-30"), ((3, 10), "2026-06-30"),
                                               ((3, 9), "2025-12-15")])
def test_deploy_refuses_a_deprecated_runtime_naming_the_date(version: tuple[int, int], date: str) -> None:
    with pytest.raises(DeployError, match=date):
        lambda_runtime(version)
    assert lambda_runtime((3, 13)) == "python3.13"
    assert lambda_runtime((3, 12)) == "python3.12"


def test_make_deploy_refuses_a_deprecated_runtime_before_touching_aws(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Run by Python 3.11, ``deploy`` stops at once with the date: no stack, no secret made
    (the session below fails every AWS call, so reaching one would fail differently)."""
    import sys

    class NoAWS:
        region_name = "us-east-1"

        def client(self, *_: Any, **__: Any) -> Any:
            raise AssertionError("an AWS call was made")

    class Python311:  # what infra/deploy/packaging.py sees of `sys` under Python 3.11
        version_info = (3, 11, 9, "final", 0)

        def __getattr__(self, name: str) -> Any:
            return getattr(sys, name)

    monkeypatch.setattr(packaging, "sys", Python311())
    deployer = Deployer("dev", session=NoAWS(), out=lambda line: None)
    with pytest.raises(DeployError, match=r"deprecated the python3\.11 Lambda runtime on 2026-06-30"):
        deployer.deploy(Options(mail_from="chat@shop.test", team_email="help@shop.test"))


def test_runtime_dates_are_checked_against_today() -> None:
    import datetime as dt

    runtime.check_deployable("python3.12", today=dt.date(2028, 10, 30))
    with pytest.raises(runtime.RuntimeRefused, match="2028-10-31"):
        runtime.check_deployable("python3.12", today=dt.date(2028, 10, 31))
    with pytest.raises(runtime.RuntimeRefused, match="not a Lambda Python runtime"):
        runtime.check_deployable("python2.7")


def test_find_python_finds_the_runtime_version_or_says_how_to_get_one() -> None:
    found = subprocess.run([str(ROOT / "infra" / "find-python"), runtime.PYTHON_VERSION],
                           capture_output=True, text=True, env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert found.returncode == 0, found.stderr
    version = subprocess.run([found.stdout.strip(), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout
    assert version.strip() == str(tuple(int(p) for p in runtime.PYTHON_VERSION.split(".")))
    missing = subprocess.run([str(ROOT / "infra" / "find-python"), "3.99"], capture_output=True, text=True)
    assert missing.returncode == 1 and "pyenv install 3.99" in missing.stderr
