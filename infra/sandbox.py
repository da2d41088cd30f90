"""The Lambda package run as Lambda runs it: the zip unpacked into a task directory, imported by
an interpreter that holds only what the runtime holds, handlers called with AWS-shaped events.

The local stand-in runs our code in our venv, with our SDK and our OS; that alone cannot show
what Lambda will do with the zip. Here:

* :func:`runtime_venv` is a venv of the runtime's Python (``infra/runtime.py``) holding only the
  runtime-included SDK and its dependencies (at :data:`infra.runtime.RUNTIME_SDK`), no pip;
* :func:`unpack` is ``/var/task``: the zip exactly as ``make package`` built it;
* :func:`invoke` starts a fresh process per call batch (a cold container), puts the task
  directory first on ``sys.path`` as the runtime does (AWS Lambda Developer Guide, "Working
  with .zip file archives for Python Lambda functions": the runtime searches
  ``LAMBDA_TASK_ROOT`` first, then the runtime's site-packages, so a packaged library wins),
  sets the reserved environment variables Lambda sets, hides the OS zone database
  (``PYTHONTZPATH=""``: Amazon Linux 2023's minimal image is not relied on for one), and calls
  ``app.<handler>(event, context)`` for each event.

The event builders follow the shapes of real events (Powertools' sample events in
aws-powertools/powertools-lambda-python ``tests/events/``, and the Lambda and API Gateway
docs); ``tests/test_packaged.py`` validates them with Powertools' parser models.

Local tooling: lives in ``infra/``, never in the package.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infra import runtime

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


def runtime_venv() -> Path:
    """A venv of the runtime's Python with only the runtime-included SDK in it (cached in .tools/)."""
    key = hashlib.sha256(json.dumps([runtime.RUNTIME, runtime.RUNTIME_SDK], sort_keys=True).encode())
    venv = TOOLS / f"lambda-{runtime.RUNTIME}-{key.hexdigest()[:12]}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    interpreter = _runtime_python()
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, capture_output=True)
    pins = [f"{name}=={version}" for name, version in runtime.RUNTIME_SDK.items()]
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", *pins], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not install the runtime SDK {pins}:\n{done.stderr}")
    # The runtime has no pip or setuptools on the function's path: nothing may lean on them.
    subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "-y", "pip", "setuptools"],
                   check=True, capture_output=True)
    (venv / ".complete").write_text("")
    return venv


def _runtime_python() -> str:
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == runtime.PYTHON_VERSION:
        return getattr(sys, "_base_executable", sys.executable)
    done = subprocess.run([str(ROOT / "infra" / "find-python"), runtime.PYTHON_VERSION],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return done.stdout.strip()


def unpack(zip_path: Path, task_root: Path) -> Path:
    """The zip as Lambda lays it out in /var/task (modes kept, as Lambda honours them)."""
    shutil.rmtree(task_root, ignore_errors=True)
    task_root.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            archive.extract(info, task_root)
            mode = info.external_attr >> 16
            if mode:
                (task_root / info.filename).chmod(mode & 0o777)
    return task_root


# The driver runs inside the runtime venv: stdlib only until it imports the package.
_DRIVER = r"""
import json, sys, time, os, uuid
task = os.environ["LAMBDA_TASK_ROOT"]
sys.path.insert(0, task)

class Context:
    def __init__(self, name, timeout):
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{os.environ['AWS_REGION']}:123456789012:function:{name}"
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "2026/12/07/[$LATEST]" + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.time() + timeout
    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))

job = json.loads(sys.stdin.read())
started = time.perf_counter()
import app  # what Lambda's init phase does: import the handler's module
out = {"import_ms": round((time.perf_counter() - started) * 1000, 1), "results": []}
import botocore
out["botocore"] = {"version": botocore.__version__, "file": botocore.__file__}
out["boto3_imported"] = "boto3" in sys.modules
for call in job["calls"]:
    handler = getattr(app, call["handler"])
    try:
        result = handler(call["event"], Context(os.environ["AWS_LAMBDA_FUNCTION_NAME"], job["timeout"]))
        out["results"].append({"ok": True, "result": result})
    except BaseException as exc:  # noqa: BLE001 - reported to the test, as Lambda would
        import traceback
        out["results"].append({"ok": False, "error": f"{type(exc).__name__}: {exc}",
                               "trace": traceback.format_exc()})
for probe in job.get("probes", []):
    scope = {}
    exec(probe, scope)
    out.setdefault("probes", []).append(scope.get("result"))
print("\n@@RESULT@@" + json.dumps(out, default=str))
"""


def lambda_environment(venv: Path, task_root: Path, function: str, handler: str,
                       memory_mb: int = 512) -> dict[str, str]:
    """The variables Lambda sets (Developer Guide, "Defined runtime environment variables"),
    and nothing from this machine's environment."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(venv),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime.RUNTIME}",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/07/[$LATEST]" + uuid.uuid4().hex,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "_HANDLER": f"app.{handler}",
        # Amazon Linux 2023's minimal image: do not lean on /usr/share/zoneinfo.
        "PYTHONTZPATH": "",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def python(venv: Path, task_root: Path, code: str, *, env: Mapping[str, str], stdin: str = "",
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh runtime process whose working directory is the task root."""
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], input=stdin, cwd=task_root,
                          env=dict(env), capture_output=True, text=True, timeout=timeout)


def invoke(venv: Path, task_root: Path, function: str, handler: str, events: Sequence[Mapping[str, Any]],
           *, env: Mapping[str, str], memory_mb: int = 512, timeout_s: float = 15,
           probes: Sequence[str] = ()) -> dict[str, Any]:
    """One cold container of ``function``: import ``app``, call ``app.<handler>`` per event.

    Returns the driver's report: ``import_ms``, ``botocore`` (version and file actually
    imported), ``boto3_imported``, ``results`` (``ok`` and ``result`` or ``error``) and
    ``probes`` (the ``result`` each probe snippet set, run after the calls)."""
    lambda_env = {**lambda_environment(venv, task_root, function, handler, memory_mb), **env}
    job = {"calls": [{"handler": handler, "event": e} for e in events], "timeout": timeout_s,
           "probes": list(probes)}
    done = python(venv, task_root, _DRIVER, env=lambda_env, stdin=json.dumps(job))
    marker = done.stdout.rfind("@@RESULT@@")
    if done.returncode != 0 or marker < 0:
        raise RuntimeError(f"{function} ({handler}) failed to start in the runtime sandbox "
                           f"(exit {done.returncode}):\n{done.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(done.stdout[marker + len("@@RESULT@@"):])
    report["logs"] = done.stdout[:marker] + done.stderr
    return report


# ---- AWS-shaped events ------------------------------------------------------------------------


def _aws_id() -> str:
    return base64.b64encode(secrets.token_bytes(10)).decode()[:15] + "="


def _request_time(epoch_ms: int) -> str:
    return dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _ws_context(route: str, event_type: str, connection_id: str, api_id: str, stage: str,
                source_ip: str, connected_at: int) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"routeKey": route, "eventType": event_type, "extendedRequestId": _aws_id(),
            "requestTime": _request_time(now), "messageDirection": "IN", "stage": stage,
            "connectedAt": connected_at, "requestTimeEpoch": now, "identity": {"sourceIp": source_ip},
            "requestId": _aws_id(), "domainName": f"{api_id}.execute-api.{REGION}.amazonaws.com",
            "connectionId": connection_id, "apiId": api_id}


def ws_connect(connection_id: str, *, query: Mapping[str, str] | None = None,
               origin: str | None = None, api_id: str = "abcdef1234", stage: str = "api",
               source_ip: str = "203.0.113.9") -> dict[str, Any]:
    """``$connect`` (sample: apiGatewayWebSocketApiConnect.json); query keys only when present."""
    host = f"{api_id}.execute-api.{REGION}.amazonaws.com"
    headers = {"Host": host, "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits",
               "Sec-WebSocket-Key": base64.b64encode(secrets.token_bytes(16)).decode(),
               "Sec-WebSocket-Version": "13",
               "X-Amzn-Trace-Id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}",
               "X-Forwarded-For": source_ip, "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https"}
    if origin:
        headers["Origin"] = origin
    event: dict[str, Any] = {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()}}
    if query:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    event["requestContext"] = _ws_context("$connect", "CONNECT", connection_id, api_id, stage, source_ip,
                                          int(time.time() * 1000))
    event["isBase64Encoded"] = False
    return event


def ws_message(connection_id: str, body: str, *, api_id: str = "abcdef1234", stage: str = "api",
               source_ip: str = "203.0.113.9") -> dict[str, Any]:
    """A frame on ``$default`` (sample: apiGatewayWebSocketApiMessage.json)."""
    context = _ws_context("$default", "MESSAGE", connection_id, api_id, stage, source_ip,
                          int(time.time() * 1000) - 1000)
    context["messageId"] = _aws_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def ws_disconnect(connection_id: str, *, code: int = 1001, reason: str = "Going away",
                  api_id: str = "abcdef1234", stage: str = "api",
                  source_ip: str = "203.0.113.9") -> dict[str, Any]:
    """``$disconnect`` (sample: apiGatewayWebSocketApiDisconnect.json)."""
    host = f"{api_id}.execute-api.{REGION}.amazonaws.com"
    headers = {"Host": host, "x-api-key": "", "X-Forwarded-For": "", "x-restapi": ""}
    context = _ws_context("$disconnect", "DISCONNECT", connection_id, api_id, stage, source_ip,
                          int(time.time() * 1000) - 5000)
    context["disconnectStatusCode"] = code
    context["disconnectReason"] = reason
    return {"headers": headers, "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "requestContext": context, "isBase64Encoded": False}


def rest(method: str, path: str, resource: str, *, body: Any = None,
         path_parameters: Mapping[str, str] | None = None, headers: Mapping[str, str] | None = None,
         stage: str = "api", source_ip: str = "203.0.113.9") -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event (sample: apiGatewayProxyEvent.json)."""
    api_id = "rest123456"
    trace = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    all_headers = {"Accept": "application/json", "Host": f"{api_id}.execute-api.{REGION}.amazonaws.com",
                   "User-Agent": "sandbox", "X-Amzn-Trace-Id": trace,
                   "X-Forwarded-For": source_ip, "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https",
                   **({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})}
    now = int(time.time() * 1000)
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": all_headers, "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": dict(path_parameters) if path_parameters else None, "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID, "apiId": api_id, "domainName": all_headers["Host"],
            "domainPrefix": api_id, "extendedRequestId": _aws_id(), "httpMethod": method,
            "identity": {"accessKey": None, "accountId": None, "caller": None,
                         "cognitoAuthenticationProvider": None, "cognitoAuthenticationType": None,
                         "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                         "principalOrgId": None, "sourceIp": source_ip, "user": None,
                         "userAgent": "sandbox", "userArn": None},
            "path": f"/{stage}{path}", "protocol": "HTTP/1.1", "requestId": str(uuid.uuid4()),
            "requestTime": _request_time(now), "requestTimeEpoch": now, "resourceId": "abc123",
            "resourcePath": resource, "stage": stage},
        "body": None if body is None else json.dumps(body), "isBase64Encoded": False,
    }


def scheduled(rule: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event" (sample: eventBridgeEvent.json; Lambda docs)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": ACCOUNT_ID, "time": now, "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{rule}"], "detail": {}}


def handlers(sam_template: Path) -> dict[str, tuple[str, int]]:
    """Every function of the package: logical id -> (handler attribute of ``app``, memory MB)."""
    sam = json.loads(sam_template.read_text())
    return {name: (str(r["Properties"]["Handler"]).split(".", 1)[1],
                   int(r["Properties"].get("MemorySize", 128)))
            for name, r in sam["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


__all__ = ["handlers", "invoke", "lambda_environment", "python", "rest", "runtime_venv", "scheduled",
           "unpack", "ws_connect", "ws_disconnect", "ws_message"]
