import pytest_asyncio

from app.delivery import Deliverer
from app.delivery_state import DeliveryState
from app.gateways.email import SmtpGateway
from app.gateways.outbox import OutboxSmsGateway
from app.notifications import Notification, notification_id
from app.settings import SmtpConfig
from lifecycle.stack import free_port
from tests.helpers import outbox_lines
from tests.test_email import FROM


def notification(
    channel: str, address: str, *, event_id: str = "E1", error: str | None = None
) -> Notification:
    content = ({"text": "【测试】您好", "segments": 1, "encoding": "UCS2", "units": 6} if channel == "sms"
               else {"subject": "主题", "text": "正文", "html": "<p>正文</p>"})  # fmt: skip
    nid = notification_id(
        rule_id="r", rule_version=1, event_id=event_id, recipient=address, channel=channel
    )
    return Notification(id=nid, rule_id="r", rule_version=1, category="reminder", event_id=event_id,
                        event_type="graduate.reception.approved", channel=channel, profile_id="P-1",
                        recipient=address, recipient_name="李明", role=None, address=address,
                        language="zh-CN", planned_at="2026-07-01T00:00:00+00:00", content=content,
                        error=error)  # fmt: skip


@pytest_asyncio.fixture
async def make_deliverer(redis_client, prefix, tmp_path):
    def make(smtp: SmtpConfig) -> Deliverer:
        gateways = {
            "email": SmtpGateway(smtp, mail_from=FROM),
            "sms": OutboxSmsGateway(tmp_path / "sms.jsonl"),
        }
        return Deliverer(DeliveryState(redis_client, prefix), gateways, backoff_base=0.01)

    return make


async def test_the_same_notification_twice_is_sent_once(make_deliverer, smtp_server, tmp_path):
    config, server = smtp_server()
    deliverer = make_deliverer(config)
    mail, sms = notification("email", "a@example.cn"), notification("sms", "+8613800138000")
    assert [(await deliverer.deliver(n)).status for n in (mail, sms, mail, sms)] == [
        "sent",
        "sent",
        "duplicate",
        "duplicate",
    ]
    assert len(server.accepted) == 1
    assert [line["id"] for line in outbox_lines(tmp_path / "sms.jsonl")] == [sms.id]
    assert (await deliverer.state.record(mail.id))["status"] == "sent"


async def test_temporary_smtp_failures_are_retried_until_accepted(make_deliverer, smtp_server):
    config, server = smtp_server("451 4.3.0 busy", "451 4.3.0 busy")
    deliverer = make_deliverer(config)
    outcome = await deliverer.deliver(notification("email", "a@example.cn"))
    assert (outcome.status, outcome.attempts) == ("sent", 3)
    assert len(server.accepted) == 1
    steps = [
        s["outcome"]
        for s in await deliverer.state.steps(outcome.notification_id)
        if s["step"] == "attempt"
    ]
    assert steps == ["temporary", "temporary", "sent"]


async def test_a_permanent_failure_is_not_retried_and_others_still_go(make_deliverer, smtp_server):
    config, server = smtp_server("550 5.1.1 no such user")
    deliverer = make_deliverer(config)
    failed = await deliverer.deliver(notification("email", "gone@example.cn"))
    assert (failed.status, failed.attempts, failed.retriable) == ("failed", 1, False)
    assert "550" in failed.error
    assert (await deliverer.deliver(notification("email", "b@example.cn"))).status == "sent"
    assert len(server.accepted) == 1
    assert await deliverer.state.counters("rules") == {"r:failed": 1, "r:sent": 1}


async def test_a_notification_that_could_not_be_rendered_fails_without_sending(
    make_deliverer, smtp_server, tmp_path
):
    config, _ = smtp_server()
    outcome = await make_deliverer(config).deliver(
        notification("sms", "+8613800138000", error="sms.txt: 'x' is undefined")
    )
    assert (outcome.status, outcome.error) == ("failed", "sms.txt: 'x' is undefined")
    assert outbox_lines(tmp_path / "sms.jsonl") == []


async def test_temporary_failures_that_never_clear_end_as_retriable_failures(make_deliverer):
    deliverer = make_deliverer(SmtpConfig("127.0.0.1", free_port()))  # nothing listens
    outcome = await deliverer.deliver(notification("email", "a@example.cn"))
    assert (outcome.status, outcome.attempts, outcome.retriable) == ("failed", 4, True)
