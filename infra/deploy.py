"""Deploy a stage to AWS, package it, or tear it down.

    python -m infra.deploy deploy  --stage prod --mail-from chat@shop.com --team-email help@shop.com \
                                   [--company "Acme Shoes"]
    python -m infra.deploy destroy --stage prod [--yes]
    python -m infra.deploy package --stage prod      # small zip + merged CloudFormation template
    python -m infra.deploy table [--check]           # the table block of infra/template.yaml

``make deploy STAGE=prod``, ``make package`` and ``make destroy`` call this. ``deploy`` is one
idempotent pass (a second run changes nothing):

1. the token-signing key: an SSM SecureString created once (CloudFormation cannot create one);
2. the infra stack (``infra/template.yaml``): table, mail queues, SES, S3 + CloudFront;
3. its outputs and the mail settings written into ``.chalice/config.json`` (the stage's
   environment) and ``.chalice/policy-<stage>.json`` (the SES identity, the WebSocket API);
4. ``chalice deploy`` from a staged copy of the project whose dependencies are vendored for
   the runtime in ``infra/runtime.py`` (refused if AWS deprecated it), with our own pinned
   botocore trimmed to the services the app calls, and ``tzdata``;
   the first time twice, because ``WEBSOCKET_API_ID`` is only known after the first;
5. the SQS event source mapping gets ``ReportBatchItemFailures`` (Chalice 1.34 never sets it,
   and ``send_mail`` returns partial batch responses) and a maximum concurrency; both API
   stages get the stage's throttling and their access logs (``api_protection``; Chalice sets
   neither), after API Gateway's CloudWatch Logs role if the account has none;
6. the widget and the console uploaded (content-hashed, immutable where possible) with the
   API addresses baked into ``console/config.js``; CloudFront invalidated when files changed;
7. the site, named for the company (``--company``/``COMPANY=``, or asked for in a terminal;
   else it keeps its name), and a first admin agent if it has none (password printed once);
8. the embed snippet printed.

Everything AWS goes through one injectable boto3 session, and ``chalice`` runs through an
injectable runner, so ``tests/test_deploy.py`` drives all of it against moto.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import mimetypes
import os
import py_compile
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.exceptions import ClientError

from infra import runtime

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
BUILD_ROOT = Path(".chalice") / "deployments" / "build"  # under the project; git-ignored
DEFAULT_SITE = "default"

# The package carries its own pinned botocore (requirements.txt; infra/runtime.py says why), so
# what runs on Lambda is what the tests ran. Its API models are trimmed to the services the app
# calls (chalicelib.aws.client names and PynamoDB's dynamodb; tests/test_packaged.py keeps this
# list and the code in step): 5 of ~420 services, about 1.3 MB of the package instead of 13 MB.
SHIPPED_SERVICES = frozenset({"dynamodb", "apigatewaymanagementapi", "sqs", "sesv2", "ssm"})
# Parts of the SDK the app never imports (boto3 adds ~90 ms of imports; chalicelib.aws): never
# shipped even if a dependency asks for them.
NOT_SHIPPED = frozenset({"boto3", "s3transfer"})
# Subpackages of shipped libraries that nothing we import reaches: Powertools' event handlers
# (REST/GraphQL/AppSync routers: Chalice routes for us) are 0.56 MB of the zip. Its one
# reference from the rest of Powertools is a lazy import for pydantic models, which the
# package does not carry. tests/test_packaged.py imports and runs every handler without them.
UNUSED_SUBPACKAGES = ("aws_lambda_powertools/event_handler",)
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
MAX_PACKAGE_BYTES = 5 * 1024 * 1024
ALARM_PARAMETERS = ("ErrorRatePercent", "HandlerP99Millis", "FanoutErrorThreshold")

# Cache-Control per kind of object (CloudFront's CachingOptimized policy follows them).
CACHE_WIDGET = "public, max-age=300, stale-while-revalidate=86400, stale-if-error=604800"
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
# Documentation domains (RFC 2606): SES can never verify them, so a deploy refuses them.
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")

Runner = Callable[[list[str], Path, Mapping[str, str]], None]
Out = Callable[[str], None]


class DeployError(RuntimeError):
    """Something the person deploying must fix; the message says what."""


# ---- names ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Names:
    """Every name a stage uses. infra/template.yaml derives the same ones from AppName+Stage."""

    app: str
    stage: str

    @property
    def stack(self) -> str:
        return f"{self.app}-{self.stage}-infra"

    @property
    def table(self) -> str:
        return f"{self.app}-{self.stage}"

    @property
    def mail_queue(self) -> str:
        return f"{self.app}-{self.stage}-mail"

    @property
    def mail_dlq(self) -> str:
        return f"{self.app}-{self.stage}-mail-dlq"

    @property
    def configuration_set(self) -> str:
        return f"{self.app}-{self.stage}"

    @property
    def token_secret_param(self) -> str:
        return f"/{self.app}/{self.stage}/token-secret"

    @property
    def function_prefix(self) -> str:
        return f"{self.app}-{self.stage}-"


def app_name(root: Path = ROOT) -> str:
    return str(load_chalice_config(root).get("app_name", "clicktochat"))


def names(stage: str, root: Path = ROOT) -> Names:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,15}", stage):
        raise DeployError(f"Stage {stage!r}: 1-16 of a-z 0-9 -, starting with a letter.")
    return Names(app_name(root), stage)


# ---- .chalice/config.json and the policy files -----------------------------------------------


def load_chalice_config(root: Path = ROOT) -> dict[str, Any]:
    return dict(json.loads((root / ".chalice" / "config.json").read_text()))


def stage_config(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    stages = config.get("stages", {})
    if stage not in stages:
        raise DeployError(f"No stage {stage!r} in .chalice/config.json (have: {', '.join(stages)}).")
    return dict(stages[stage])


def stage_env(config: Mapping[str, Any], stage: str) -> dict[str, str]:
    """The environment every function of the stage gets (global, then stage values)."""
    env = dict(config.get("environment_variables", {}))
    env.update(stage_config(config, stage).get("environment_variables", {}))
    return env


def function_setting(config: Mapping[str, Any], stage: str, function: str, key: str) -> Any:
    """A per-function setting with Chalice's lookup order: function, stage, global."""
    st = stage_config(config, stage)
    for scope in (st.get("lambda_functions", {}).get(function, {}), st, config):
        if key in scope:
            return scope[key]
    return None


def policy_path(root: Path, config: Mapping[str, Any], stage: str) -> Path:
    name = stage_config(config, stage).get("iam_policy_file") or f"policy-{stage}.json"
    return root / ".chalice" / str(name)


def write_json_if_changed(path: Path, doc: Any) -> bool:
    text = json.dumps(doc, indent=2) + "\n"
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def set_stage_env(root: Path, stage: str, values: Mapping[str, str | None]) -> list[str]:
    """Set (or, with None, remove) stage environment variables; returns the names changed."""
    path = root / ".chalice" / "config.json"
    config = json.loads(path.read_text())
    env = config["stages"][stage].setdefault("environment_variables", {})
    changed = []
    for key, value in values.items():
        if value is None:
            if key in env:
                del env[key]
                changed.append(key)
        elif env.get(key) != value:
            env[key] = value
            changed.append(key)
    if changed:
        write_json_if_changed(path, config)
    return changed


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    for statement in policy.get("Statement", []):
        if statement.get("Sid") == sid:
            return dict(statement)
    raise DeployError(f"The policy has no statement {sid!r}.")


def _replace_statement(policy: dict[str, Any], statement: dict[str, Any]) -> None:
    policy["Statement"] = [statement if s.get("Sid") == statement["Sid"] else s
                           for s in policy["Statement"]]


def render_policy(policy: dict[str, Any], *, mail_identity: str, configuration_set: str,
                  websocket_api_id: str | None, websocket_stage: str) -> dict[str, Any]:
    """The stage policy with this deployment's SES identity and WebSocket API filled in.

    The SendMail statement keeps any identity ARNs already listed (sandbox recipients, see
    docs/deploy.md) and gains the sender's; WebSocketConnections is pinned to the API id once
    it is known (``*`` before the first deploy, and again after a destroy).
    """
    policy = json.loads(json.dumps(policy))
    mail = _statement(policy, "SendMail")
    resources = [r for r in _as_list(mail["Resource"]) if ":configuration-set/" not in r]
    wanted = f"arn:aws:ses:*:*:identity/{mail_identity}"
    if wanted not in resources:
        resources.insert(0, wanted)
    resources = [r for r in resources if not r.endswith("identity/example.com") or r == wanted]
    mail["Resource"] = [*resources, f"arn:aws:ses:*:*:configuration-set/{configuration_set}"]
    _replace_statement(policy, mail)
    ws = _statement(policy, "WebSocketConnections")
    api = websocket_api_id or "*"
    ws["Resource"] = [f"arn:aws:execute-api:*:*:{api}/{websocket_stage}/{verb}/@connections/*"
                      for verb in ("POST", "DELETE")]
    _replace_statement(policy, ws)
    return dict(policy)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# ---- infra/template.yaml ------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt...) as their long forms."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return dict(yaml.load(path.read_text(), Loader=_CfnLoader))


def table_schema() -> dict[str, Any]:
    """Keys, attributes and indexes of the one table, from chalicelib.models (the source)."""
    from chalicelib.models import table_definition

    definition = table_definition()
    return {k: definition[k] for k in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")}


def template_table_schema(template: Mapping[str, Any]) -> dict[str, Any]:
    props = template["Resources"]["Table"]["Properties"]
    return {k: props[k] for k in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes")}


def table_yaml() -> str:
    """The schema block of the Table resource, ready to paste into infra/template.yaml."""
    schema = table_schema()
    lines = ["      KeySchema:"]
    lines += [f"        - {{AttributeName: {k['AttributeName']}, KeyType: {k['KeyType']}}}"
              for k in schema["KeySchema"]]
    lines.append("      AttributeDefinitions:")
    lines += [f"        - {{AttributeName: {a['AttributeName']}, AttributeType: {a['AttributeType']}}}"
              for a in schema["AttributeDefinitions"]]
    lines.append("      GlobalSecondaryIndexes:")
    for index in schema["GlobalSecondaryIndexes"]:
        lines.append(f"        - IndexName: {index['IndexName']}")
        lines.append("          KeySchema:")
        lines += [f"            - {{AttributeName: {k['AttributeName']}, KeyType: {k['KeyType']}}}"
                  for k in index["KeySchema"]]
        projection = index["Projection"]
        if projection.get("NonKeyAttributes"):
            lines += ["          Projection:",
                      f"            ProjectionType: {projection['ProjectionType']}",
                      f"            NonKeyAttributes: [{', '.join(projection['NonKeyAttributes'])}]"]
        else:
            lines.append(f"          Projection: {{ProjectionType: {projection['ProjectionType']}}}")
    return "\n".join(lines) + "\n"


# ---- the Lambda package ---------------------------------------------------------------------------


def _dist_name(dist_info: Path) -> str:
    for line in (dist_info / "METADATA").read_text(errors="replace").splitlines():
        if line.startswith("Name:"):
            return re.sub(r"[-_.]+", "-", line.split(":", 1)[1].strip()).lower()
    return ""


def strip_unshipped(target: Path) -> list[str]:
    """Delete the distributions in :data:`NOT_SHIPPED` (by their RECORD); return them."""
    removed = []
    for dist_info in sorted(target.glob("*.dist-info")):
        name = _dist_name(dist_info)
        if name not in NOT_SHIPPED:
            continue
        for row in (dist_info / "RECORD").read_text().splitlines():
            rel = row.split(",", 1)[0]
            path = (target / rel).resolve()
            if rel and path.is_relative_to(target.resolve()) and path.is_file():
                path.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(name)
    for directory in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(directory.iterdir()):
            directory.rmdir()
    shutil.rmtree(target / "bin", ignore_errors=True)
    return removed


def trim_botocore(target: Path) -> list[str]:
    """Keep only the API models of :data:`SHIPPED_SERVICES` (and botocore's own tables: endpoints,
    partitions, retry modes, defaults); drop documentation examples. Returns what was removed.

    botocore loads a service's model only when a client for it is made, so the other ~420
    directories are dead weight: 13 MB zipped, and more to unpack on every cold start."""
    data = target / "botocore" / "data"
    if not data.is_dir():
        raise DeployError(f"{target} has no botocore/data: requirements.txt must pin botocore.")
    removed = []
    for entry in sorted(data.iterdir()):
        if entry.is_dir() and entry.name not in SHIPPED_SERVICES:
            shutil.rmtree(entry)
            removed.append(entry.name)
    missing = sorted(SHIPPED_SERVICES - {p.name for p in data.iterdir() if p.is_dir()})
    if missing:
        raise DeployError(f"botocore has no model for {missing}: check SHIPPED_SERVICES.")
    for examples in data.rglob("examples-1.json"):
        examples.unlink()
    for record in target.glob("botocore-*.dist-info/RECORD"):  # list only what is shipped
        rows = record.read_text().splitlines()
        record.write_text("".join(f"{row}\n" for row in rows
                                  if (target / row.split(",", 1)[0]).exists() or "dist-info" in row))
    return removed


def vendor_dependencies(root: Path, architecture: str, python_version: str) -> Path:
    """requirements.txt installed for Lambda's platform, botocore trimmed to what the app calls.

    Cached per (requirements, platform, Python, trimming) under the build directory.
    """
    requirements = root / "requirements.txt"
    key = hashlib.sha256(requirements.read_bytes() + f"{architecture}{python_version}".encode()
                         + ",".join([*sorted(SHIPPED_SERVICES), *UNUSED_SUBPACKAGES]).encode())
    target = root / BUILD_ROOT / f"vendor-{key.hexdigest()[:16]}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--target", str(target), "--platform", PLATFORMS[architecture],
                           "--only-binary=:all:", "--implementation", "cp",
                           "--python-version", python_version, "-r", str(requirements)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise DeployError(f"Installing requirements.txt for Lambda ({PLATFORMS[architecture]}, Python "
                          f"{python_version}) failed; every dependency needs a wheel:\n{done.stderr}")
    strip_unshipped(target)
    trim_botocore(target)
    for unused in UNUSED_SUBPACKAGES:
        shutil.rmtree(target / unused)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    (target / ".complete").write_text("")
    return target


# Run with the project's Python, no site-packages (-S): import the app as Lambda's init phase
# does, then every module its code names anywhere (lazy imports inside functions included);
# print the files of all modules loaded.
_IMPORTED_MODULES = r"""
import ast, importlib, json, pathlib, sys
project, vendor, extra = sys.argv[1:4]
sys.path[:0] = [project, vendor, extra]
import app
for path in [pathlib.Path(project, "app.py"), *pathlib.Path(project, "chalicelib").rglob("*.py")]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        else:
            continue
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:
                pass
print(json.dumps([getattr(m, "__file__", None) for m in list(sys.modules.values())]))
"""


def precompile_imported(project: Path) -> int:
    """Ship bytecode for every module the app imports; returns how many.

    ``/var/task`` is read-only on Lambda, so a package without ``__pycache__`` is compiled
    anew by every cold start: measured in the runtime sandbox (``python -m bench.packaged``),
    that doubled the cold import. Compiling *everything* would push the zip past its 5 MB
    budget (Powertools alone is 3.5 MB of sources we mostly do not import), so only the modules
    the app really loads get a pyc. ``unchecked-hash`` pycs are used without checking the
    source's timestamp (which the zip does not keep faithfully); the package is immutable, so
    they cannot go stale. The interpreter compiling them is the runtime's version
    (:func:`lambda_runtime`), whose magic number the pycs carry."""
    import chalice

    with tempfile.TemporaryDirectory() as extra:
        (Path(extra) / "chalice").symlink_to(Path(chalice.__file__).parent)
        env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1",
               "TOKEN_SECRET": "x" * 40, "TABLE_NAME": "precompile", "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run([sys.executable, "-S", "-c", _IMPORTED_MODULES, str(project),
                               str(project / "vendor"), extra], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise DeployError(f"Importing the app from the staged package failed:\n{done.stderr[-3000:]}")
    files = {Path(f) for f in json.loads(done.stdout.splitlines()[-1]) if f and f.endswith(".py")}
    mine = [f for f in files
            if f.is_relative_to(project / "vendor") or f.is_relative_to(project / "chalicelib")]
    for path in mine:
        py_compile.compile(str(path), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    return len(mine)


def lambda_runtime(version: tuple[int, int] | None = None) -> str:
    """The runtime Chalice will declare: the one of the Python running it. Refused when AWS has
    deprecated it (infra/runtime.py has the dates), so a deploy never makes a function that
    AWS blocks or will soon block."""
    major, minor = version or (sys.version_info[0], sys.version_info[1])
    found = f"python{major}.{minor}"
    try:
        runtime.check_deployable(found)
    except runtime.RuntimeRefused as exc:
        raise DeployError(str(exc)) from None
    return found


def stage_project(root: Path, stage: str) -> Path:
    """A copy of the Chalice project for ``stage``: same code and config, an empty
    requirements.txt, and the real dependencies in vendor/ (Chalice ships vendor/ as is)."""
    config = load_chalice_config(root)
    architecture = str(config.get("stages", {}).get(stage, {}).get("lambda_architecture")
                       or config.get("lambda_architecture") or "x86_64")
    python_version = lambda_runtime().removeprefix("python")  # Chalice picks the same
    vendor = vendor_dependencies(root, architecture, python_version)
    project = root / BUILD_ROOT / stage / "project"
    for stale in ("app.py", "chalicelib", "vendor", "requirements.txt"):
        path = project / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (project / ".chalice").mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "app.py", project / "app.py")
    shutil.copytree(root / "chalicelib", project / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(vendor, project / "vendor", ignore=shutil.ignore_patterns(".complete"))
    (project / "requirements.txt").write_text(
        "# Dependencies are vendored by infra/deploy.py (vendor/), botocore trimmed.\n")
    precompile_imported(project)
    for policy in (root / ".chalice").glob("policy-*.json"):
        shutil.copy2(policy, project / ".chalice" / policy.name)
    shutil.copy2(root / ".chalice" / "config.json", project / ".chalice" / "config.json")
    return project


def project_fingerprint(project: Path) -> str:
    """What ``chalice deploy`` would ship: every file but Chalice's own state and caches."""
    digest = hashlib.sha256()
    for path in sorted(p for p in project.rglob("*") if p.is_file()):
        rel = path.relative_to(project).as_posix()
        if rel.startswith((".chalice/deployed/", ".chalice/deployments/")) or "__pycache__" in rel:
            continue
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def chalice_command() -> str:
    candidate = Path(sys.executable).with_name("chalice")
    return str(candidate) if candidate.exists() else (shutil.which("chalice") or "chalice")


def run_subprocess(args: list[str], cwd: Path, env: Mapping[str, str]) -> None:
    subprocess.run(args, cwd=cwd, env=dict(env), check=True)


@dataclasses.dataclass
class Package:
    directory: Path
    zip_path: Path
    zip_bytes: int
    sam_template: Path
    merged_template: Path


def package(stage: str, *, root: Path = ROOT, runner: Runner = run_subprocess,
            env: Mapping[str, str] | None = None, out: Out = print) -> Package:
    """``chalice package`` of the staged project, post-processed and merged with the infra stack."""
    stage_names = names(stage, root)
    project = stage_project(root, stage)
    output = root / BUILD_ROOT / stage / "package"
    shutil.rmtree(output, ignore_errors=True)
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("AWS_DEFAULT_REGION", child_env.get("AWS_REGION", "us-east-1"))
    runner([chalice_command(), "--project-dir", str(project), "package", "--stage", stage, str(output)],
           project, child_env)
    sam_path = output / "sam.json"
    sam = json.loads(sam_path.read_text())
    config = load_chalice_config(root)
    merged = merge_templates(postprocess_sam(sam, config, stage_names), load_template(), stage_names)
    merged_path = output / "template.json"
    merged_path.write_text(json.dumps(merged, indent=2) + "\n")
    zip_path = output / "deployment.zip"
    size = zip_path.stat().st_size
    with zipfile.ZipFile(zip_path) as archive:
        shipped = {n.split("/", 1)[0] for n in archive.namelist()}
    if shipped & NOT_SHIPPED or not {"botocore", "tzdata"} <= shipped:
        raise DeployError(f"{zip_path} must carry botocore and tzdata and no boto3: the vendoring "
                          f"step failed (top level: {sorted(shipped)}).")
    out(f"package: {zip_path.relative_to(root)} {size / 1e6:.2f} MB "
        f"(limit {MAX_PACKAGE_BYTES / 1e6:.1f} MB); template: {merged_path.relative_to(root)}")
    if size > MAX_PACKAGE_BYTES:
        raise DeployError(f"The Lambda package is {size} bytes, over {MAX_PACKAGE_BYTES}.")
    return Package(output, zip_path, size, sam_path, merged_path)


def postprocess_sam(sam: dict[str, Any], config: Mapping[str, Any], stage_names: Names) -> dict[str, Any]:
    """Make Chalice's SAM template what we deploy: partial batch responses and a concurrency
    cap on the mail trigger, the environment wired to the infra resources by reference, and
    the stage's API Gateway throttling and access logs (``api_protection``)."""
    sam = json.loads(json.dumps(sam))
    concurrency = function_setting(config, stage_names.stage, "send_mail", "reserved_concurrency")
    references: dict[str, Any] = {
        "TABLE_NAME": {"Ref": "Table"},
        "MAIL_QUEUE_NAME": {"Fn::GetAtt": ["MailQueue", "QueueName"]},
        "MAIL_DLQ_NAME": {"Fn::GetAtt": ["MailDeadLetterQueue", "QueueName"]},
        "TOKEN_SECRET_PARAM": {"Fn::Sub": "/${AppName}/${Stage}/token-secret"},
        "POWERTOOLS_METRICS_NAMESPACE": {"Fn::Sub": "${AppName}-${Stage}"},  # the dashboard's
        "WEBSOCKET_API_ID": {"Ref": "WebsocketAPI"},
    }
    function_names: dict[str, str] = {}
    for logical_id, resource in sam["Resources"].items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            # The names `chalice deploy` gives (the log and policy ARNs rely on them).
            props["FunctionName"] = function_names[logical_id] = _function_name(
                stage_names, logical_id, str(props.get("Handler", "")))
            variables = props.setdefault("Environment", {}).setdefault("Variables", {})
            for key, ref in references.items():
                if key in variables or key == "WEBSOCKET_API_ID":
                    variables[key] = ref
            for event in props.get("Events", {}).values():
                if event["Type"] != "SQS":
                    continue
                event["Properties"]["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
                if isinstance(concurrency, int) and concurrency >= 2:
                    event["Properties"]["ScalingConfig"] = {"MaximumConcurrency": concurrency}
                if str(event["Properties"].get("Queue", {}).get("Fn::Sub", "")).endswith(
                        f":{stage_names.mail_queue}"):
                    event["Properties"]["Queue"] = {"Fn::GetAtt": ["MailQueue", "Arn"]}
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    statement["Resource"] = [_pin_execute_api(r) for r in _as_list(statement["Resource"])]
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Logs::LogGroup":
            # Chalice 1.34 names the REST handler's group after "${ApiHandler}", a resource
            # that does not exist (it is "APIHandler"): name every group literally.
            target = re.fullmatch(r"/aws/lambda/\$\{(\w+)\}",
                                  str(resource["Properties"]["LogGroupName"].get("Fn::Sub", "")))
            if target:
                wanted = {k.lower(): v for k, v in function_names.items()}.get(target.group(1).lower())
                if wanted:
                    resource["Properties"]["LogGroupName"] = f"/aws/lambda/{wanted}"
            # Said, not implied: a stage's logs go with it (a kept group, its name fixed,
            # would make the next stack of that stage fail to create).
            resource["DeletionPolicy"] = resource["UpdateReplacePolicy"] = "Delete"
    apply_api_protection(sam, api_protection(config, stage_names.stage),
                         bool(function_setting(config, stage_names.stage, "api_handler", "xray")))
    return sam


def _function_name(stage_names: Names, logical_id: str, handler: str) -> str:
    prefix = f"{stage_names.app}-{stage_names.stage}"
    if logical_id == "APIHandler":
        return prefix
    if logical_id.startswith("Websocket"):
        return f"{prefix}-websocket_{logical_id[len('Websocket'):].lower()}"
    return f"{prefix}-{handler.rsplit('.', 1)[-1]}"


def _pin_execute_api(resource: Any) -> Any:
    match = re.fullmatch(r"arn:aws:execute-api:[^:]*:[^:]*:[^/]+/(.+)", str(resource))
    if not match:
        return resource
    return {"Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
                       "${WebsocketAPI}/" + match.group(1)}


def merge_templates(sam: dict[str, Any], infra: dict[str, Any], stage_names: Names) -> dict[str, Any]:
    """One template: Chalice's functions and APIs plus the infra stack, defaults set to the stage."""
    merged: dict[str, Any] = {"AWSTemplateFormatVersion": "2010-09-09", "Transform": sam["Transform"],
                              "Description": infra.get("Description", "")}
    parameters = json.loads(json.dumps(infra["Parameters"]))
    parameters["AppName"]["Default"] = stage_names.app
    parameters["Stage"]["Default"] = stage_names.stage
    # The API access logs are kept as long as the functions' logs (log_retention_in_days).
    retention = Counter(r["Properties"]["RetentionInDays"] for r in sam.get("Resources", {}).values()
                        if r["Type"] == "AWS::Logs::LogGroup" and "RetentionInDays" in r["Properties"])
    if retention and "LogRetentionDays" in parameters:
        parameters["LogRetentionDays"]["Default"] = retention.most_common(1)[0][0]
    merged["Parameters"] = parameters
    merged["Conditions"] = infra.get("Conditions", {})
    for section in ("Resources", "Outputs"):
        clash = set(sam.get(section, {})) & set(infra.get(section, {}))
        if clash:
            raise DeployError(f"Chalice and infra/template.yaml both define {section}: {sorted(clash)}")
        merged[section] = {**infra.get(section, {}), **sam.get(section, {})}
    return merged


# ---- flood protection at the edge: API Gateway throttling and access logs -------------------------
#
# Per stage in .chalice/config.json (Chalice ignores the key; docs/deploy.md explains the values):
#
#   "api_protection": {
#     "rest": {"rate_limit": 100, "burst_limit": 200},              every REST route (*/*)
#     "rest_routes": {"POST /auth/login": {"rate_limit": 10, "burst_limit": 20}},
#     "websocket": {"rate_limit": 500, "burst_limit": 1000},        $default and $disconnect
#     "websocket_routes": {"$connect": {"rate_limit": 100, "burst_limit": 200}},
#     "access_log_source_ip": false
#   }
#
# `rate_limit` is requests per second, steady; `burst_limit` how many may arrive at once (the
# size of API Gateway's token bucket). A route's own limits must not exceed its API's. Both
# `make deploy` (ensure_api_stages, after `chalice deploy`, which sets neither) and
# `make package` (postprocess_sam) apply them, with the access logs.

LOGGING_ROLE_TEMPLATE = ROOT / "infra" / "apigateway-account.yaml"
WEBSOCKET_ROUTE_KEYS = ("$connect", "$default", "$disconnect")
_PROTECTION_KEYS = {"rest", "rest_routes", "websocket", "websocket_routes", "access_log_source_ip"}

# One JSON line per request: what tells a flood from normal traffic, and where the time went.
# No bodies, no query strings, no paths with values in them (resourcePath is the route's
# template, /sites/{site}/...), no user agent. The caller's IP address only if the stage sets
# access_log_source_ip: it is personal data, and docs/privacy.md says none is stored.
REST_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "method": "$context.httpMethod",
    "resource": "$context.resourcePath",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "latency": "$context.responseLatency",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integration.status",
    "error": "$context.error.message",
    "errorType": "$context.error.responseType",
    "xrayTraceId": "$context.xrayTraceId",
}
WEBSOCKET_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "connectionId": "$context.connectionId",
    "integrationLatency": "$context.integrationLatency",
    "integrationStatus": "$context.integrationStatus",
    "error": "$context.error.message",
    "errorType": "$context.error.responseType",
}
SOURCE_IP = {"ip": "$context.identity.sourceIp"}


@dataclasses.dataclass(frozen=True)
class Throttle:
    rate_limit: float  # requests per second, steady
    burst_limit: int  # requests at once


@dataclasses.dataclass(frozen=True)
class ApiProtection:
    rest: Throttle
    rest_routes: dict[tuple[str, str], Throttle]  # (METHOD, /path) -> its own limits
    websocket: Throttle
    websocket_routes: dict[str, Throttle]  # route key -> its own limits
    access_log_source_ip: bool = False

    def access_log_format(self, fields: Mapping[str, str]) -> str:
        return json.dumps({**fields, **(SOURCE_IP if self.access_log_source_ip else {})},
                          separators=(",", ":"))


def _throttle(value: Any, where: str, ceiling: Throttle | None = None) -> Throttle:
    if not isinstance(value, Mapping) or set(value) != {"rate_limit", "burst_limit"}:
        raise DeployError(f'{where}: expected {{"rate_limit": <per second>, "burst_limit": <at once>}}.')
    rate, burst = value["rate_limit"], value["burst_limit"]
    if (isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0
            or isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise DeployError(f"{where}: rate_limit must be a positive number, burst_limit a positive integer.")
    limits = Throttle(rate, burst)
    if ceiling and (rate > ceiling.rate_limit or burst > ceiling.burst_limit):
        raise DeployError(f"{where}: a route's limits cannot exceed its API's ({ceiling}).")
    return limits


def api_protection(config: Mapping[str, Any], stage: str) -> ApiProtection:
    """The stage's API Gateway limits: ``api_protection`` of the stage over the global one."""
    merged = dict(config.get("api_protection", {}))
    merged.update(stage_config(config, stage).get("api_protection", {}))
    where = f".chalice/config.json, stage {stage}: api_protection"
    unknown = sorted(set(merged) - _PROTECTION_KEYS)
    missing = sorted({"rest", "websocket"} - set(merged))
    if unknown or missing:
        raise DeployError(f"{where}: " + "; ".join(
            ([f"unknown {', '.join(unknown)}"] if unknown else []) + ([f"missing {', '.join(missing)}"]
                                                                       if missing else [])))
    rest = _throttle(merged["rest"], f"{where}.rest")
    websocket = _throttle(merged["websocket"], f"{where}.websocket")
    rest_routes: dict[tuple[str, str], Throttle] = {}
    for route, value in dict(merged.get("rest_routes", {})).items():
        match = re.fullmatch(r"(GET|POST|PUT|PATCH|DELETE) (/[^\s*]*)", str(route))
        if not match:
            raise DeployError(f'{where}.rest_routes: {route!r} is not "METHOD /path" (as in app.py).')
        rest_routes[(match[1], match[2])] = _throttle(value, f"{where}.rest_routes[{route!r}]", rest)
    websocket_routes: dict[str, Throttle] = {}
    for key, value in dict(merged.get("websocket_routes", {})).items():
        if key not in WEBSOCKET_ROUTE_KEYS:
            raise DeployError(f"{where}.websocket_routes: {key!r} is not one of "
                              f"{', '.join(WEBSOCKET_ROUTE_KEYS)}.")
        websocket_routes[key] = _throttle(value, f"{where}.websocket_routes[{key!r}]", websocket)
    source_ip = merged.get("access_log_source_ip", False)
    if not isinstance(source_ip, bool):
        raise DeployError(f"{where}.access_log_source_ip: true or false.")
    return ApiProtection(rest, rest_routes, websocket, websocket_routes, source_ip)


def _encoded_path(path: str) -> str:
    """A REST resource path as method settings name it: /auth/login -> ~1auth~1login."""
    return path.replace("/", "~1")


def _cfn_throttle(limits: Throttle) -> dict[str, Any]:
    return {"ThrottlingBurstLimit": limits.burst_limit, "ThrottlingRateLimit": limits.rate_limit}


def apply_api_protection(sam: dict[str, Any], protection: ApiProtection, tracing: bool) -> None:
    """Throttling and access logs on Chalice's two API stages in its SAM template (in place).
    The access log groups are infra/template.yaml's (RestApiAccessLogs, WebsocketApiAccessLogs)."""
    resources = sam["Resources"]
    rest = next((r for r in resources.values() if r["Type"] == "AWS::Serverless::Api"), None)
    if rest is not None:
        props = rest["Properties"]
        paths = props.get("DefinitionBody", {}).get("paths", {})
        settings = [{"HttpMethod": "*", "ResourcePath": "/*", **_cfn_throttle(protection.rest)}]
        for (method, path), limits in sorted(protection.rest_routes.items(), key=lambda kv: kv[0][::-1]):
            if method.lower() not in paths.get(path, {}):
                raise DeployError(f"api_protection.rest_routes: the REST API has no {method} {path}.")
            settings.append({"HttpMethod": method, "ResourcePath": "/" + _encoded_path(path),
                             **_cfn_throttle(limits)})
        props["MethodSettings"] = settings
        props["AccessLogSetting"] = {"DestinationArn": _log_group_arn("RestApiAccessLogs"),
                                     "Format": protection.access_log_format(REST_ACCESS_LOG)}
        props["TracingEnabled"] = tracing  # `chalice deploy` sets it from "xray" too
    stage = next((r for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"), None)
    if stage is not None:
        props = stage["Properties"]
        props["DefaultRouteSettings"] = _cfn_throttle(protection.websocket)
        props["RouteSettings"] = {key: _cfn_throttle(limits)
                                  for key, limits in sorted(protection.websocket_routes.items())}
        props["AccessLogSettings"] = {"DestinationArn": _log_group_arn("WebsocketApiAccessLogs"),
                                      "Format": protection.access_log_format(WEBSOCKET_ACCESS_LOG)}


def _log_group_arn(logical_id: str) -> dict[str, str]:
    # Without GetAtt's trailing ":*": the form API Gateway's own documents and console use.
    return {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${"
                       + logical_id + "}"}


def _method_settings_key(key: str) -> tuple[str, str]:
    """(path, METHOD) of a key of a REST stage's methodSettings: "*/*", "~1auth~1login/POST"."""
    path, _, method = key.rpartition("/")
    if path == "*":
        return path, method
    path = path.replace("~1", "/")
    return ("/" + path.lstrip("/")), method


def rest_stage_patch(stage: Mapping[str, Any], protection: ApiProtection,
                     destination_arn: str) -> list[dict[str, str]]:
    """The patch operations (apigateway ``update_stage``) that bring a REST stage, as
    ``get_stage`` returns it, to the protection; empty when it has it already."""
    have = {_method_settings_key(k): v for k, v in (stage.get("methodSettings") or {}).items()}
    wanted = {("*", "*"): protection.rest,
              **{(path, method): limits for (method, path), limits in protection.rest_routes.items()}}
    ops: list[dict[str, str]] = []
    for (path, method), limits in wanted.items():
        current = have.get((path, method), {})
        prefix = "/*/*" if path == "*" else f"/{_encoded_path(path)}/{method}"
        if current.get("throttlingRateLimit") != limits.rate_limit:
            ops.append({"op": "replace", "path": f"{prefix}/throttling/rateLimit",
                        "value": str(limits.rate_limit)})
        if current.get("throttlingBurstLimit") != limits.burst_limit:
            ops.append({"op": "replace", "path": f"{prefix}/throttling/burstLimit",
                        "value": str(limits.burst_limit)})
    access = stage.get("accessLogSettings") or {}
    for key, value in (("destinationArn", destination_arn),
                       ("format", protection.access_log_format(REST_ACCESS_LOG))):
        if access.get(key) != value:
            ops.append({"op": "replace", "path": f"/accessLogSettings/{key}", "value": value})
    return ops


def websocket_stage_update(stage: Mapping[str, Any], protection: ApiProtection,
                           destination_arn: str) -> dict[str, Any]:
    """The arguments of apigatewayv2 ``update_stage`` that bring a WebSocket stage, as
    ``get_stage`` returns it, to the protection; empty when it has it already."""
    update: dict[str, Any] = {}
    default = dict(stage.get("DefaultRouteSettings") or {})
    wanted_default = {**default, **_cfn_throttle(protection.websocket)}
    if wanted_default != default:
        update["DefaultRouteSettings"] = wanted_default
    routes = {key: dict(value) for key, value in (stage.get("RouteSettings") or {}).items()}
    wanted_routes = {**routes, **{key: {**routes.get(key, {}), **_cfn_throttle(limits)}
                                  for key, limits in protection.websocket_routes.items()}}
    if wanted_routes != routes:
        update["RouteSettings"] = wanted_routes
    access = {"DestinationArn": destination_arn, "Format": protection.access_log_format(WEBSOCKET_ACCESS_LOG)}
    if dict(stage.get("AccessLogSettings") or {}) != access:
        update["AccessLogSettings"] = access
    return update


# ---- the deployment -------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    mail_from: str | None = None
    team_email: str | None = None
    mail_identity: str | None = None
    mail_identity_mode: str | None = None  # domain | address | existing
    alarm_email: str | None = None
    site_domain: str | None = None
    site_certificate_arn: str | None = None
    price_class: str | None = None
    site: str = DEFAULT_SITE
    admin_id: str = "admin"
    admin_name: str = "Admin"
    admin_email: str | None = None
    force: bool = False
    company: str | None = None  # the site's name for visitors; None keeps what it has


@dataclasses.dataclass
class Result:
    changes: list[str]
    snippet: str
    console_url: str
    websocket_url: str
    api_url: str
    admin_password: str | None = None


def _client_error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class Deployer:
    """One stage's deployment. ``session``/``endpoint_url`` pick the AWS to talk to, ``runner``
    runs ``chalice``, ``env`` is the environment of child processes, ``out`` prints."""

    def __init__(self, stage: str, *, session: Any = None, endpoint_url: str | None = None,
                 root: Path = ROOT, runner: Runner = run_subprocess, out: Out = print,
                 env: Mapping[str, str] | None = None, template_body: str | None = None) -> None:
        self.root = root
        self.names = names(stage, root)
        self.stage = stage
        self.session = session or boto3.session.Session()
        self.endpoint_url = endpoint_url
        self.runner = runner
        self.out = out
        self.env = dict(os.environ if env is None else env)
        self.template_body = template_body if template_body is not None else TEMPLATE.read_text()
        self.region = str(self.session.region_name or self.env.get("AWS_REGION")
                          or self.env.get("AWS_DEFAULT_REGION") or "")
        if not self.region:
            raise DeployError("No AWS region: set AWS_REGION (or a profile with a region).")
        self.changes: list[str] = []
        self._clients: dict[str, Any] = {}

    # -- plumbing
    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region,
                                                         endpoint_url=self.endpoint_url)
        return self._clients[service]

    def changed(self, what: str) -> None:
        self.changes.append(what)
        self.out(f"  changed: {what}")

    @property
    def deployed_record(self) -> Path:
        return self.root / ".chalice" / "deployed" / f"{self.stage}.json"

    @property
    def fingerprint_record(self) -> Path:
        return self.root / ".chalice" / "deployed" / f"{self.stage}.fingerprint"

    def child_env(self) -> dict[str, str]:
        env = dict(self.env)
        env["AWS_DEFAULT_REGION"] = env["AWS_REGION"] = self.region
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env

    # -- 1. the token secret
    def ensure_secret(self) -> str:
        ssm, name = self.client("ssm"), self.names.token_secret_param
        try:
            ssm.get_parameter(Name=name)  # metadata only: the value is never read here
        except ClientError as exc:
            if _client_error_code(exc) != "ParameterNotFound":
                raise
            ssm.put_parameter(Name=name, Type="SecureString", Value=secrets.token_urlsafe(48),
                              Description=f"{self.names.app} {self.stage}: token-signing key",
                              Overwrite=False)
            self.changed(f"SSM SecureString {name} created")
        return name

    # -- 2. the infra stack
    def stack(self) -> dict[str, Any] | None:
        try:
            stacks = self.client("cloudformation").describe_stacks(StackName=self.names.stack)["Stacks"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return None
            raise
        return dict(stacks[0]) if stacks else None

    def stack_parameters(self, options: Options, mail_from: str,
                         current: Mapping[str, str], api_origins: str) -> dict[str, str]:
        domain = mail_from.rsplit("@", 1)[-1]
        defaults = {"MailIdentityMode": "domain", "AlarmEmail": "", "SiteDomain": "",
                    "SiteCertificateArn": "", "PriceClass": "PriceClass_100"}
        given = {"MailIdentityMode": options.mail_identity_mode, "AlarmEmail": options.alarm_email,
                 "SiteDomain": options.site_domain, "SiteCertificateArn": options.site_certificate_arn,
                 "PriceClass": options.price_class}
        # The identity follows MAIL_FROM (its domain, or the address itself if that is what
        # was verified) unless one is given.
        params = {"AppName": self.names.app, "Stage": self.stage,
                  "ApiOrigins": api_origins, "TableDeletionProtection": "true"}
        # The API access logs are kept as long as the functions' logs.
        retention = function_setting(load_chalice_config(self.root), self.stage, "api_handler",
                                     "log_retention_in_days")
        if retention:
            params["LogRetentionDays"] = str(retention)
        for key, default in defaults.items():
            value = given[key]
            params[key] = value if value is not None else current.get(key, default)
        # Alarm thresholds: kept as the stack has them (a team may tune them), else the template's.
        template = load_template(self.root / "infra" / "template.yaml")["Parameters"]
        for key in ALARM_PARAMETERS:
            params[key] = current.get(key, str(template[key]["Default"]))
        previous = current.get("MailIdentity", "")
        derived = mail_from if params["MailIdentityMode"] == "address" else domain
        params["MailIdentity"] = options.mail_identity or (
            previous if previous in (mail_from, domain) and options.mail_identity_mode is None else derived)
        return params

    def ensure_stack(self, params: Mapping[str, str]) -> dict[str, str]:
        cfn = self.client("cloudformation")
        stack = self.stack()
        if stack is not None and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            self.out(f"  stack {self.names.stack} never got created (ROLLBACK_COMPLETE): deleting it first")
            cfn.delete_stack(StackName=self.names.stack)
            cfn.get_waiter("stack_delete_complete").wait(StackName=self.names.stack,
                                                         WaiterConfig={"Delay": 5, "MaxAttempts": 360})
            stack = None
        wanted = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
        if stack is None:
            cfn.create_stack(StackName=self.names.stack, TemplateBody=self.template_body,
                             Parameters=wanted, Tags=[{"Key": "app", "Value": self.names.app},
                                                      {"Key": "stage", "Value": self.stage}])
            self._wait("stack_create_complete")
            self.changed(f"stack {self.names.stack} created")
        else:
            have = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
            body = cfn.get_template(StackName=self.names.stack)["TemplateBody"]
            if not isinstance(body, str):  # botocore decodes JSON template bodies
                body = json.dumps(body, sort_keys=True)
                same_body = body == json.dumps(_json_or_none(self.template_body), sort_keys=True)
            else:
                same_body = body == self.template_body
            if not same_body or any(have.get(k) != v for k, v in params.items()):
                try:
                    cfn.update_stack(StackName=self.names.stack, TemplateBody=self.template_body,
                                     Parameters=wanted)
                except ClientError as exc:
                    if "No updates are to be performed" not in str(exc):
                        raise
                else:
                    self._wait("stack_update_complete")
                    self.changed(f"stack {self.names.stack} updated")
        return self.outputs()

    def _wait(self, waiter: str) -> None:
        try:
            self.client("cloudformation").get_waiter(waiter).wait(
                StackName=self.names.stack, WaiterConfig={"Delay": 5, "MaxAttempts": 720})
        except Exception as exc:
            raise DeployError(f"Stack {self.names.stack}: {waiter} failed ({exc}); see its events in "
                              "the CloudFormation console.") from exc

    def outputs(self) -> dict[str, str]:
        stack = self.stack() or {}
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    # -- 3. the stage configuration
    def write_stage_config(self, outputs: Mapping[str, str], mail_from: str, team_email: str,
                           websocket_api_id: str | None, public_api_url: str | None = None) -> None:
        config = load_chalice_config(self.root)
        values: dict[str, str | None] = {
            "TABLE_NAME": outputs["TableName"],
            "MAIL_QUEUE_NAME": outputs["MailQueueName"],
            "MAIL_DLQ_NAME": outputs["MailDeadLetterQueueName"],
            "MAIL_MAX_RECEIVES": outputs.get("MailMaxReceives", "5"),
            "TOKEN_SECRET_PARAM": outputs["TokenSecretParamName"],
            "WEBSOCKET_STAGE": str(config.get("websocket_api_stage", "api")),
            "MAIL_FROM": mail_from,
            "TEAM_EMAIL": team_email,
            # Where chalicelib/telemetry.py writes metrics: the namespace the dashboard reads.
            "POWERTOOLS_METRICS_NAMESPACE": outputs.get("MetricsNamespace",
                                                        f"{self.names.app}-{self.stage}"),
        }
        if websocket_api_id:
            values["WEBSOCKET_API_ID"] = websocket_api_id
        if public_api_url:  # links in emails (address confirmation) point here
            values["PUBLIC_API_URL"] = public_api_url
        changed = set_stage_env(self.root, self.stage, values)
        if changed:
            self.changed(f".chalice/config.json stage {self.stage}: {', '.join(changed)}")
        path = policy_path(self.root, config, self.stage)
        policy = render_policy(json.loads(path.read_text()),
                               mail_identity=outputs.get("MailIdentity") or mail_from.rsplit("@", 1)[-1],
                               configuration_set=outputs.get("ConfigurationSetName",
                                                             self.names.configuration_set),
                               websocket_api_id=websocket_api_id,
                               websocket_stage=str(config.get("websocket_api_stage", "api")))
        if write_json_if_changed(path, policy):
            self.changed(f".chalice/{path.name}")

    # -- 4. chalice deploy
    def deployed(self) -> dict[str, dict[str, Any]]:
        """Chalice's record of the stage: resource name -> its deployed values."""
        if not self.deployed_record.exists():
            return {}
        doc = json.loads(self.deployed_record.read_text())
        return {r["name"]: r for r in doc.get("resources", [])}

    def chalice_deploy(self, force: bool) -> bool:
        project = stage_project(self.root, self.stage)
        fingerprint = project_fingerprint(project)
        if (not force and self.deployed_record.exists() and self.fingerprint_record.exists()
                and self.fingerprint_record.read_text().strip() == fingerprint):
            return False
        staged_record = project / ".chalice" / "deployed" / f"{self.stage}.json"
        staged_record.parent.mkdir(parents=True, exist_ok=True)
        if self.deployed_record.exists():
            shutil.copy2(self.deployed_record, staged_record)
        elif staged_record.exists():
            staged_record.unlink()
        self.runner([chalice_command(), "--project-dir", str(project), "deploy", "--stage", self.stage],
                    project, self.child_env())
        if not staged_record.exists():
            raise DeployError("chalice deploy left no .chalice/deployed record.")
        self.deployed_record.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(staged_record, self.deployed_record)
        self.fingerprint_record.write_text(fingerprint + "\n")
        self.changed(f"chalice deploy --stage {self.stage}")
        return True

    # -- 5. the mail trigger
    def ensure_event_source(self) -> None:
        config = load_chalice_config(self.root)
        concurrency = function_setting(config, self.stage, "send_mail", "reserved_concurrency")
        lam = self.client("lambda")
        for resource in self.deployed().values():
            if resource.get("resource_type") != "sqs_event":
                continue
            mapping = lam.get_event_source_mapping(UUID=resource["event_uuid"])
            update: dict[str, Any] = {}
            if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
                update["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
            if isinstance(concurrency, int) and concurrency >= 2 and (
                    mapping.get("ScalingConfig") or {}).get("MaximumConcurrency") != concurrency:
                update["ScalingConfig"] = {"MaximumConcurrency": concurrency}
            if update:
                lam.update_event_source_mapping(UUID=resource["event_uuid"], **update)
                self.changed(f"SQS trigger {resource['name']}: {', '.join(sorted(update))}")

    # -- 5b. the API stages: throttling and access logs (Chalice sets neither)
    def ensure_api_logging_role(self) -> None:
        """API Gateway writes REST and WebSocket access logs through one IAM role per account
        and region (AWS::ApiGateway::Account, "only one per region per account", AWS says).
        If the account has none, it gets one from a stack of its own
        (infra/apigateway-account.yaml), shared by every stage and kept by ``destroy``; a role
        set by anything else is left alone."""
        if self.client("apigateway").get_account().get("cloudwatchRoleArn"):
            return
        cfn = self.client("cloudformation")
        name = f"{self.names.app}-apigateway-logging"
        try:
            status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        except ClientError as exc:
            if "does not exist" not in str(exc):
                raise
        else:
            if status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                return
            raise DeployError(f"Stack {name} (API Gateway's CloudWatch Logs role) is {status}: "
                              "read its events, delete it, and deploy again.")
        cfn.create_stack(StackName=name, TemplateBody=LOGGING_ROLE_TEMPLATE.read_text(),
                         Capabilities=["CAPABILITY_IAM"], Tags=[{"Key": "app", "Value": self.names.app}])
        cfn.get_waiter("stack_create_complete").wait(StackName=name,
                                                     WaiterConfig={"Delay": 5, "MaxAttempts": 120})
        self.changed(f"stack {name} created (API Gateway's CloudWatch Logs role, this account and region)")

    def ensure_api_stages(self, outputs: Mapping[str, str]) -> None:
        """The stage's ``api_protection`` on both deployed API stages, and their access logs
        into the stack's log groups; nothing is changed when they have it already."""
        protection = api_protection(load_chalice_config(self.root), self.stage)
        deployed = self.deployed()
        for kind, output in (("rest_api", "RestAccessLogGroupArn"),
                             ("websocket_api", "WebsocketAccessLogGroupArn")):
            record = deployed.get(kind)
            if not record:
                continue
            destination = outputs.get(output)
            if not destination:
                raise DeployError(f"The stack {self.names.stack} has no output {output}.")
            stage = str(record[f"{kind}_url"]).rstrip("/").rsplit("/", 1)[-1]
            if kind == "rest_api":
                apigateway = self.client("apigateway")
                current = apigateway.get_stage(restApiId=record["rest_api_id"], stageName=stage)
                ops = rest_stage_patch(current, protection, destination)
                if ops:
                    apigateway.update_stage(restApiId=record["rest_api_id"], stageName=stage,
                                            patchOperations=ops)
                    self.changed(f"REST API stage {stage}: throttling and access logs")
            else:
                v2 = self.client("apigatewayv2")
                current = v2.get_stage(ApiId=record["websocket_api_id"], StageName=stage)
                update = websocket_stage_update(current, protection, destination)
                if update:
                    v2.update_stage(ApiId=record["websocket_api_id"], StageName=stage, **update)
                    self.changed(f"WebSocket API stage {stage}: throttling and access logs")

    # -- 6. widget and console
    def endpoints(self) -> tuple[str, str]:
        """(WebSocket URL, REST base URL), custom domains first."""
        config = load_chalice_config(self.root)
        stage = stage_config(config, self.stage)
        deployed = self.deployed()
        ws = str(deployed.get("websocket_api", {}).get("websocket_api_url", "")).rstrip("/")
        api = str(deployed.get("rest_api", {}).get("rest_api_url", "")).rstrip("/")
        for key, scheme in (("websocket_api_custom_domain", "wss"), ("api_gateway_custom_domain", "https")):
            domain = stage.get(key) or config.get(key)
            if domain:
                prefix = str(domain.get("url_prefix", "")).strip("/")
                url = f"{scheme}://{domain['domain_name']}" + (f"/{prefix}" if prefix else "")
                ws, api = (url, api) if scheme == "wss" else (ws, url)
        if not ws or not api:
            raise DeployError("No API addresses in .chalice/deployed: did chalice deploy run?")
        return ws, api

    def api_origins(self) -> str:
        config = load_chalice_config(self.root)
        stage = stage_config(config, self.stage)
        origins = []
        for key, scheme in (("api_gateway_custom_domain", "https"), ("websocket_api_custom_domain", "wss")):
            domain = stage.get(key) or config.get(key)
            if domain:
                origins.append(f"{scheme}://{domain['domain_name']}")
        return " ".join(origins)

    def site_files(self, ws: str, api: str, site: str, snippet: str) -> dict[str, tuple[bytes, str, str]]:
        """Key -> (body, content type, cache control) of everything the bucket should hold."""
        files: dict[str, tuple[bytes, str, str]] = {}
        assets: dict[str, bytes] = {}
        for name in ("widget.js", "chatlink.js"):
            if (self.root / "widget" / name).exists():
                assets[f"widget/{name}"] = (self.root / "widget" / name).read_bytes()
        for path in sorted((self.root / "console").glob("*")):
            if path.is_file() and path.name != "index.html" and not path.name.startswith("."):
                assets[f"console/{path.name}"] = path.read_bytes()
        console_config = {"ws": ws, "api": api, "site": site, "stage": self.stage}
        assets["console/config.js"] = (
            f"// Written by infra/deploy.py for stage {self.stage}; do not edit.\n"
            f"window.ChatConsoleConfig = {json.dumps(console_config, sort_keys=True)};\n").encode()
        for key, body in assets.items():
            cache = CACHE_WIDGET if key == "widget/widget.js" else CACHE_REVALIDATE
            files[key] = (body, _content_type(key), cache)
        index = self.root / "console" / "index.html"
        if index.exists():
            html = index.read_text()
            if "/console/config.js" not in html:  # before the first script: the console reads it
                html = re.sub(r"(<script\b)", '<script src="/console/config.js"></script>\n  \\1', html,
                              count=1)

            def hashed(match: re.Match[str]) -> str:
                key = match.group(2).lstrip("/")
                if key not in assets:
                    return match.group(0)
                digest = hashlib.sha256(assets[key]).hexdigest()[:10]
                stem, dot, ext = key.rpartition(".")
                hashed_key = f"{stem}.{digest}{dot}{ext}"
                files[hashed_key] = (assets[key], _content_type(key), CACHE_IMMUTABLE)
                return f'{match.group(1)}="/{hashed_key}"'

            html = re.sub(r'\b(src|href)="(/(?:console|widget)/[^"?#]+)"', hashed, html)
            files["console/index.html"] = (html.encode(), "text/html; charset=utf-8", CACHE_REVALIDATE)
        files["widget/embed-snippet.html"] = (snippet.encode(), "text/plain; charset=utf-8",
                                              CACHE_REVALIDATE)
        return files

    def upload_site(self, bucket: str, distribution_id: str,
                    files: Mapping[str, tuple[bytes, str, str]]) -> None:
        s3 = self.client("s3")
        changed_keys = []
        for key, (body, content_type, cache) in sorted(files.items()):
            parts = [body, content_type.encode(), cache.encode()]
            fingerprint = hashlib.sha256(b"\0".join(parts)).hexdigest()
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
                if head.get("Metadata", {}).get("fingerprint") == fingerprint:
                    continue
            except ClientError as exc:
                if _client_error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                    raise
            s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, CacheControl=cache,
                          Metadata={"fingerprint": fingerprint})
            changed_keys.append(key)
        stale = [key for key in self._bucket_keys(bucket, ("widget/", "console/")) if key not in files]
        for start in range(0, len(stale), 1000):
            batch = [{"Key": k} for k in stale[start:start + 1000]]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        if stale:
            self.changed(f"removed {len(stale)} old file(s) from the site bucket")
        if changed_keys:
            self.changed(f"uploaded {len(changed_keys)} file(s): {', '.join(changed_keys)}")
            # Hashed names are new names: only the stable ones need CloudFront to forget them.
            paths = sorted({"/" + k for k in changed_keys if files[k][2] != CACHE_IMMUTABLE}
                           | ({"/console/"} if "console/index.html" in changed_keys else set()))
            if paths and distribution_id:
                self.client("cloudfront").create_invalidation(
                    DistributionId=distribution_id,
                    InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths},
                                       "CallerReference": hashlib.sha256(
                                           json.dumps(paths).encode() + secrets.token_bytes(8)).hexdigest()})
                self.changed(f"CloudFront invalidation of {len(paths)} path(s)")

    def _bucket_keys(self, bucket: str, prefixes: Iterable[str]) -> list[str]:
        keys = []
        paginator = self.client("s3").get_paginator("list_objects_v2")
        for prefix in prefixes:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    # -- 7. the first admin
    def ensure_admin(self, options: Options, table: str) -> str | None:
        """Create an admin on the site unless it has one; the password, if one was made."""
        password = self.env.get("ADMIN_PASSWORD") or secrets.token_urlsafe(15)
        env = self.child_env()
        env.update({"TABLE_NAME": table, "ADMIN_PASSWORD": password})
        for key in list(env):  # the child must reach this deployment's AWS, not a local override
            if key.startswith("AWS_ENDPOINT_URL_") or key == "TOKEN_SECRET":
                del env[key]
        args = [sys.executable, "-m", "infra.deploy", "ensure-admin", "--site", options.site,
                "--id", options.admin_id, "--name", options.admin_name]
        if options.admin_email:
            args += ["--email", options.admin_email]
        if options.company:
            args += ["--company", options.company]
        done = subprocess.run(args, cwd=self.root, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise DeployError(f"Creating the first admin failed:\n{done.stderr.strip()}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        if not report["created"]:
            return None
        self.changed(f"admin agent {options.admin_id!r} created on site {options.site!r}")
        return password

    # -- the whole thing
    def deploy(self, options: Options | None = None) -> Result:
        options = options or Options()
        self.changes = []
        lambda_runtime()  # before anything is created: a deprecated runtime is refused outright
        config = load_chalice_config(self.root)
        env = stage_env(config, self.stage)
        mail_from = options.mail_from or env.get("MAIL_FROM", "")
        team_email = options.team_email or env.get("TEAM_EMAIL", "")
        for label, address in (("MAIL_FROM", mail_from), ("TEAM_EMAIL", team_email)):
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
                raise DeployError(f"{label} must be an email address "
                                  f"(make deploy ... {label}=you@yourdomain).")
            if address.rsplit("@", 1)[1].lower() in RESERVED_DOMAINS:
                raise DeployError(f"{label} is {address}: use a domain you own, e.g. "
                                  f"make deploy STAGE={self.stage} {label}=chat@yourdomain.com")
        self.out(f"deploying stage {self.stage} to {self.region}")
        self.ensure_secret()
        current = {p["ParameterKey"]: p["ParameterValue"] for p in (self.stack() or {}).get("Parameters", [])}
        params = self.stack_parameters(options, mail_from, current, self.api_origins())
        outputs = self.ensure_stack(params)
        api_id = env.get("WEBSOCKET_API_ID") or None
        public_api = env.get("PUBLIC_API_URL") or None
        self.write_stage_config(outputs, mail_from, team_email, api_id, public_api)
        self.chalice_deploy(options.force)
        deployed_id = self.deployed().get("websocket_api", {}).get("websocket_api_id")
        deployed_api = self.endpoints()[1]
        if (deployed_id and deployed_id != api_id) or deployed_api != public_api:
            # The APIs exist only now: the WebSocket API's id (management API endpoint outside
            # WebSocket handlers, and the policy) and the REST API's address (links in emails)
            # go into the environment, then one more deploy.
            self.write_stage_config(outputs, mail_from, team_email, deployed_id or api_id, deployed_api)
            self.chalice_deploy(force=True)
        self.ensure_event_source()
        self.ensure_api_logging_role()
        self.ensure_api_stages(outputs)
        ws, api = self.endpoints()
        site_url = outputs.get("SiteUrl") or f"https://{outputs.get('DistributionDomainName', '')}"
        snippet = (f'<script async src="{site_url}/widget/widget.js" data-site="{options.site}"\n'
                   f'        data-ws="{ws}" data-api="{api}"></script>')
        self.upload_site(outputs["SiteBucketName"], outputs.get("DistributionId", ""),
                         self.site_files(ws, api, options.site, snippet + "\n"))
        password = self.ensure_admin(options, outputs["TableName"])
        result = Result(list(self.changes), snippet, f"{site_url}/console/", ws, api, password)
        self.report(result, outputs, options)
        return result

    def report(self, result: Result, outputs: Mapping[str, str], options: Options) -> None:
        self.out("")
        self.out("nothing changed" if not result.changes else f"{len(result.changes)} change(s)")
        self.out(f"  agent console   {result.console_url}")
        self.out(f"  WebSocket API   {result.websocket_url}")
        self.out(f"  REST API        {result.api_url}")
        if result.admin_password:
            self.out(f"  first admin     {options.admin_id} / {result.admin_password}   (shown once)")
        dkim = [outputs[k] for k in ("DkimRecord1", "DkimRecord2", "DkimRecord3") if k in outputs]
        if dkim:
            self.out(f"  SES: publish these DNS records to verify {outputs.get('MailIdentity')}:")
            for record in dkim:
                self.out(f"    {record}")
        self.out("")
        self.out("Embed the chat on your site:")
        self.out("")
        self.out(result.snippet)

    # -- teardown
    def destroy(self, backup: bool = False) -> list[str]:
        """Remove the stage; with ``backup``, an on-demand backup of the table first (it
        outlives the table, and is billed per GB-month until you delete it)."""
        self.changes = []
        self.out(f"destroying stage {self.stage} in {self.region}")
        if self.deployed_record.exists():
            project = stage_project(self.root, self.stage)
            staged = project / ".chalice" / "deployed" / f"{self.stage}.json"
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.deployed_record, staged)
            self.runner([chalice_command(), "--project-dir", str(project), "delete", "--stage", self.stage],
                        project, self.child_env())
            self.deployed_record.unlink()
            staged.unlink(missing_ok=True)
            self.changed(f"chalice delete --stage {self.stage}")
        self.fingerprint_record.unlink(missing_ok=True)
        stack = self.stack()
        if stack is not None:
            outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
            if outputs.get("SiteBucketName"):
                self._empty_bucket(outputs["SiteBucketName"])
            params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
            if backup and outputs.get("TableName"):
                name = f"{outputs['TableName']}-final-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
                arn = self.client("dynamodb").create_backup(TableName=outputs["TableName"], BackupName=name)[
                    "BackupDetails"]["BackupArn"]
                self.changed(f"table backed up: {arn}")
            cfn = self.client("cloudformation")
            if params.get("TableDeletionProtection") == "true":
                cfn.update_stack(StackName=self.names.stack, UsePreviousTemplate=True, Parameters=[
                    {"ParameterKey": k, "ParameterValue": "false"} if k == "TableDeletionProtection"
                    else {"ParameterKey": k, "UsePreviousValue": True} for k in sorted(params)])
                self._wait("stack_update_complete")
            table = outputs.get("TableName")
            if table:  # if the stack update did not get there (it should), say it to DynamoDB
                dynamodb = self.client("dynamodb")
                try:
                    described = dynamodb.describe_table(TableName=table)["Table"]
                except ClientError as exc:
                    if _client_error_code(exc) != "ResourceNotFoundException":
                        raise
                else:
                    if described.get("DeletionProtectionEnabled"):
                        dynamodb.update_table(TableName=table, DeletionProtectionEnabled=False)
            cfn.delete_stack(StackName=self.names.stack)
            self._wait("stack_delete_complete")
            self.changed(f"stack {self.names.stack} deleted")
        try:
            self.client("ssm").delete_parameter(Name=self.names.token_secret_param)
            self.changed(f"SSM parameter {self.names.token_secret_param} deleted")
        except ClientError as exc:
            if _client_error_code(exc) != "ParameterNotFound":
                raise
        if set_stage_env(self.root, self.stage, {"WEBSOCKET_API_ID": None, "PUBLIC_API_URL": None}):
            self.changed(f".chalice/config.json stage {self.stage}: WEBSOCKET_API_ID, PUBLIC_API_URL removed")
        config = load_chalice_config(self.root)
        path = policy_path(self.root, config, self.stage)
        policy = json.loads(path.read_text())
        mail = _statement(policy, "SendMail")
        identity = next((r.rsplit("identity/", 1)[1] for r in _as_list(mail["Resource"]) if "identity/" in r),
                        "example.com")
        if write_json_if_changed(path, render_policy(
                policy, mail_identity=identity, configuration_set=self.names.configuration_set,
                websocket_api_id=None, websocket_stage=str(config.get("websocket_api_stage", "api")))):
            self.changed(f".chalice/{path.name}: WebSocket API unpinned")
        self.out("nothing to remove" if not self.changes else "done")
        return list(self.changes)

    def _empty_bucket(self, bucket: str) -> None:
        s3 = self.client("s3")
        try:
            paginator = s3.get_paginator("list_object_versions")
            removed = 0
            for page in paginator.paginate(Bucket=bucket):
                objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                           for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
                if objects:
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
                    removed += len(objects)
        except ClientError as exc:
            if _client_error_code(exc) != "NoSuchBucket":
                raise
            return
        if removed:
            self.changed(f"emptied bucket {bucket} ({removed} object(s))")


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _content_type(key: str) -> str:
    if key.endswith(".js"):
        return "text/javascript; charset=utf-8"
    guessed = mimetypes.guess_type(key)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


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


# ---- command line -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dep = sub.add_parser("deploy", help="deploy (or update) a stage")
    dep.add_argument("--stage", required=True)
    dep.add_argument("--mail-from", help="sender address (kept in .chalice/config.json)")
    dep.add_argument("--team-email", help="where messages for the team go by default")
    dep.add_argument("--mail-identity", help="SES identity (default: the domain of --mail-from)")
    dep.add_argument("--mail-identity-mode", choices=["domain", "address", "existing"])
    dep.add_argument("--alarm-email", help="told when mail jobs land in the dead-letter queue")
    dep.add_argument("--site-domain", help="custom domain for widget and console (CloudFront)")
    dep.add_argument("--site-certificate-arn", help="its ACM certificate, in us-east-1")
    dep.add_argument("--price-class", choices=["PriceClass_100", "PriceClass_200", "PriceClass_All"])
    dep.add_argument("--site", default=DEFAULT_SITE, help="site of the snippet and the first admin")
    dep.add_argument("--admin", default="admin", help="id of the first admin (created if none)")
    dep.add_argument("--admin-name", default="Admin")
    dep.add_argument("--admin-email")
    dep.add_argument("--company", default=os.environ.get("COMPANY") or None,
                     help="the company name visitors see (asked for in a terminal; else kept)")
    dep.add_argument("--force", action="store_true", help="run chalice deploy even if nothing changed")
    des = sub.add_parser("destroy", help="remove everything of a stage (the table too)")
    des.add_argument("--stage", required=True)
    des.add_argument("--yes", action="store_true", help="do not ask")
    des.add_argument("--backup", action="store_true", help="keep an on-demand backup of the table")
    pkg = sub.add_parser("package", help="small Lambda zip + merged CloudFormation template")
    pkg.add_argument("--stage", required=True)
    sec = sub.add_parser("secret", help="create the token secret of a stage if missing")
    sec.add_argument("--stage", required=True)
    tbl = sub.add_parser("table", help="print the table block of infra/template.yaml")
    tbl.add_argument("--check", action="store_true", help="exit 1 if the template differs")
    adm = sub.add_parser("ensure-admin", help=argparse.SUPPRESS)
    adm.add_argument("--site", required=True)
    adm.add_argument("--id", required=True)
    adm.add_argument("--name", required=True)
    adm.add_argument("--email")
    adm.add_argument("--company")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "table":
        if args.check:
            same = template_table_schema(load_template()) == table_schema()
            print("infra/template.yaml matches chalicelib.models" if same else
                  "infra/template.yaml differs from chalicelib.models; replace its Table block with:\n"
                  + table_yaml())
            return 0 if same else 1
        print(table_yaml(), end="")
        return 0
    if args.command == "ensure-admin":
        print(json.dumps(ensure_admin_here(args.site, args.id, args.name, args.email, args.company)))
        return 0
    if args.command == "package":
        package(args.stage)
        return 0
    deployer = Deployer(args.stage)
    if args.command == "secret":
        deployer.ensure_secret()
        return 0
    if args.command == "destroy":
        if not args.yes and input(f"Delete stage {args.stage!r}, its table and every conversation? "
                                  f"Type the stage name: ").strip() != args.stage:
            print("not confirmed; nothing removed")
            return 1
        deployer.destroy(backup=args.backup)
        return 0
    deployer.deploy(Options(
        mail_from=args.mail_from, team_email=args.team_email, mail_identity=args.mail_identity,
        mail_identity_mode=args.mail_identity_mode, alarm_email=args.alarm_email,
        site_domain=args.site_domain, site_certificate_arn=args.site_certificate_arn,
        price_class=args.price_class, site=args.site, admin_id=args.admin, admin_name=args.admin_name,
        admin_email=args.admin_email, force=args.force, company=company_name(args.company)))
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
