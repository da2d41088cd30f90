"""Amazon SES stand-in: ``aws-ses-v2-local`` (npm) as a child process.

It speaks both the SES v2 REST API (``sesv2.send_email``, templates, account) and the v1
query API (``ses.send_email`` / ``send_raw_email``) on one port, keeps every accepted email
in memory and shows them on ``GET /store`` (and as a web page on ``/``). Point the app at it
with ``AWS_ENDPOINT_URL_SESV2`` and ``AWS_ENDPOINT_URL_SES`` = :attr:`SesLocal.endpoint`.

One stored email (``GET /store`` answers ``{"templates": {...}, "emails": [...]}``), for a
``sesv2.send_email`` with ``Content.Simple``::

    {"messageId": "ses-123456789",            # also the MessageId boto3 returned
     "from": "Chat <noreply@example.com>",    # FromEmailAddress, verbatim
     "replyTo": ["visitor@example.org"],      # ReplyToAddresses ([] if none)
     "destination": {"to": [...], "cc": [...], "bcc": [...]},
     "subject": "...",
     "body": {"text": "...", "html": "..."},  # a part that was not sent is absent
     "attachments": [],
     "headers": [{"name": ..., "value": ...}],  # only if Content.Simple.Headers was sent
     "at": 1795469783}                        # epoch *seconds*

Nothing is verified (any From works, no sandbox) and nothing leaves the machine: the tool
can relay to SMTP when ``SMTP_TRANSPORT`` is set, so that variable is removed from its
environment. The store lives in the process: :meth:`SesLocal.stop` loses it, and a send
while stopped fails in boto3 with ``botocore.exceptions.EndpointConnectionError`` (after
botocore's own retries), which is how tests simulate "SES is down".
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, cast

from infra.local.dynamodb import ROOT, Unavailable, free_port

PACKAGE = ROOT / ".tools" / "node_modules" / "aws-ses-v2-local"


def cli_script() -> Path:
    """The package's ``bin`` script, read from its package.json (``dist/cli.js`` in 2.10)."""
    manifest = PACKAGE / "package.json"
    if not manifest.is_file():
        raise Unavailable(f"aws-ses-v2-local is not installed under {PACKAGE}; run `make setup`.")
    data = json.loads(manifest.read_text())
    binaries = data.get("bin")
    if isinstance(binaries, dict):
        relative = binaries.get("aws-ses-v2-local") or next(iter(binaries.values()), None)
    else:
        relative = binaries
    if not isinstance(relative, str):
        raise Unavailable(f"aws-ses-v2-local's package.json names no bin script ({manifest}).")
    return PACKAGE / relative


def node() -> str:
    path = shutil.which("node")
    if path is None:
        raise Unavailable("Node.js is required for the local SES (aws-ses-v2-local). Install Node.js 20+ "
                          "(https://nodejs.org or `apt-get install nodejs npm`).")
    return path


class SesLocal:
    """One aws-ses-v2-local process on 127.0.0.1; restartable on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        #: Exit status of the last process (None while it runs or before the first start).
        self.process_status: int | None = None
        self._log: Any = None  # the child's output, shown if it fails to start

    @property
    def endpoint(self) -> str:
        """Value for ``AWS_ENDPOINT_URL_SESV2`` and ``AWS_ENDPOINT_URL_SES``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("SesLocal already started")
        with socket.socket() as probe:  # else a leftover server would pass the readiness check
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise Unavailable(f"port {self.port} is already in use; cannot start aws-ses-v2-local.")
        command = [node(), str(cli_script()), "--port", str(self.port), "--host", "127.0.0.1"]
        env = {k: v for k, v in os.environ.items() if k != "SMTP_TRANSPORT"}
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (open while the child runs)
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            cwd=PACKAGE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self._output()
                self.stop()
                raise Unavailable(f"aws-ses-v2-local exited with status {self.process_status}: {output}")
            try:
                self._get_store(timeout=1)
            except (OSError, ValueError):  # refused / not yet HTTP / not yet JSON
                time.sleep(0.1)
                continue
            return
        output = self._output()
        self.stop()
        raise Unavailable(f"aws-ses-v2-local did not start within {timeout:.0f} s: {output}")

    def stop(self) -> None:
        if self.process is not None:
            self.process_status = self.process.poll()
            if self.process_status is None:
                self.process.terminate()
                try:
                    self.process_status = self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process_status = self.process.wait(timeout=10)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def emails(self) -> list[dict[str, Any]]:
        """Every email accepted since start (or :meth:`clear`), oldest first (shape: module doc)."""
        return cast("list[dict[str, Any]]", self._get_store()["emails"])

    def clear(self) -> None:
        """Empty the store (``POST /clear-store``; it also drops stored templates)."""
        request = urllib.request.Request(self.endpoint + "/clear-store", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    # ------------------------------------------------------------------ helpers

    def _get_store(self, timeout: float = 5) -> dict[str, Any]:
        with urllib.request.urlopen(self.endpoint + "/store", timeout=timeout) as response:
            return cast("dict[str, Any]", json.loads(response.read()))

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return cast(bytes, self._log.read()).decode(errors="replace").strip()[-2000:]


__all__ = ["SesLocal", "Unavailable"]
