"""E-mail to the operators when safety warnings are stuck: the warnings lane
(``notifications-warning``) has stayed behind for ``warning_stuck_seconds``. A district without
Prometheus is still told; one with it also gets ``LifecycleWarningsLagging``.

Every worker watches (``agents/watch_warnings.py``); Redis keeps one clock and one "told" mark for
all of them, so operators get one e-mail per outage (again after ``RETELL_SECONDS`` if it lasts),
not one per worker per minute. The clock starts when a worker first sees the lane behind and stops
when it is caught up.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis

from app.access.accounts import AccountStore
from app.core.errors import DeliveryError
from app.core.masking import mask_address
from app.core.settings import Settings
from app.delivery.gateways.email import SmtpGateway
from app.notifications import Content, Notification

logger = logging.getLogger(__name__)

WARNING_LANE = "notifications-warning"
RETELL_SECONDS = 1800


class StuckWarnings:
    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.prefix = settings.control_prefix
        self.after = settings.warning_stuck_seconds
        self.accounts = AccountStore(redis, settings.control_prefix)
        self.console_url = f"http://{settings.console_bind}:{settings.console_port}"
        self.gateway = SmtpGateway(settings.smtp, mail_from=settings.mail_from)

    async def check(self, lag: dict[tuple[str, int], int], now: float | None = None) -> int:
        """Given the group's lag, tell the operators if the warnings lane has been behind too
        long; how many e-mails went out."""
        now = time.time() if now is None else now
        behind = sum(v for (topic, _), v in lag.items() if topic == WARNING_LANE)
        since_key, told_key = (
            f"{self.prefix}watch:warnings-behind-since",
            f"{self.prefix}watch:warnings-told",
        )
        if behind == 0:
            await self.redis.delete(since_key, told_key)
            return 0
        await self.redis.set(since_key, f"{now:.3f}", nx=True, ex=7 * 86400)
        since = float(await self.redis.get(since_key) or now)
        if now - since < self.after:
            return 0
        if not await self.redis.set(told_key, f"{now:.3f}", nx=True, ex=RETELL_SECONDS):
            return 0  # told already (by this worker or another)
        return await self._tell(behind, now - since)

    async def _tell(self, behind: int, seconds: float) -> int:
        operators = [a for a in [await self.accounts.get(login) for login in await self.accounts.logins()]
                     if a is not None and a.has("operator") and a.email]  # fmt: skip
        subject = f"[紧急] 安全预警发送积压 {behind} 条，已超过 {seconds / 60:.0f} 分钟"
        text = (f"安全预警通道（{WARNING_LANE}）已有 {seconds / 60:.0f} 分钟未能处理完，积压 {behind} 条。\n"
                f"请检查工作进程与短信、邮件网关：{self.console_url}/ ，以及各工作进程的 /health/。\n")  # fmt: skip
        html = (
            "<p>" + text.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>") + "</p>"
        )
        sent = 0
        for account in operators:
            assert account.email is not None
            message = Notification(
                id=f"stuck-{int(time.time())}-{account.login}"[:120], rule_id="-", rule_version=0,
                category="notice", event_id="-", event_type="-", channel="email",
                profile_id=f"account:{account.login}", recipient=f"account:{account.login}",
                recipient_name=account.login, role="operator", address=account.email, language="zh-CN",
                planned_at=datetime.now(UTC).isoformat(), content=Content(subject=subject, text=text, html=html),
            )  # fmt: skip
            try:
                await self.gateway.send(message)
                sent += 1
            except (DeliveryError, OSError) as exc:
                logger.error("could not tell operator %s of stuck warnings: %s",
                             mask_address("email", account.email), exc)  # fmt: skip
        logger.error(
            "warnings lane %d behind for %.0f s; told %d operator(s)", behind, seconds, sent
        )
        return sent
