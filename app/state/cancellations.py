"""Weather warnings cancelled: what of a cancelled warning is not sent yet is not sent at all (a
chunk still planning, a backlog, a retry waiting). The deliverer reads the mark in the round trip
it makes before sending.

Keys (under the configured prefix):

    wcancel:{root}   the id of the event that cancelled the warning whose chain starts at
                     ``root`` (``app.planning.warned``); 30 days, as who was warned of it
"""

from __future__ import annotations

from typing import Any

from app.core.codec import text
from app.state.writes import Store

CANCEL_TTL_SECONDS = 30 * 24 * 3600


class Cancellations(Store):
    def cancel_key(self, root: str) -> str:
        return self.key("wcancel", root)

    async def cancel_warning(self, root: str, by_event: str) -> None:
        """Mark the warning ``root`` (and its updates) cancelled by the event ``by_event``; the
        first cancel is the one kept (a cancel published twice names itself again)."""
        await self.redis.set(self.cancel_key(root), by_event, ex=CANCEL_TTL_SECONDS, nx=True)

    async def cancelled_by(self, root: str) -> str | None:
        return text(await self.redis.get(self.cancel_key(root)))

    def queue_cancelled(self, pipe: Any, root: str) -> None:
        """Add to a pipeline (or ``Batched``): read the mark of ``root`` (its reply, through
        ``text``: the cancelling event's id, or None)."""
        pipe.get(self.cancel_key(root))
