"""A timer, every 30 seconds: is the safety-warnings lane stuck? (``wiring.watch``: operators are
e-mailed once the lane has stayed behind for LIFECYCLE_WARNING_STUCK_SECONDS.) The lag comes from
the same check as /health/ and /metrics."""

from __future__ import annotations

import logging

from wiring.faust_app import app, runtime
from wiring.health import probe_for
from wiring.watch import StuckWarnings

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 30.0
_watch: StuckWarnings | None = None


@app.timer(interval=INTERVAL_SECONDS)
async def watch_warnings() -> None:
    global _watch
    rt = runtime()
    if rt.deliverer is None:
        return
    if _watch is None:
        _watch = StuckWarnings(rt.settings, rt.redis)
    try:
        health = await probe_for(rt.settings).check(rt)
        if health.kafka == "ok":
            await _watch.check(health.lag)
    except Exception:  # never let the watch stop the timer
        logger.exception("watching the warnings lane failed")
