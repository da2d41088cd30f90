"""AWS clients from botocore directly: boto3 adds ~90 ms of imports (s3transfer and friends)
to every cold start for nothing we use. One place makes them, so settings stay uniform."""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
from botocore.config import Config

_lock = threading.Lock()  # botocore sessions are not thread-safe when creating clients
_session: botocore.session.Session | None = None


def client(service: str, *, endpoint_url: str | None = None, config: Config | None = None) -> Any:
    """A client for ``service``; the region and credentials come from the Lambda environment,
    endpoints from the standard ``AWS_ENDPOINT_URL_<SERVICE>`` variables (the local stand-in)."""
    global _session
    with _lock:
        if _session is None:
            _session = botocore.session.get_session()
        return _session.create_client(service, endpoint_url=endpoint_url, config=config)
