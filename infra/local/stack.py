"""The whole product on one machine: DynamoDB Local + the gateway stand-in + the app.

Used by ``make dev`` and by the tests, so both run exactly the same parts. The app reads
only standard settings (``AWS_ENDPOINT_URL_DYNAMODB``,
``AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI``, ``TABLE_NAME``, ``TOKEN_SECRET``): it does not
know it is local.
"""

from __future__ import annotations

import importlib
import os
import secrets
from pathlib import Path
from types import ModuleType

import boto3

from infra.local.dynamodb import ROOT, DynamoDBLocal
from infra.local.gateway import IDLE_TIMEOUT_S, MAX_CONNECTION_S, GatewayServer
from infra.local.ses import SesLocal
from infra.local.smtp import SmtpLocal
from infra.local.sqs import SqsLocal, SqsPoller

LOCAL_DIR = ROOT / ".local"
#: The reply domain of the stand-in: agents' emailed replies say reply+<token>@ this, and the
#: local SMTP server (infra/local/smtp.py) takes the answers for it.
LOCAL_REPLY_DOMAIN = "reply.localhost"

# Every local client is 127.0.0.1: a per-network limit would count them all as one (and one
# developer's typos would lock every local console out of signing in). Off unless the
# environment says otherwise.
PER_NETWORK_LIMITS = ("CONVERSATIONS_PER_IP_PER_HOUR", "LOGIN_FAILURES_PER_ADDRESS",
                      "MAIL_PER_NETWORK_PER_HOUR")


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), in a folder only its owner can enter.

    For files holding secrets (the token secret, dev.json with the management API's key): the
    mode is set as the file is created, so it is never readable by others even for a moment,
    and forced on a file an older version left world-readable.
    """
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def local_secret(folder: Path | None = None) -> str:
    """A token secret kept across restarts so signed-in agents stay signed in."""
    path = (folder or LOCAL_DIR) / "token-secret"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(48))
    path.chmod(0o600)  # a copy written by an older version may be readable by others
    return path.read_text().strip()


class Stack:
    """Start and stop every local part in the right order.

    ``idle_timeout`` / ``max_connection_duration`` (seconds) are API Gateway's WebSocket limits
    (10 minutes, 2 hours), on by default as on AWS; ``None`` turns one off.
    """

    def __init__(self, *, port: int = 0, table: str = "chat", data_dir: Path | None = None,
                 schedule_interval: float | None = 5.0, token_secret: str | None = None,
                 poll_queues: bool = True, retry_delay: float | None = None,
                 idle_timeout: float | None = IDLE_TIMEOUT_S,
                 max_connection_duration: float | None = MAX_CONNECTION_S) -> None:
        self.port = port
        self.table = table
        self.data_dir = data_dir
        self.schedule_interval = schedule_interval
        self.token_secret = token_secret
        self.poll_queues = poll_queues
        self.retry_delay = retry_delay
        self.idle_timeout = idle_timeout
        self.max_connection_duration = max_connection_duration
        self.dynamodb: DynamoDBLocal | None = None
        self.sqs: SqsLocal | None = None
        self.ses: SesLocal | None = None
        self.poller: SqsPoller | None = None
        self.smtp: SmtpLocal | None = None
        self.gateway: GatewayServer | None = None
        self.app_module: ModuleType | None = None

    def start(self) -> Stack:
        self.dynamodb = DynamoDBLocal(data_dir=self.data_dir)
        self.dynamodb.start()
        self.sqs = SqsLocal()
        self.sqs.start()
        self.ses = SesLocal()
        self.ses.start()
        os.environ.update({
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb.endpoint,
            "AWS_ENDPOINT_URL_SQS": self.sqs.endpoint,
            "AWS_ENDPOINT_URL_SESV2": self.ses.endpoint,
            "AWS_ENDPOINT_URL_S3": self.sqs.endpoint,  # moto's server serves S3 too (inbound email)
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "TABLE_NAME": self.table,
            "TOKEN_SECRET": self.token_secret or local_secret(),
        })
        for name in PER_NETWORK_LIMITS:
            os.environ.setdefault(name, "0")
        os.environ.setdefault("REPLY_DOMAIN", LOCAL_REPLY_DOMAIN)
        from chalicelib import config

        config.reload()  # the environment the app runs in from here on, as at a cold start
        self.app_module = importlib.import_module("app")
        from chalicelib import models

        models.create_table()
        self.sqs.create_queue(config.settings().mail_queue_name, dlq_name=config.settings().mail_dlq_name,
                              max_receive_count=config.settings().mail_max_receives)
        self.gateway = GatewayServer(
            self.app_module.app, port=self.port, schedule_interval=self.schedule_interval,
            idle_timeout=self.idle_timeout, max_connection_duration=self.max_connection_duration,
            static_dirs={"/": ROOT / "demo", "/widget/": ROOT / "widget",
                         "/console/": ROOT / "console"})
        self.gateway.start()
        os.environ["AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI"] = self.gateway.management_endpoint
        os.environ["PUBLIC_API_URL"] = f"{self.gateway.http_url}/api"  # links in emails (confirmation)
        config.reload()  # now with the gateway's address
        self.smtp = self._start_smtp()
        self.poller = SqsPoller(self.app_module.app, self.sqs, retry_delay=self.retry_delay)
        if self.poll_queues:
            self.poller.start()
        return self

    def _start_smtp(self) -> SmtpLocal:
        """SES receiving's stand-in: the bucket its S3 action writes to, and the SMTP server
        that stores each email there and calls the app's ``receive_email``."""
        from chalicelib import config

        assert self.sqs is not None and self.app_module is not None
        # moto's server answers every service on one port: the local SQS is the local S3 too.
        client = boto3.session.Session().client(
            "s3", endpoint_url=self.sqs.endpoint, region_name="us-east-1",
            aws_access_key_id="local", aws_secret_access_key="local")
        bucket, prefix = config.settings().inbound_bucket, config.settings().inbound_prefix
        client.create_bucket(Bucket=bucket)
        smtp = SmtpLocal(lambda key, raw: client.put_object(Bucket=bucket, Key=prefix + key, Body=raw),
                         self.app_module.receive_email)
        smtp.start()
        return smtp

    def stop(self) -> None:
        """Stop in reverse order; the poller finishes the batch in hand first."""
        if self.poller is not None and self.poll_queues:
            self.poller.stop()
        if self.smtp is not None:
            self.smtp.stop()
        for part in (self.gateway, self.ses, self.sqs, self.dynamodb):
            if part is not None:
                part.stop()
