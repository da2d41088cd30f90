"""The Lambda package as shipped: its size, its files, and its cold import in the runtime.

    python -m bench.packaged [--runs 9] [--zip path/to/deployment.zip]

Builds the zip exactly as ``make package STAGE=prod`` does (or takes one), unpacks it into a
task directory and, in the runtime sandbox (``infra/sandbox.py``: the runtime's Python and
SDK only, Lambda's environment variables), times fresh processes:

* ``app``: ``import app``, what a cold container's init phase pays for our code;
* ``botocore``: ``import botocore.session`` from the package, the SDK's own import, the floor
  under which the app cannot go (PynamoDB and our clients need it);
* ``runtime_boto3``: ``import boto3`` from the runtime's site-packages, what a hello-world
  function that uses the runtime's SDK pays.

Median and min-max of ``--runs`` processes, in milliseconds (``time.perf_counter`` around the
import, so interpreter start-up is excluded for all three alike). Writes
``bench/results/packaged.json``; ``make bench`` runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from infra import runtime, sandbox

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

_TIMED = ("import time; t = time.perf_counter(); {stmt}; "
          "print(round((time.perf_counter() - t) * 1000, 2))")
STATEMENTS = {"app": "import app", "botocore": "import botocore.session",
              "runtime_boto3": "import boto3"}


def build() -> Path:
    from infra.deploy.packaging import package

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return package("prod", env=env, out=lambda *_: None).zip_path


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": min(values), "max": max(values),
            "runs": len(values)}


def measure(zip_path: Path, runs: int) -> dict[str, Any]:
    venv = sandbox.runtime_venv()
    with zipfile.ZipFile(zip_path) as archive:
        infos = archive.infolist()
    with tempfile.TemporaryDirectory() as tmp:
        task = sandbox.unpack(zip_path, Path(tmp) / "task")
        env = {**sandbox.lambda_environment(venv, task, "bench", "message"),
               "TOKEN_SECRET": "x" * 40, "TABLE_NAME": "bench"}
        code = {name: _TIMED.format(stmt=stmt) for name, stmt in STATEMENTS.items()}
        times: dict[str, list[float]] = {name: [] for name in code}
        for _ in range(runs):
            for name, snippet in code.items():  # interleaved: the machine's noise hits all alike
                # sys.path as the runtime has it: the task root first (python -c puts '' = cwd)
                done = sandbox.python(venv, task, snippet, env=env)
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed in the runtime sandbox:\n{done.stderr}")
                times[name].append(float(done.stdout.split()[-1]))
    return {
        "zip_bytes": zip_path.stat().st_size,
        "files": sum(1 for i in infos if not i.is_dir()),
        "unpacked_bytes": sum(i.file_size for i in infos),
        "cold_import_ms": {name: spread(values) for name, values in times.items()},
        "runtime": runtime.RUNTIME, "runtime_sdk_assumed": runtime.RUNTIME_SDK,
        "how": "python -m bench.packaged (fresh process per import, runtime sandbox, interleaved)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.packaged")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--zip", type=Path, help="measure this zip instead of building one")
    parser.add_argument("--out", type=Path, default=RESULTS / "packaged.json")
    args = parser.parse_args(argv)
    result = measure(args.zip or build(), args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
