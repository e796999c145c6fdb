"""The Faust application object, configured from Settings when a worker starts.

Topics and agents are declared against ``app`` at import time; ``configure`` applies the
broker, partitions and web port before the worker starts, and ``runtime()`` gives agents the
services (Redis, rules, gateways) built for this process.
"""

from __future__ import annotations

import asyncio
import warnings
from time import monotonic
from typing import Any

import faust
from faust.exceptions import AlreadyConfiguredWarning
from faust.sensors import Monitor

from app.runtime import Runtime
from app.settings import Settings

APP_ID = "lifecycle-notify"

app = faust.App(APP_ID, autodiscover=False, store="memory://")

_runtime: Runtime | None = None


def faust_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker": settings.kafka_url,
        "store": "memory://",
        "topic_partitions": settings.partitions,
        "topic_replication_factor": 1,
        "web_port": settings.web_port,
        "web_bind": settings.web_bind,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        # A lost worker is noticed within 10 s; a join waits at most 6 s for stragglers.
        "broker_session_timeout": 10.0,
        "broker_rebalance_timeout": 6.0,
        "broker_heartbeat_interval": 1.0,
        "Monitor": LeanMonitor,
    }


def limit_fetch_wait(max_wait_ms: int) -> None:
    """Faust creates its consumers with ``fetch_max_wait_ms=1500`` and offers no setting for it.
    A broker that holds a fetch for the whole wait when little data arrives (the embedded broker
    does: measured 422 ms median per hop at 1500, 3 ms at 100) then adds that to every hop. The
    consumer only passes the value on when it starts, so it is set right after creation."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, "limited", False):
        return

    def create_limited(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms
        return consumer

    create_limited.limited = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._create_worker_consumer = create_limited  # type: ignore[method-assign]


def configure(settings: Settings, runtime: Runtime) -> faust.App:
    """Apply ``settings`` to the app and install the runtime the agents use."""
    global _runtime
    limit_fetch_wait(settings.fetch_max_wait_ms)
    drain_in_batches()
    with warnings.catch_warnings():
        # Topics and agents are declared before configuration on purpose; none of them has
        # captured a setting yet (partitions are resolved when the topics are declared).
        warnings.simplefilter("ignore", AlreadyConfiguredWarning)
        app.config_from_object(faust_config(settings), force=True)
    _runtime = runtime
    return app


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("lifecycle.faust_app.configure() has not been called")
    return _runtime


def drain_in_batches() -> None:
    """Faust hands each fetched message to the streams inside ``wait_first(callback(message),
    suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per message, so that a callback
    blocked on a full stream buffer is abandoned when a rebalance suspends the flow. This does
    the same per fetched batch: one ``wait_first`` around a task that hands over the whole batch.
    A rebalance (or stop) cancels that task, so the rest of the batch is not handed over; it is
    neither acked nor committed and is fetched again from the committed offsets, as Faust does
    for the messages it drops. The rest of the loop is Faust 0.15's ``_drain_messages``."""
    from faust.transport import consumer as faust_consumer

    if getattr(faust_consumer.Consumer._drain_messages, "batched", False):
        return

    async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust loop
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        acks_enabled_for = self.app.topics.acks_enabled_for
        sleep = asyncio.sleep
        yield_every = 100

        async def hand_over(records: Any) -> None:
            since_yield = 0
            commit_every = self._commit_every
            async for tp, message in records:
                since_yield += 1
                if since_yield > yield_every:
                    await sleep(0)
                    since_yield = 0
                offset = message.offset
                r_offset = get_read_offset(tp)
                if r_offset is None or offset >= r_offset:
                    gap = offset - (r_offset or 0)
                    if gap > 1 and r_offset and acks_enabled_for(message.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    await callback(message)
                    set_read_offset(tp, offset)

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(faust_consumer.CONSUMER_FETCHING)
                records = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    await self.wait_first(hand_over(records), self.suspend_flow.wait())
                    unset_flag(faust_consumer.CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(faust_consumer.CONSUMER_FETCHING)

    _drain_messages.batched = True  # type: ignore[attr-defined]
    faust_consumer.Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]


class LeanMonitor(Monitor):
    """Faust's default sensor updates a dozen counters, dicts and a timing deque per message and
    per event, for its own ``/stats`` pages, which this project does not serve (operators read
    ``GET /stats/``, counted in Redis by the agents). This keeps only what Faust itself reads
    back: the time each partition last handed an event to a stream, which its stall detector
    ("stream has not processed an event in N seconds") compares against."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        pass

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        pass

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        pass
