"""``make dev``: the app's metrics in a form people read (never shipped).

On AWS, CloudWatch turns the app's EMF log lines (``chalicelib/telemetry.py``) into metrics.
Locally the same lines still go to stdout as JSON; this also prints each metric as one short
line on stderr, for example::

    metric MessagesSent=1 side=visitor  (clicktochat-local; site=s1a2b3 conversation=Xy...)

It reads the EMF document itself (any EMF line, whoever wrote it), so what you see is what
CloudWatch would record.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

CONTEXT_KEYS = ("site", "conversation", "agent", "connection")


def readable(line: str) -> list[str]:
    """One ``metric name=value dims`` line per metric in an EMF line; [] for anything else."""
    try:
        doc = json.loads(line)
        directives = doc["_aws"]["CloudWatchMetrics"]
    except (ValueError, KeyError, TypeError):
        return []
    out = []
    for directive in directives:
        dims = [d for group in directive.get("Dimensions", []) for d in group if d != "service"]
        context = [f"{k}={doc[k]}" for k in CONTEXT_KEYS if k in doc and k not in dims]
        for metric in directive.get("Metrics", []):
            name = metric["Name"]
            value = _value(doc.get(name))
            labels = " ".join(f"{d}={doc.get(d)}" for d in dims)
            where = "; ".join(filter(None, [directive.get("Namespace", ""), " ".join(context)]))
            out.append(f"metric {name}={value}" + (f" {labels}" if labels else "") + f"  ({where})")
    return out


def _value(raw: Any) -> str:
    values = raw if isinstance(raw, list) else [raw]
    return ",".join(f"{v:g}" if isinstance(v, (int, float)) else str(v) for v in values)


def printer(stream: TextIO | None = None) -> Callable[[str], None]:
    """A telemetry sink printing the readable lines (``telemetry.add_sink(printer())``)."""
    def sink(line: str) -> None:
        target = stream or sys.stderr
        for text in readable(line):
            target.write(text + "\n")
        target.flush()
    return sink
