"""Delivery state in Redis: each notification's record and claim (``records``), the deferred
queue (``deferred``), traces and counters (``traces``), counts by minute and hour for the
dashboard (``series``), the weather warnings cancelled (``cancellations``), written in batches
(``writes``).

``DeliveryState`` is the one object the pipelines hold; each part owns its keys.
"""

from __future__ import annotations

from app.state.cancellations import Cancellations
from app.state.deferred import DeferredQueue
from app.state.records import FINAL, Records, Status
from app.state.series import Series
from app.state.traces import Traces
from app.state.writes import TRACE_TTL_SECONDS, Writes

__all__ = ["FINAL", "TRACE_TTL_SECONDS", "DeliveryState", "Status", "Writes"]


class DeliveryState(Records, DeferredQueue, Traces, Series, Cancellations):
    """All of the delivery state, over one Redis connection pool."""
