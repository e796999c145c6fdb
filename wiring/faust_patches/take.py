"""Patch: a batching agent with nothing to do sleeps until an event comes, not every few ms.

Faust's ``Stream.take_events(max_, within)`` waits for a full buffer *or* ``within`` seconds,
in a loop, whether or not anything has arrived: with ``LIFECYCLE_BATCH_WAIT_MS=5`` each
batching agent (the planner, each lane's deliverers) woke 200 times a second to find its buffer
empty, and each wake-up costs a ``wait_first`` with its tasks. Measured: an idle worker used
13–20 % of a core; in a warning's fan-out the idle lanes' loops took 3–4 % of the worker's
samples (py-spy). Here the loop waits, without a timeout, for the first event of a batch, then
``within`` seconds (or a full buffer) for the rest, as before. A batch is now "as many as
arrived within ``within`` of its first event".

It also takes ``ack=False``: the batch's events are then not acked when the agent asks for the
next batch; the agent acks them itself (``Stream.ack``) once it has handled them. An agent that
works on one batch while it takes the next (``agents.common.planned_ahead``) needs that: Faust
commits an offset only when every event before it is acked, so a crash before the ack brings the
batch back. The rest is Faust 0.15's ``take_events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

from faust import streams as faust_streams
from faust.types import EventT
from mode import want_seconds
from mode.utils.aiter import aiter
from mode.utils.futures import notify

ORIGINAL = faust_streams.Stream.take_events  # as Faust ships it, kept before patching
# SHA-256 of ``inspect.getsource(ORIGINAL)`` in faust-streaming 0.15.3, the version this copies
ORIGINAL_SHA256 = "607d48aead118ba8ea868718a0df87de1c5fcecd10ec542c659b448796728e08"


def sleep_when_idle() -> None:
    if getattr(faust_streams.Stream.take_events, "idle_sleeps", False):
        return

    async def take_events(  # pragma: no cover - Faust's loop, exercised by every batching agent
        self: Any, max_: int, within: Any, ack: bool = True
    ) -> AsyncGenerator[Sequence[EventT], None]:
        buffer: list[Any] = []
        events: list[EventT] = []
        buffer_add = buffer.append
        event_add = events.append
        buffer_size = buffer.__len__
        buffer_full = asyncio.Event()
        buffer_filled = asyncio.Event()  # the patch: set by a batch's first event
        buffer_consumed = asyncio.Event()
        timeout = want_seconds(within) if within else None
        stream_enable_acks: bool = self.enable_acks

        buffer_consuming: asyncio.Future[Any] | None = None

        channel_it = aiter(self.channel)

        async def add_to_buffer(value: Any) -> Any:
            try:
                nonlocal buffer_consuming
                if buffer_consuming is not None:
                    try:
                        await buffer_consuming
                    finally:
                        buffer_consuming = None
                buffer_add(value)
                buffer_filled.set()
                event = self.current_event
                if event is None:
                    raise RuntimeError("Take buffer found current_event is None")
                event_add(event)
                if buffer_size() >= max_:
                    buffer_full.set()
                    buffer_consumed.clear()
                    await self.wait(buffer_consumed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.log.exception("Error adding to take buffer: %r", exc)
                await self.crash(exc)
            return value

        self.enable_acks = False
        self.add_processor(add_to_buffer)
        self._enable_passive(cast(Any, channel_it))
        try:
            while not self.should_stop:
                if not buffer:  # the patch: nothing yet, so no deadline to keep
                    await self.wait_for_stopped(buffer_filled)
                await self.wait_for_stopped(buffer_full, timeout=timeout)
                if buffer:
                    buffer_consuming = self.loop.create_future()
                    try:
                        yield list(events)
                    finally:
                        buffer.clear()
                        if ack:  # the patch: else the agent acks them when it is done
                            for event in events:
                                await self.ack(event)
                        events.clear()
                        buffer_filled.clear()  # before adding is allowed again
                        notify(buffer_consuming)
                        buffer_full.clear()
                        buffer_consumed.set()
        finally:
            self.enable_acks = stream_enable_acks
            self._processors.remove(add_to_buffer)

    patched = faust_streams._tracks_buffer_agen(take_events)
    patched.idle_sleeps = True  # type: ignore[attr-defined]
    faust_streams.Stream.take_events = patched  # type: ignore[method-assign]
