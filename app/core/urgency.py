"""Urgent work first: a worker's background chores (a policy sweep over a city's enterprises)
give way while it plans or delivers a warning, and use at most a share of its time otherwise.

One event loop runs everything a worker does, so a chore that reads a million profiles in a
loop competes with a typhoon warning's chunks for the same core. ``Urgency.running()`` marks a
warning's work; a chore calls ``Urgency.pause(worked)`` between its batches, which waits until no
warning has been worked on for ``quiet`` seconds, then sleeps long enough to keep the chore to
``share`` of the loop's time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager


class Urgency:
    def __init__(self, *, quiet: float = 1.0, share: float = 0.5, poll: float = 0.1,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:  # fmt: skip
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], not {share}")
        self.quiet = quiet
        self.share = share
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.active = 0
        self.ended = float("-inf")  # when urgent work last ended
        self.waited = 0  # how many times a chore gave way (for tests and logs)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around a warning's planning or delivery."""
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self.ended = self.clock()

    def busy(self) -> bool:
        return self.active > 0 or self.clock() - self.ended < self.quiet

    async def pause(self, worked: float = 0.0) -> None:
        """Between two batches of a chore that just worked ``worked`` seconds: its share of the
        loop's time kept, then any urgent work waited out."""
        rest = worked * (1 / self.share - 1)
        if rest > 0:
            await self.sleep(rest)
        if self.busy():
            self.waited += 1
            while self.busy():
                await self.sleep(self.poll)
