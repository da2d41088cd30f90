"""Deploy a stage to AWS, package it, or tear it down (``python -m infra.deploy``; see :mod:`.cli`).

One module per job, each importing only those above it in this list:

* :mod:`.chalice_config` reads and writes ``.chalice/config.json`` (stage settings, environment);
* :mod:`.names` every name a stage uses (stack, table, queues, secret, functions);
* :mod:`.policy` the stage's hand-written IAM policy, filled in per deployment;
* :mod:`.protection` API Gateway throttling and access logs (``api_protection``);
* :mod:`.template` ``infra/template.yaml``, the table block, and Chalice's SAM template
  post-processed and merged with it;
* :mod:`.packaging` the Lambda package: dependencies vendored for the runtime, botocore
  trimmed, bytecode precompiled, ``chalice package``;
* :mod:`.uploads` the widget and the console in the site bucket;
* :mod:`.site` the site's name and its first admin;
* :mod:`.stack` :class:`~.stack.Deployer`, the idempotent deploy and destroy passes;
* :mod:`.cli` the command line.

This file holds only what every one of them shares, so importing the package costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

#: The project (where app.py, chalicelib/ and .chalice/ are).
ROOT = Path(__file__).resolve().parents[2]


class DeployError(RuntimeError):
    """Something the person deploying must fix; the message says what."""


def client_error_code(exc: ClientError) -> str:
    """The error code AWS answered with (``ParameterNotFound``, ``NoSuchBucket``...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
