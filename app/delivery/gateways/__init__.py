"""Channels that hand a rendered notification to the outside world.

Each gateway's ``send`` returns a provider reference on success and raises
TemporaryDeliveryError or PermanentDeliveryError otherwise. A gateway whose provider takes many
numbers a call (Tencent) also has ``send_batch``: each notification's reference or failure, in
order; the deliverer hands it a whole batch at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from app.core.errors import ConfigError
from app.delivery.gateways.aliyun import AliyunSmsGateway
from app.delivery.gateways.outbox import OutboxSmsGateway
from app.delivery.gateways.tencent import TencentSmsGateway
from app.notifications import Notification


class SmsGateway(Protocol):
    async def send(
        self, notification: Notification, on_commit: Callable[[], None] | None = None
    ) -> str: ...

    async def close(self) -> None: ...

    async def check(self) -> str | None:
        """None when the gateway would take a message now; else why not (no address in it)."""
        ...


def sms_gateway_from_url(url: str | None) -> SmsGateway:
    """``file:///abs/path.jsonl`` → the outbox gateway; ``aliyun://…`` → Aliyun SendSms;
    ``tencent://…`` → Tencent Cloud SendSms."""
    if not url:
        raise ConfigError("LIFECYCLE_SMS_URL is not set (e.g. file:///var/outbox/sms.jsonl)")
    if url.startswith("file://"):
        return OutboxSmsGateway.from_url(url)
    if url.startswith("aliyun://"):
        return AliyunSmsGateway.from_url(url)
    if url.startswith("tencent://"):
        return TencentSmsGateway.from_url(url)
    scheme = url.split(":", 1)[0]
    raise ConfigError(
        f"LIFECYCLE_SMS_URL: no SMS gateway for scheme {scheme!r} (known: file, aliyun, tencent)"
    )
