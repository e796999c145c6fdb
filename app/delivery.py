"""Delivering one planned notification, once.

``Deliverer.deliver`` claims the notification in Redis, hands it to its channel's gateway,
records the result and returns a ``DeliveryOutcome`` for the ``deliveries`` topic. A notification
whose status is already final is not sent again (the same event published twice, a redelivery
after a crash or rebalance). A claim held by another worker is waited for until it is released or
its lease runs out — a worker that died mid-send leaves a claim that expires after
``CLAIM_LEASE_MS``, after which the notification may be sent again (the one window in which a
duplicate is possible: the provider accepted the message but the worker died before recording it).

Temporary failures are retried here a few times with exponential backoff and jitter; permanent
ones are not. A notification whose text could not be rendered fails at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from app.delivery_state import CLAIM_LEASE_MS, FINAL, DeliveryState
from app.errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError
from app.masking import mask_address
from app.notifications import Notification

logger = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0


class Gateway(Protocol):
    async def send(self, notification: Notification) -> str: ...


@dataclass(frozen=True)
class DeliveryOutcome:
    notification_id: str
    status: str  # sent | failed | duplicate
    channel: str
    rule_id: str
    event_id: str
    recipient: str  # masked
    attempts: int
    error: str | None = None
    retriable: bool = False
    provider_ref: str | None = None
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Deliverer:
    def __init__(
        self,
        state: DeliveryState,
        gateways: dict[str, Gateway],
        *,
        attempts: int = ATTEMPTS,
        backoff_base: float = BACKOFF_BASE_SECONDS,
    ) -> None:
        self.state = state
        self.gateways = gateways
        self.attempts = attempts
        self.backoff_base = backoff_base
        self.owner = f"{socket.gethostname()}:{os.getpid()}"

    async def deliver(self, n: Notification) -> DeliveryOutcome:
        if await self.state.status(n.id) in FINAL:
            return self._outcome(n, "duplicate", attempts=0)
        if not await self._claim(n):
            return self._outcome(n, "duplicate", attempts=0)
        try:
            if await self.state.status(n.id) in FINAL:  # finished while we waited for the claim
                return self._outcome(n, "duplicate", attempts=0)
            return await self._send(n)
        finally:
            await self.state.release(n.id)

    async def _claim(self, n: Notification) -> bool:
        """Take the claim, waiting while another worker holds it; False once it is final."""
        while not await self.state.claim(n.id, self.owner):
            if await self.state.status(n.id) in FINAL:
                return False
            ttl = await self.state.claim_ttl_ms(n.id)
            await asyncio.sleep(min(max(ttl, 50), CLAIM_LEASE_MS) / 1000 / 4)
        return True

    async def _send(self, n: Notification) -> DeliveryOutcome:
        if n.error:
            return await self._finish(n, "failed", attempts=0, error=n.error)
        gateway = self.gateways.get(n.channel)
        if gateway is None:
            return await self._finish(n, "failed", attempts=0, error=f"no gateway for {n.channel}")
        error: DeliveryError | None = None
        for attempt in range(1, self.attempts + 1):
            await self.state.set_status(n, "sending", attempts=attempt)
            try:
                ref = await gateway.send(n)
            except TemporaryDeliveryError as exc:
                error = exc
                await self.state.trace(
                    n.id, "attempt", attempt=attempt, outcome="temporary", error=str(exc)
                )
                if attempt < self.attempts:
                    await asyncio.sleep(self._backoff(attempt))
                continue
            except PermanentDeliveryError as exc:
                await self.state.trace(
                    n.id, "attempt", attempt=attempt, outcome="permanent", error=str(exc)
                )
                return await self._finish(n, "failed", attempts=attempt, error=str(exc))
            await self.state.trace(n.id, "attempt", attempt=attempt, outcome="sent", ref=ref)
            return await self._finish(n, "sent", attempts=attempt, provider_ref=ref)
        return await self._finish(
            n, "failed", attempts=self.attempts, error=str(error), retriable=True
        )

    def _backoff(self, attempt: int) -> float:
        ceiling = min(BACKOFF_MAX_SECONDS, self.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security

    async def _finish(self, n: Notification, status: str, *, attempts: int, error: str | None = None,
                      retriable: bool = False, provider_ref: str | None = None) -> DeliveryOutcome:  # fmt: skip
        fields: dict[str, Any] = {"attempts": attempts}
        if error:
            fields["error"] = error
        if provider_ref:
            fields["provider_ref"] = provider_ref
        await self.state.set_status(n, status, **fields)
        await self.state.trace(n.id, status, error=error) if error else await self.state.trace(
            n.id, status
        )
        if status == "sent":
            logger.info("sent %s via %s to %s", n.id, n.channel, mask_address(n.channel, n.address))
        else:
            logger.warning("failed %s via %s: %s", n.id, n.channel, error)
        return self._outcome(n, status, attempts=attempts, error=error, retriable=retriable,
                             provider_ref=provider_ref)  # fmt: skip

    def _outcome(self, n: Notification, status: str, **fields: Any) -> DeliveryOutcome:
        return DeliveryOutcome(notification_id=n.id, status=status, channel=n.channel, rule_id=n.rule_id,
                               event_id=n.event_id, recipient=mask_address(n.channel, n.address),
                               at=datetime.now(UTC).isoformat(timespec="milliseconds"), **fields)  # fmt: skip
