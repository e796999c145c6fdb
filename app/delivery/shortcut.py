"""Whether an event's notifications may be delivered where they are planned, skipping their lane.

Delivering in the planning agent saves a hop (one production, one consumption, one JSON round
trip a notification, and a batch's wait) but makes planning wait for the send. The lanes exist so
that nothing waits behind a slow send: a warning planned behind a batch of e-mails stuck on a slow
mail server would wait too. So the shortcut is taken only while a channel's sends are quick: the
deliverer tells ``took`` how long each batch's sends of a channel took (the gateway's time, on
the lane or here), and one slower than ``slow_seconds`` closes the channel's shortcut for
``rest_seconds``, during which its notifications go by their lane (where a slow send holds up
only the lane); each slow batch on the lane meanwhile extends the rest. Pacing is the caller's:
a notification goes here only with its token in hand (``RateLimiter.take_now``), so planning
never waits for one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

SLOW_SECONDS = 1.0  # a batch delivered here that took longer: its channels go by their lanes
REST_SECONDS = 30.0  # for this long, then the shortcut is tried again
MAX_HERE = 1000  # notifications of a batch of events delivered here, at most; the rest by lane


class Shortcut:
    def __init__(self, *, slow_seconds: float = SLOW_SECONDS, rest_seconds: float = REST_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.slow_seconds = slow_seconds
        self.rest_seconds = rest_seconds
        self.clock = clock
        self._closed_until: dict[str, float] = {}

    def open(self, channel: str) -> bool:
        until = self._closed_until.get(channel)
        if until is None:
            return True
        if self.clock() >= until:
            del self._closed_until[channel]
            logger.info("delivering %s where it is planned again", channel)
            return True
        return False

    def took(self, channel: str, seconds: float) -> None:
        """A batch's sends of ``channel`` took ``seconds``: close its shortcut if that is slow."""
        if seconds <= self.slow_seconds:
            return
        if channel not in self._closed_until:
            logger.warning("a batch's %s sends took %.1f s; %s goes by its lane for %.0f s "
                           "(and while it stays slow)", channel, seconds, channel,
                           self.rest_seconds)  # fmt: skip
        self._closed_until[channel] = self.clock() + self.rest_seconds
