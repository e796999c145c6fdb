"""Patch: hand each fetched batch to the streams at once, not each message on its own.

Measured in bench/bare_faust.py: Faust's per-message ``wait_first`` is the largest cost of a
consumer that does little per message (README, Performance).
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport import consumer as faust_consumer

ORIGINAL = faust_consumer.Consumer._drain_messages  # as Faust ships it, kept before patching
# SHA-256 of ``inspect.getsource(ORIGINAL)`` in faust-streaming 0.15.3, the version this copies
ORIGINAL_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def drain_in_batches() -> None:
    """Faust hands each fetched message to the streams inside ``wait_first(callback(message),
    suspend_flow.wait())``: four tasks and an ``asyncio.wait`` per message, so that a callback
    blocked on a full stream buffer is abandoned when a rebalance suspends the flow. This does
    the same per fetched batch: one ``wait_first`` around a task that hands over the whole batch.
    A rebalance (or stop) cancels that task, so the rest of the batch is not handed over; it is
    neither acked nor committed and is fetched again from the committed offsets, as Faust does
    for the messages it drops. The rest of the loop is Faust 0.15's ``_drain_messages``."""
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
