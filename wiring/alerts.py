"""E-mail to the approvers the moment a send is held, so that a held warning never waits unseen.

Each approver whose districts cover the held send's areas, and whose account has an e-mail, gets
one message: the rule, the audience, the reason, and where to release or reject it. A failure is
logged and never undoes the hold: the held send stays listed in the console and `lifecycle held list`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis.asyncio as aioredis

from app.access.accounts import AccountStore
from app.core.errors import DeliveryError
from app.core.masking import mask_address
from app.core.settings import Settings
from app.delivery.gateways.email import SmtpGateway
from app.intake.events import districts_of
from app.notifications import Content, Notification
from app.planning.blast import BlastGuard, HeldSend

logger = logging.getLogger(__name__)


class HoldAlerts:
    def __init__(self, settings: Settings, redis: aioredis.Redis, guard: BlastGuard) -> None:
        self.accounts = AccountStore(redis, settings.control_prefix)
        self.guard = guard
        self.console_url = f"http://{settings.console_bind}:{settings.console_port}"
        self.gateway = SmtpGateway(
            settings.smtp, mail_from=settings.mail_from
        )  # no unsubscribe: staff mail

    async def held(self, hold_ids: list[str]) -> int:
        """Tell the approvers of each held send; how many messages went out."""
        held = [h for h in await self.guard.held() if h["id"] in hold_ids]
        approvers = [a for a in [await self.accounts.get(login) for login in await self.accounts.logins()]
                     if a is not None and a.has("approver") and a.email]  # fmt: skip
        sent = 0
        for hold in held:
            for account in (a for a in approvers if a.covers(districts_of(hold["event"]))):
                assert account.email is not None
                try:
                    await self.gateway.send(self._message(hold, account.login, account.email))
                    sent += 1
                except (DeliveryError, OSError) as exc:
                    logger.error("could not tell approver %s of held send %s: %s",
                                 mask_address("email", account.email), hold["id"], exc)  # fmt: skip
        return sent

    def _message(self, hold: HeldSend, login: str, address: str) -> Notification:
        event = hold["event"]
        subject = f"[待审批] 一次大范围发送已暂停：{hold['rule_id']}（{hold['audience']} 条）"
        text = (f"{login}：\n\n规则 {hold['rule_id']} 对事件 {event.get('id')}（{event.get('type')}）的发送"
                f"已被暂停，等待审批。\n预计 {hold['audience']} 条消息；原因：{hold['reason']}\n"
                f"地区：{', '.join(districts_of(event))}\n\n请在控制台放行或驳回：{self.console_url}/ "
                f"（编号 {hold['id']}）\n")  # fmt: skip
        html = (
            "<p>" + text.replace("&", "&amp;").replace("<", "&lt;").replace("\n", "<br>") + "</p>"
        )
        return Notification(id=f"held-{hold['id']}-{login}"[:120], rule_id=hold["rule_id"], rule_version=0,
                            category="notice", event_id=str(event.get("id")), event_type=str(event.get("type")),
                            channel="email", profile_id=f"account:{login}", recipient=f"account:{login}",
                            recipient_name=login, role="approver", address=address, language="zh-CN",
                            planned_at=datetime.now(UTC).isoformat(),
                            content=Content(subject=subject, text=text, html=html))  # fmt: skip
