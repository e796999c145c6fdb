import email
import email.policy

import pytest

from app.core.errors import PermanentDeliveryError, TemporaryDeliveryError
from app.core.settings import SmtpConfig
from app.delivery.gateways.email import SmtpGateway, build_message
from app.notifications import Notification
from devstack.stack import SmtpSink, free_port

FROM = "盐田区政务服务 <notify@yantian.gov.example>"


def mail(
    address="liming@example.cn", name="李明", subject="毕业生接收已获批：下一步办理户籍迁入"
) -> Notification:
    return Notification(id="n1", rule_id="r", rule_version=1, category="reminder", event_id="e1",
                        event_type="graduate.reception.approved", channel="email", profile_id="P-1",
                        recipient="P-1", recipient_name=name, role=None, address=address, language="zh-CN",
                        planned_at="2026-07-01T00:00:00+00:00",
                        content={"subject": subject, "text": "您好，正文", "html": "<p>您好，正文</p>"})  # fmt: skip


def test_message_headers_are_encoded_and_decode_back():
    raw = build_message(mail(), mail_from=FROM).as_bytes()
    assert raw.isascii()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "毕业生接收已获批：下一步办理户籍迁入"
    assert parsed["To"].addresses[0].display_name == "李明"
    assert parsed["From"].addresses[0].addr_spec == "notify@yantian.gov.example"
    assert parsed.get_body(("plain",)).get_content().strip() == "您好，正文"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>您好，正文</p>"


def test_a_display_name_with_specials_is_quoted():
    raw = build_message(mail(name='Wang, "Q" <x>'), mail_from=FROM).as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["To"].addresses[0].display_name == 'Wang, "Q" <x>'
    assert parsed["To"].addresses[0].addr_spec == "liming@example.cn"


@pytest.fixture
def replying_server(smtp_server):
    def start(*replies: str) -> tuple[SmtpGateway, object]:
        config, handler = smtp_server(*replies)
        return SmtpGateway(config, mail_from=FROM), handler

    return start


async def test_mail_is_received_over_smtp():
    sink = SmtpSink.start()
    try:
        await SmtpGateway(SmtpConfig("127.0.0.1", sink.port), mail_from=FROM).send(mail())
        [received] = sink.received()
        assert received["Subject"] == "毕业生接收已获批：下一步办理户籍迁入"
    finally:
        sink.stop()


async def test_4xx_reply_is_temporary(replying_server):
    gateway, _ = replying_server("451 4.3.0 try later")
    with pytest.raises(TemporaryDeliveryError, match="451"):
        await gateway.send(mail())


async def test_5xx_reply_is_permanent(replying_server):
    gateway, _ = replying_server("550 5.1.1 no such user")
    with pytest.raises(PermanentDeliveryError, match="550"):
        await gateway.send(mail())


async def test_refused_connection_is_temporary():
    gateway = SmtpGateway(SmtpConfig("127.0.0.1", free_port()), mail_from=FROM)
    with pytest.raises(TemporaryDeliveryError, match="connection"):
        await gateway.send(mail())


def test_a_long_chinese_subject_is_folded_into_short_encoded_words():
    subject = "【国家预警信息发布中心】广东省湛江市气象台发布暴雨红色预警信号，请市民立即停止户外活动并转移至安全地带"
    raw = build_message(mail(subject=subject, name="张三, 李四"), mail_from=FROM).as_bytes()
    header_lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in header_lines) <= 78
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == subject
    assert parsed["To"].addresses[0].display_name == "张三, 李四"


def test_list_unsubscribe_goes_out_as_a_plain_ascii_url_in_angle_brackets():
    from app.delivery.unsubscribe import UnsubscribeLinks

    links = UnsubscribeLinks("https://notify.yantian.gov.example", "s" * 40)
    raw = build_message(mail(), mail_from=FROM, unsubscribe=links).as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    [line] = [h for h in head if h.startswith(b"List-Unsubscribe:")]
    assert line.startswith(b"List-Unsubscribe: <https://notify.yantian.gov.example/unsubscribe/?t=")
    assert line.endswith(b">") and b"=?" not in line and len(line) <= 998
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in head
    assert b"Content-Language: zh-CN" in head
    # what a mail client reads back is the same URL
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["List-Unsubscribe"] == line.split(b": ", 1)[1].decode()
