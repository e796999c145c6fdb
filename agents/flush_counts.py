"""A timer: the dashboard's counts this worker kept (``agents.common.add_counts``) go to Redis's
per-minute and per-hour series (``app.state.series``) in one round trip every FLUSH_SECONDS."""

from __future__ import annotations

from agents.common import flush_counts as flush
from wiring.faust_app import app

FLUSH_SECONDS = 2.0


@app.timer(interval=FLUSH_SECONDS)
async def flush_counts() -> None:
    await flush()
