"""``@app.schedule`` handlers, fired on demand (tests, the stand-in's CLI) or every
``interval`` seconds, with the event EventBridge would send."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from chalice.app import ScheduledEventConfig

from infra.local.gateway.events import scheduled_event
from infra.local.gateway.runtime import Runtime

logger = logging.getLogger("infra.local.gateway")


class Schedules:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def configs(self) -> list[ScheduledEventConfig]:
        return [s for s in self.runtime.app.event_sources if isinstance(s, ScheduledEventConfig)]

    def run_all(self) -> None:
        """Invoke every ``@app.schedule`` handler once, synchronously, in this thread.

        All handlers run even if one fails; the first failure is re-raised so
        tests notice it.
        """
        app = self.runtime.app
        errors: list[Exception] = []
        for config in self.configs():
            handler = app.handler_map[config.name]
            event = scheduled_event(f"{self.runtime.function_name(config.name)}-event")
            self.runtime.count("invoke:schedule")
            try:
                handler(event, self.runtime.context(config.name))
            except Exception as exc:
                self.runtime.count("invoke_error:schedule")
                logger.exception("schedule handler %s failed", config.name)
                errors.append(exc)
        if errors:
            raise errors[0]

    async def timer(self, interval: float) -> None:
        """Run them all every ``interval`` seconds, in the handler pool, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # already logged by run_all
                await self.runtime.in_pool(self.run_all)
