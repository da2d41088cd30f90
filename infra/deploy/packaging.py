"""The Lambda package: a staged copy of the project whose dependencies are vendored for the
runtime (botocore trimmed to the services the app calls, the SDK parts it never imports left
out, bytecode precompiled), then ``chalice package`` and the merged template (``make package``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from infra import runtime
from infra.deploy import ROOT, DeployError
from infra.deploy.chalice_config import load_chalice_config
from infra.deploy.names import names
from infra.deploy.template import load_template, merge_templates, postprocess_sam

BUILD_ROOT = Path(".chalice") / "deployments" / "build"  # under the project; git-ignored

# The package carries its own pinned botocore (requirements.txt; infra/runtime.py says why), so
# what runs on Lambda is what the tests ran. Its API models are trimmed to the services the app
# calls (chalicelib.aws.client names and PynamoDB's dynamodb; tests/test_packaged.py keeps this
# list and the code in step): 5 of ~420 services, about 1.3 MB of the package instead of 13 MB.
SHIPPED_SERVICES = frozenset({"dynamodb", "apigatewaymanagementapi", "sqs", "sesv2", "ssm", "s3"})
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

Runner = Callable[[list[str], Path, Mapping[str, str]], None]
Out = Callable[[str], None]


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
