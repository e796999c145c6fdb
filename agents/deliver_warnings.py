"""notifications-warning → deliveries: the warnings lane, delivered exactly as the other lane but
by agents of its own, so a backlog of reminders never holds a warning up."""

from __future__ import annotations

from collections.abc import AsyncIterator

from faust.types import StreamT

from agents.common import batches
from agents.deliver_notifications import CONCURRENCY, handle_notifications
from topics import notifications_warning
from wiring.faust_app import app, runtime


@app.agent(notifications_warning, concurrency=CONCURRENCY)
async def deliver_warnings(stream: StreamT) -> AsyncIterator[str]:
    async for batch in batches(stream):
        with runtime().urgency.running():  # a policy sweep waits meanwhile
            statuses = await handle_notifications(batch)
        for status in statuses:
            yield status
