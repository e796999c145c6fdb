"""Starting the Faust worker: configure the app, register agents and pages, create topics."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import uvloop

from app.core.settings import Settings
from wiring import gc_tuning
from wiring.faust_app import configure
from wiring.kafka import ensure_topics
from wiring.runtime import Runtime


def run_worker(settings: Settings) -> int:
    runtime = Runtime.build(settings)
    app = configure(settings, runtime)
    import agents  # noqa: F401 - registers the agents
    import lifecycle.web  # noqa: F401 - registers the operator pages
    from app.access.audit import AUDIT_TOPIC
    from topics import ALL

    ensure_topics(settings.kafka_servers, [t.get_topic_name() for t in ALL], settings.partitions)
    ensure_topics(settings.kafka_servers, [AUDIT_TOPIC], 1)  # one order for the whole log
    if settings.event_loop == "uvloop":
        # Before the worker creates its loops (its own and the Kafka consumer's thread).
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    gc_tuning.tune(settings.gc_threshold)
    worker = Worker(app, loglevel="INFO", gc_threshold=settings.gc_threshold)
    worker.execute_from_commandline()
    return 0


class Worker(faust.Worker):
    """Faust's worker; once it is ready, what start-up built is frozen out of the garbage
    collector's view (``wiring.gc_tuning``)."""

    def __init__(self, *args: Any, gc_threshold: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gc_threshold = gc_threshold

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        gc_tuning.freeze_startup(self.gc_threshold)
