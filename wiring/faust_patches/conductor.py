"""Patch: a message for a full stream buffer waits for room, not in a task of its own.

When an agent's stream buffer (``stream_buffer_maxsize``) is full, Faust's conductor hands the
message over in ``asyncio.wait([asyncio.ensure_future(channel.put(event))])``: a task and a
wait per message. A saturated worker's buffer is full most of the time (the consumer fetches
faster than the agents handle), so nearly every message paid for them: in a bare counting agent
(py-spy) ``ensure_future`` and ``wait`` took a tenth of the samples. Here the message waits for
room first, as ``asyncio.Queue.put`` waits (a future in the queue's putters), and is then handed
to Faust's own (Cython) handler, which finds room and puts it without the task. Faust's handler
is unchanged and still does everything else (flow control, decoding, pressure, decode errors).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

from faust.transport import conductor as faust_conductor

ORIGINAL = faust_conductor.Conductor._build_handler  # as Faust ships it, kept before patching
# SHA-256 of ``inspect.getsource(ORIGINAL)`` in faust-streaming 0.15.3, the version this wraps
ORIGINAL_SHA256 = "5c071d1277988c57e4bb62e25551981babd67d6544d85db9b14bdb0d8aa1b56d"


async def room_in(queue: asyncio.Queue[Any]) -> None:
    """Wait until ``queue`` is not full, as ``asyncio.Queue.put`` (Python 3.11) waits."""
    loop = asyncio.get_running_loop()
    putters = queue._putters  # type: ignore[attr-defined]  # asyncio's own
    while queue.full():
        putter = loop.create_future()
        putters.append(putter)
        try:
            await putter
        except BaseException:
            putter.cancel()
            with contextlib.suppress(ValueError):
                putters.remove(putter)
            if not queue.full() and not putter.cancelled():
                queue._wakeup_next(putters)  # type: ignore[attr-defined]  # as put does
            raise


class RoomFirst:
    """Faust's handler for one topic partition, entered only once its channels have room."""

    __slots__ = ("channels", "inner")

    def __init__(self, inner: Any, channels: Iterable[Any]) -> None:
        self.inner = inner
        self.channels = channels

    async def __call__(self, message: Any) -> Any:
        for channel in self.channels:
            queue = channel.queue
            if queue.full():
                await room_in(queue)
        return await self.inner(message)


def wait_for_room() -> None:
    if getattr(faust_conductor.Conductor._build_handler, "room_first", False):
        return

    def _build_handler(self: Any, tp: Any, channels: Any) -> Any:
        return RoomFirst(ORIGINAL(self, tp, channels), channels)

    _build_handler.room_first = True  # type: ignore[attr-defined]
    faust_conductor.Conductor._build_handler = _build_handler  # type: ignore[method-assign]
