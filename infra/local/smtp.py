"""SES receiving, played locally: an SMTP server (aiosmtpd) for the reply domain.

On AWS, SES receives a visitor's answer for ``reply+<token>@REPLY_DOMAIN``, its receipt rule
stores the raw MIME in S3 and invokes the ``receive_email`` Lambda with an SES event
(infra/template.yaml, docs/deploy.md). Here :class:`SmtpLocal` does the same with real parts:
any SMTP client delivers to ``smtp://127.0.0.1:<port>``, the raw message is put in the
local S3 (moto, the same server as the local SQS) under ``INBOUND_PREFIX`` + a message id,
and the app's own ``receive_email`` handler is called with an event shaped like SES's
(``Records[].ses.mail`` / ``.receipt``), so the handler reads it back from S3 as on AWS.

Like SES, the server accepts the mail (250) whatever the handler then decides; what it
decided is kept in :attr:`SmtpLocal.outcomes` (tests read it) and logged.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import format_datetime
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from infra.local.dynamodb import free_port
from infra.local.gateway import LocalLambdaContext

log = logging.getLogger(__name__)
#: Bigger than the app's own cap (email_channel.MAX_RAW_BYTES), as SES's 40 MB is: the app,
#: not the SMTP server, is what refuses a huge email.
DATA_SIZE_LIMIT = 10 * 1024 * 1024


def ses_event(raw: bytes, message_id: str, sender: str, recipients: list[str]) -> dict[str, Any]:
    """The event SES receiving gives a Lambda action (the fields the app and Powertools'
    ``SesModel`` read), for one email stored under ``message_id``."""
    headers = BytesHeaderParser(policy=default).parsebytes(raw)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    verdict = {"status": "PASS"}
    return {"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {
        "mail": {"timestamp": now, "source": sender, "messageId": message_id,
                 "destination": recipients, "headersTruncated": False,
                 "headers": [{"name": k, "value": str(v)} for k, v in list(headers.items())[:100]],
                 "commonHeaders": {"returnPath": sender, "from": [str(headers.get("From", ""))],
                                   "to": recipients, "messageId": str(headers.get("Message-ID", "")),
                                   "date": str(headers.get("Date", "") or format_datetime(datetime.now(UTC))),
                                   "subject": str(headers.get("Subject", ""))}},
        "receipt": {"timestamp": now, "processingTimeMillis": 1, "recipients": recipients,
                    "spamVerdict": verdict, "virusVerdict": verdict, "spfVerdict": verdict,
                    "dkimVerdict": verdict, "dmarcVerdict": verdict,
                    "action": {"type": "Lambda", "invocationType": "Event",
                               "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:local"}}}}]}


class _Handler:
    def __init__(self, owner: SmtpLocal) -> None:
        self.owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        sender = str(envelope.mail_from or "")
        recipients = [str(r) for r in envelope.rcpt_tos]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.owner.deliver, raw, sender, recipients)
        return "250 OK"


class SmtpLocal:
    """An SMTP server on 127.0.0.1 that hands each message to ``store`` then ``handler``."""

    def __init__(self, store: Callable[[str, bytes], None], handler: Callable[[dict[str, Any], Any], Any],
                 port: int | None = None, timeout_s: float = 30) -> None:
        self.port = port or free_port()
        self.store = store
        self.handler = handler
        self.outcomes: list[str] = []
        self.timeout_s = timeout_s  # the function's timeout (.chalice/config.json: 30 s)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      server_kwargs={"data_size_limit": DATA_SIZE_LIMIT})
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def deliver(self, raw: bytes, sender: str, recipients: list[str]) -> None:
        """Store the message as SES's S3 action would, then invoke the app's handler."""
        message_id = secrets.token_hex(16)  # SES's ids are opaque too
        self.store(message_id, raw)
        try:
            context = LocalLambdaContext("clicktochat-local-receive_email", timeout_s=self.timeout_s)
            answer = self.handler(ses_event(raw, message_id, sender, recipients), context)
        except Exception:  # as an asynchronous Lambda invocation: logged, the sender got 250
            log.exception("receive_email failed")
            self.outcomes.append("error")
            return
        self.outcomes.extend(answer.get("outcomes", []) if isinstance(answer, dict) else [])
