"""Observability for every handler, in one place: structured logs, EMF metrics, and what is
(and is not) traced.

**Logs.** One Powertools ``Logger`` (JSON lines, service ``clicktochat``). Each invocation
starts with no keys; :func:`middleware` adds the function, request id, cold start and the
WebSocket connection, and domain code adds the rest with :func:`tag`, which only takes the
correlation keys below: ids, never message text, email addresses, passwords or tokens.
Powertools adds ``xray_trace_id`` by itself when Lambda traces the invocation, so a log line
leads to its trace.

**Metrics.** Embedded Metric Format: each invocation ends with one JSON line per dimension
set on stdout, and CloudWatch Logs turns them into metrics in the namespace
``Settings.metrics_namespace``. No PutMetricData, so no AWS request is added to any path.

Why not Powertools' ``Metrics`` with its ``log_metrics`` decorator: ``Metrics`` instances
share one class-level metric set, and ``log_metrics`` flushes whatever is in it at the end of
an invocation. On Lambda one process runs one invocation at a time, so that works; but the
local stand-in (``infra/local/gateway.py``) runs invocations concurrently in threads of one
process, where one invocation would flush, clear or mis-dimension another's metrics. So each
invocation gets its own :class:`Recorder`, held in a ``ContextVar`` (per thread, reset when
the invocation ends), and at the end each dimension set is serialized by Powertools'
non-singleton ``EphemeralMetrics`` (so the EMF is Powertools' own, validated) and written as
one line in one ``write`` (``print`` writes the text and the newline separately, and
concurrent threads could interleave them). Calls outside an invocation (tests calling
``chalicelib`` directly, the admin CLI) record nothing. Fan-out posts run in a thread pool,
so ``fanout.deliver`` counts their outcomes back in the handler's thread.

The cold-start metric is Powertools' (``ColdStart``, dimensions ``function_name`` and
``service``, not emitted under provisioned concurrency), taken once per function name: on
Lambda a process hosts one function; locally one process hosts them all.

**Traces.** Deployed functions run with Lambda active tracing (``"xray": true`` in
``.chalice/config.json``): X-Ray records every invocation (initialization, invocation,
errors) at no cost to the package or the cold start. The X-Ray SDK, which Powertools'
``Tracer`` needs for per-call subsegments, is not used: creating its recorder builds two
botocore X-Ray clients at import, measured at +140 to +210 ms per cold start here (more on a
512 MB Lambda), on top of a ~210 ms budget of 250 ms; even a disabled ``Tracer`` imports it.

Metrics (all ``Count``; dimension ``service`` on each, plus):

==================  ==============  =========================================================
name                dimensions      when
==================  ==============  =========================================================
MessagesSent        side            a visitor's or agent's message stored (resends excluded)
Connects            role            a WebSocket connection accepted
ConnectsRefused     --              ``$connect`` refused (bad token, origin, site)
Disconnects         role            ``$disconnect`` of a known connection
FanoutFailures      reason          a post found the connection gone (410) or failed
FramesTrimmed       --              a frame over the 32 KB budget was cut down before posting
QueueLength         site            waiting conversations after routing (max 100 counted)
MailSent            --              an email handed to SES
MailFailures        --              SES refused, was unreachable or timed out
FrameErrors         --              a frame failed unexpectedly (the client is told to resend)
RoutingFailures     --              a waiting chat could not be written as assigned (skipped)
ColdStart           function_name   first invocation of a function in a process
==================  ==============  =========================================================
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.metrics.provider import cold_start

from chalicelib import config

logger = Logger(service=config.SERVICE)

# Every metric the app emits (the table above); infra/template.yaml's dashboard shows each.
METRICS = ("MessagesSent", "Connects", "ConnectsRefused", "Disconnects", "FanoutFailures",
           "FramesTrimmed", "QueueLength", "MailSent", "MailFailures", "FrameErrors",
           "RoutingFailures", "ColdStart")

Sink = Callable[[str], None]
Dimensions = tuple[tuple[str, str], ...]


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")  # one write: a whole line even with concurrent threads
    sys.stdout.flush()


_sinks: list[Sink] = [_stdout]
_sinks_lock = threading.Lock()
_warm: set[str] = set()  # function names past their first invocation in this process
_warm_lock = threading.Lock()


class Recorder:
    """The metrics of one invocation: counts summed, gauges kept as samples."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.counts: dict[tuple[str, Dimensions], float] = {}
        self.gauges: dict[tuple[str, Dimensions], list[float]] = {}
        self.metadata: dict[str, str] = {}

    def count(self, name: str, value: float, dims: Dimensions) -> None:
        self.counts[(name, dims)] = self.counts.get((name, dims), 0) + value

    def gauge(self, name: str, value: float, dims: Dimensions) -> None:
        self.gauges.setdefault((name, dims), []).append(value)

    def lines(self) -> list[str]:
        """One EMF line per dimension set (EMF gives one blob a single set of dimensions).
        The invocation's correlation keys ride along as plain properties: searchable in
        Logs Insights, not dimensions (no extra metrics, no cost)."""
        groups: dict[Dimensions, list[tuple[str, float]]] = {}
        for (name, dims), total in self.counts.items():
            groups.setdefault(dims, []).append((name, total))
        for (name, dims), samples in self.gauges.items():
            groups.setdefault(dims, []).extend((name, v) for v in samples)
        out = []
        for dims, values in groups.items():
            metrics = EphemeralMetrics(namespace=config.settings().metrics_namespace, service=config.SERVICE)
            for key, label in dims:
                metrics.add_dimension(key, label)
            for name, value in values:
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
            metrics.add_metadata("function_name", self.function_name)
            for key, label in self.metadata.items():
                metrics.add_metadata(key, label)
            out.append(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")))
        return out


_current: ContextVar[Recorder | None] = ContextVar("telemetry_recorder", default=None)


def _dims(dimensions: dict[str, str]) -> Dimensions:
    return tuple(sorted((k, str(v)) for k, v in dimensions.items()))


def count(name: str, value: float = 1, **dimensions: str) -> None:
    """Add ``value`` to a counter of this invocation (nothing outside an invocation)."""
    recorder = _current.get()
    if recorder is not None and value:
        recorder.count(name, value, _dims(dimensions))


def gauge(name: str, value: float, **dimensions: str) -> None:
    """Record a level (e.g. a queue length) as observed now in this invocation."""
    recorder = _current.get()
    if recorder is not None:
        recorder.gauge(name, value, _dims(dimensions))


def tag(*, conversation: str | None = None, site: str | None = None, agent: str | None = None,
        connection: str | None = None, role: str | None = None, action: str | None = None) -> None:
    """Correlation keys for this invocation's log lines (and its metric lines). Only these
    keys exist, so nothing else (text, emails, tokens) can be attached by accident."""
    keys = {k: v for k, v in (("conversation", conversation), ("site", site), ("agent", agent),
                              ("connection", connection), ("role", role), ("action", action))
            if isinstance(v, str) and v}
    if not keys:
        return
    logger.thread_safe_append_keys(**keys)
    recorder = _current.get()
    if recorder is not None:
        recorder.metadata.update(keys)


def add_sink(sink: Sink) -> Callable[[], None]:
    """Also hand every EMF line to ``sink`` (the local stand-in prints a readable form;
    tests read them). Returns a function that removes it."""
    with _sinks_lock:
        _sinks.append(sink)

    def remove() -> None:
        with _sinks_lock:
            if sink in _sinks:
                _sinks.remove(sink)
    return remove


def _emit(lines: list[str]) -> None:
    with _sinks_lock:
        sinks = list(_sinks)
    for line in lines:
        for sink in sinks:
            try:
                sink(line)
            except Exception:  # a broken sink must never fail the invocation
                logger.exception("metric sink failed")


def _cold(function_name: str) -> bool:
    if cold_start.initialization_type == "provisioned-concurrency":
        return False
    with _warm_lock:
        if function_name in _warm:
            return False
        _warm.add(function_name)
        return True


@contextmanager
def invocation(function_name: str, request_id: str | None = None,
               connection: str | None = None) -> Iterator[Recorder]:
    """Scope one handler invocation: fresh log keys, a fresh recorder, flushed at the end
    (also when the handler raises)."""
    cold = _cold(function_name)
    recorder = Recorder(function_name)
    token = _current.set(recorder)
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(function_name=function_name, cold_start=cold,
                                   **({"function_request_id": request_id} if request_id else {}))
    tag(connection=connection)
    try:
        yield recorder
    finally:
        _current.reset(token)
        lines = recorder.lines()
        if cold:
            metrics = EphemeralMetrics(namespace=config.settings().metrics_namespace, service=config.SERVICE)
            metrics.add_dimension("function_name", function_name)
            metrics.add_metric(name="ColdStart", unit=MetricUnit.Count, value=1)
            lines.append(json.dumps(metrics.serialize_metric_set(), separators=(",", ":")))
        _emit(lines)


def middleware(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Chalice middleware for every event type (``app.register_middleware(..., "all")``):
    WebSocket, REST, SQS and scheduled handlers alike, including ones added later."""
    context = getattr(event, "lambda_context", None) or getattr(event, "context", None)
    function_name = str(getattr(context, "function_name", "") or config.SERVICE)
    request_id = getattr(context, "aws_request_id", None)
    with invocation(function_name, request_id, getattr(event, "connection_id", None)):
        return get_response(event)
