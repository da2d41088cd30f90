"""The Lambda side of the stand-in: handlers run the way the Lambda runtime runs them.

Handlers are blocking (boto3, DynamoDB), so they always run in a thread pool, never on the
event loop; each ``$default`` frame is its own invocation, run concurrently, exactly like
Lambda would. Unlike Lambda, all invocations share one Python process, so application module
state must be thread-safe, and Chalice's per-app request state is made per thread
(:func:`per_thread_request_state`).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from chalice.app import Chalice

from infra.local.gateway.events import ACCOUNT_ID, region

_T = TypeVar("_T")


class LocalLambdaContext:
    """Just enough of the Lambda ``context`` object for Chalice and Powertools.

    Powertools' ``Logger.inject_lambda_context`` reads ``function_name``,
    ``memory_limit_in_mb``, ``invoked_function_arn`` and ``aws_request_id``;
    handlers may call :meth:`get_remaining_time_in_millis` to budget work.
    """

    def __init__(self, function_name: str, *, timeout_s: float = 30.0,
                 memory_limit_in_mb: int = 256) -> None:
        now = time.time()
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region()}:{ACCOUNT_ID}:function:{function_name}"
        )
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = (
            time.strftime("%Y/%m/%d", time.gmtime(now)) + "/[$LATEST]" + uuid.uuid4().hex
        )
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline = now + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


class LockedCounter(collections.Counter[str]):
    """A Counter whose increments and copies share one lock.

    Handler threads and the loop update it while tests read it; ``copy()``
    iterating during an insert would otherwise raise.
    """

    def __init__(self, lock: threading.Lock) -> None:
        super().__init__()
        self.lock = lock

    def copy(self) -> collections.Counter[str]:  # type: ignore[override]
        with self.lock:
            return collections.Counter(self)


class _PerThread:
    """A data descriptor keeping one value per thread (see ``per_thread_request_state``)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return self if obj is None else getattr(self._local, "value", None)

    def __set__(self, obj: object, value: Any) -> None:
        self._local.value = value


def per_thread_request_state(app: Chalice) -> None:
    """Give ``app`` a per-thread ``current_request`` and ``lambda_context``.

    Chalice stores the request being handled on the app object itself: on Lambda a container
    runs one request at a time, but the stand-in runs REST calls concurrently in threads, where
    one call would read another's request. A subclass made for this one app (so no other
    Chalice app changes) turns both attributes into per-thread values; the app's code is
    unchanged and still reads ``app.current_request``.
    """
    cls = type(app)
    if isinstance(cls.__dict__.get("current_request"), _PerThread):
        return
    app.__class__ = type(f"PerThread{cls.__name__}", (cls,), {
        "current_request": _PerThread(), "lambda_context": _PerThread()})
    for name in ("current_request", "lambda_context"):
        app.__dict__.pop(name, None)


class NoRoute(Exception):
    """The app has no handler for a route key API Gateway would have to reject."""


class Runtime:
    """What every part of the gateway shares: the app and its stage, the loop (in its own
    thread) and the handler pool once started, the counters, and the tasks to settle on stop.

    ``counters`` may be swapped for a plain Counter (e.g. to reset it): :meth:`count` takes
    the lock either way.
    """

    def __init__(self, app: Chalice, *, stage: str, lambda_timeout: float) -> None:
        self.app = app
        self.stage = stage
        self.lambda_timeout = lambda_timeout
        self.counter_lock = threading.Lock()
        self.counters: collections.Counter[str] = LockedCounter(self.counter_lock)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: Disconnects and server-side closes: awaited on stop().
        self.background: set[asyncio.Task[Any]] = set()
        #: Timers (schedules, idle sweeper): cancelled on stop().
        self.service_tasks: set[asyncio.Task[Any]] = set()

    def count(self, key: str, n: int = 1) -> None:
        with self.counter_lock:
            self.counters[key] += n

    def spawn(self, coro: Coroutine[Any, Any, Any],
              owner: set[asyncio.Task[Any]] | None = None) -> asyncio.Task[Any]:
        """Create a task and keep a strong reference until it finishes."""
        assert self.loop is not None
        task = self.loop.create_task(coro)
        bucket = self.background if owner is None else owner
        bucket.add(task)
        task.add_done_callback(bucket.discard)
        return task

    async def in_pool(self, call: Callable[[], _T]) -> _T:
        """Run a blocking call in the handler pool, off the loop."""
        assert self.loop is not None and self.executor is not None
        return await self.loop.run_in_executor(self.executor, call)

    async def invoke(self, route_key: str, event: dict[str, Any]) -> Any:
        """Run the route's Lambda entry point in the thread pool."""
        return await self.in_pool(functools.partial(self._invoke_sync, route_key, event))

    def _invoke_sync(self, route_key: str, event: dict[str, Any]) -> Any:
        """Find and call the handler the Lambda runtime would call (worker thread).

        ``app.websocket_handlers[route_key]`` is only the *config* Chalice uses
        for deployment; the callable the runtime invokes (``app.<function>``,
        a ``WebsocketEventSourceHandler`` with middleware) is registered in
        ``app.handler_map`` under the config's name.
        """
        config = self.app.websocket_handlers.get(route_key)
        if config is None:
            if route_key == "$default":
                raise NoRoute(route_key)
            return None  # API Gateway accepts/ignores when these routes are absent
        handler = self.app.handler_map[config.name]
        self.count(f"invoke:{route_key}")
        try:
            return handler(event, self.context(config.name))
        except Exception:
            self.count(f"invoke_error:{route_key}")
            raise

    def function_name(self, handler_name: str) -> str:
        # Chalice names deployed functions "<app>-<stage>-<handler>".
        return f"{self.app.app_name}-{self.stage}-{handler_name}"

    def context(self, handler_name: str) -> LocalLambdaContext:
        return LocalLambdaContext(self.function_name(handler_name), timeout_s=self.lambda_timeout)
