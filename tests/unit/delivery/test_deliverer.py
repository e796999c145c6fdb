from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest_asyncio

from app.core.quiet_hours import parse_quiet_hours
from app.core.settings import SmtpConfig
from app.delivery.deliverer import Deliverer, DeliveryPolicy
from app.delivery.gateways.email import SmtpGateway
from app.delivery.gateways.outbox import OutboxSmsGateway
from app.delivery.preferences import Preferences
from app.notifications import Notification, notification_id
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from app.state import DeliveryState
from devstack.stack import free_port
from tests.helpers import ON_BOTH_REDIS, TEST_SECRET, outbox_lines, person
from tests.unit.delivery.test_email import FROM

SHANGHAI = ZoneInfo("Asia/Shanghai")
AFTERNOON = datetime(2026, 7, 1, 15, 0, tzinfo=SHANGHAI).timestamp()
LATE_EVENING = datetime(2026, 7, 1, 23, 30, tzinfo=SHANGHAI).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def notification(channel: str, address: str, *, event_id: str = "E1", category: str = "reminder",
                 error: str | None = None, profile_id: str = "P-1") -> Notification:  # fmt: skip
    content = ({"text": "【测试】您好", "segments": 1, "encoding": "UCS2", "units": 6} if channel == "sms"
               else {"subject": "主题", "text": "正文", "html": "<p>正文</p>"})  # fmt: skip
    nid = notification_id(
        rule_id="r", rule_version=1, event_id=event_id, recipient=address, channel=channel
    )
    return Notification(id=nid, rule_id="r", rule_version=1, category=category, event_id=event_id,
                        event_type="graduate.reception.approved", channel=channel, profile_id=profile_id,
                        recipient=profile_id, recipient_name="李明", role=None, address=address,
                        language="zh-CN", planned_at="2026-07-01T00:00:00+00:00", content=content,
                        error=error)  # fmt: skip


@pytest_asyncio.fixture
async def make_deliverer(redis_client, prefix, tmp_path):
    def make(smtp: SmtpConfig, *, now: float = AFTERNOON, **policy) -> Deliverer:
        gateways = {
            "email": SmtpGateway(smtp, mail_from=FROM),
            "sms": OutboxSmsGateway(tmp_path / "sms.jsonl"),
        }
        settings = {"tz": SHANGHAI, "quiet_hours": parse_quiet_hours("22:00-08:00"), "backoff_base": 10.0,
                    "backoff_max": 60.0, "attempts": 4} | policy  # fmt: skip
        return Deliverer(DeliveryState(redis_client, prefix), Preferences(redis_client, prefix, TEST_SECRET),
                         ProfileStore(redis_client, prefix), gateways, DeliveryPolicy(**settings),
                         clock=Clock(now))  # fmt: skip

    return make


def statuses(outcomes):
    return [o.status for o in outcomes]


@ON_BOTH_REDIS
async def test_the_same_notification_twice_is_sent_once(make_deliverer, smtp_server, tmp_path):
    config, server = smtp_server()
    deliverer = make_deliverer(config)
    mail, sms = notification("email", "a@example.cn"), notification("sms", "+8613800138000")
    assert statuses(await deliverer.deliver(mail)) == ["sending", "sent"]
    assert statuses(await deliverer.deliver(sms)) == ["sending", "sent"]
    assert statuses(await deliverer.deliver(mail)) == ["duplicate"]
    assert statuses(await deliverer.deliver(sms)) == ["duplicate"]
    assert len(server.accepted) == 1
    assert [line["id"] for line in outbox_lines(tmp_path / "sms.jsonl")] == [sms.id]
    assert (await deliverer.state.record(mail.id))["status"] == "sent"


@ON_BOTH_REDIS
async def test_temporary_smtp_failures_are_deferred_durably_then_delivered_once(
    make_deliverer, smtp_server
):
    config, server = smtp_server("451 4.3.0 busy", "451 4.3.0 busy")
    deliverer = make_deliverer(config)
    mail = notification("email", "a@example.cn")
    first = await deliverer.deliver(mail)
    assert statuses(first) == ["sending", "deferred"]
    assert "451" in first[-1].error and first[-1].next_attempt_at
    assert [
        n.id for n in map(Notification.from_json, await deliverer.state.due(AFTERNOON + 3600))
    ] == [mail.id]
    assert statuses(await deliverer.deliver(mail)) == [
        "duplicate"
    ]  # not due yet: the timer owns it
    deliverer.clock.now += 120
    assert statuses(await deliverer.deliver(mail)) == ["sending", "deferred"]
    deliverer.clock.now += 120
    last = await deliverer.deliver(mail)
    assert statuses(last) == ["sending", "sent"] and last[-1].attempt == 3
    assert len(server.accepted) == 1
    steps = [s["outcome"] for s in await deliverer.state.steps(mail.id) if s["step"] == "attempt"]
    assert steps == ["temporary", "temporary", "sent"]


@ON_BOTH_REDIS
async def test_a_permanent_failure_is_dead_lettered_at_once_and_others_still_go(
    make_deliverer, smtp_server
):
    config, server = smtp_server("550 5.1.1 no such user")
    deliverer = make_deliverer(config)
    failed = (await deliverer.deliver(notification("email", "gone@example.cn")))[-1]
    assert (failed.status, failed.attempt, failed.retriable, failed.dead_letter) == (
        "failed",
        1,
        False,
        True,
    )
    assert "550" in failed.error
    assert statuses(await deliverer.deliver(notification("email", "b@example.cn"))) == [
        "sending",
        "sent",
    ]
    assert len(server.accepted) == 1
    assert await deliverer.state.counters("rules") == {"r:failed": 1, "r:sent": 1}


@ON_BOTH_REDIS
async def test_after_the_last_attempt_a_temporary_failure_is_dead_lettered(make_deliverer):
    deliverer = make_deliverer(SmtpConfig("127.0.0.1", free_port()), attempts=2)  # nothing listens
    mail = notification("email", "a@example.cn")
    assert statuses(await deliverer.deliver(mail)) == ["sending", "deferred"]
    deliverer.clock.now += 3600
    last = (await deliverer.deliver(mail))[-1]
    assert (last.status, last.attempt, last.retriable, last.dead_letter) == (
        "failed",
        2,
        True,
        True,
    )


def warning(address: str, expires_at: str, *, event_id: str = "W1") -> Notification:
    return replace(notification("sms", address, event_id=event_id, category="warning"),
                   event_type="weather.warning.issued", expires_at=expires_at)  # fmt: skip


@ON_BOTH_REDIS
async def test_a_warning_is_never_sent_after_it_expired(make_deliverer, tmp_path):
    """Delayed past its expires_at (a backlog, a retry released late): suppressed with the
    reason, not sent; one still valid goes, and so does one whose end does not read."""
    deliverer = make_deliverer(SmtpConfig("127.0.0.1", free_port()))
    at = lambda seconds: datetime.fromtimestamp(AFTERNOON + seconds, SHANGHAI).isoformat()  # noqa: E731
    expired, valid = warning("+8613800138001", at(-1)), warning("+8613800138002", at(600))
    outcomes = await deliverer.deliver_many([expired, valid])
    assert statuses(outcomes[0]) == ["suppressed"]
    assert outcomes[0][0].error == f"the warning expired at {at(-1)}; not sent late"
    assert statuses(outcomes[1]) == ["sending", "sent"]
    assert [line["id"] for line in outbox_lines(tmp_path / "sms.jsonl")] == [valid.id]
    record = await deliverer.state.record(expired.id)
    assert (record["status"], record["reason"]) == ("suppressed", outcomes[0][0].error)
    unreadable = warning("+8613800138004", "tomorrow noon")  # the schema lets it through
    assert statuses(await deliverer.deliver(unreadable)) == ["sending", "sent"]  # fails open
    steps = await deliverer.state.steps(expired.id)
    assert steps[-1]["step"] == "suppressed" and "expired" in steps[-1]["reason"]
    assert await deliverer.state.counters("rules") == {"r:suppressed": 1, "r:sent": 2}


@ON_BOTH_REDIS
async def test_a_warning_cancelled_since_it_was_planned_is_not_sent(make_deliverer, smtp_server,
                                                                    tmp_path):  # fmt: skip
    """Its chain cancelled (the all-clear may be on its way): what was not sent yet, in this
    batch or waiting for a retry, is suppressed with the cancel's id; another warning goes."""
    config, server = smtp_server("451 4.3.0 busy")
    deliverer = make_deliverer(config)
    valid = datetime.fromtimestamp(AFTERNOON + 86400, SHANGHAI).isoformat()

    def of(root: str, address: str, channel: str = "sms") -> Notification:
        n = notification(channel, address, event_id=f"E-{root}", category="warning")
        return replace(n, expires_at=valid, warning_root=root)

    early = of("W-1", "+8613800138001")
    retried = of("W-1", "a@example.cn", "email")  # the SMTP server's first answer is 451
    outcomes = await deliverer.deliver_many([early, retried])
    assert [statuses(o) for o in outcomes] == [["sending", "sent"], ["sending", "deferred"]]
    await deliverer.state.cancel_warning("W-1", "CANCEL-1")
    await deliverer.state.cancel_warning("W-1", "CANCEL-AGAIN")  # the first cancel is kept
    late, other = of("W-1", "+8613800138002"), of("W-2", "+8613800138003")
    outcomes = await deliverer.deliver_many([late, other])
    assert statuses(outcomes[0]) == ["suppressed"] and statuses(outcomes[1]) == ["sending", "sent"]
    assert outcomes[0][0].error == "the warning was cancelled (event CANCEL-1); not sent after it"
    deliverer.clock.now += 3600  # the retry is due: still cancelled
    assert statuses(await deliverer.deliver(retried)) == ["suppressed"]
    assert statuses(await deliverer.deliver(early)) == ["duplicate"]  # what was sent stays sent
    assert server.accepted == []
    sent = [line["id"] for line in outbox_lines(tmp_path / "sms.jsonl")]
    assert sent == [early.id, other.id]
    assert (await deliverer.state.record(late.id))["reason"].startswith("the warning was cancelled")


@ON_BOTH_REDIS
async def test_a_cancelled_warnings_chunk_is_suppressed_in_two_writes_not_two_a_recipient(
    make_deliverer, tmp_path
):
    """A city-wide warning cancelled a minute in leaves millions to suppress: a batch's are
    written together (one was two round trips each: 4.9 s for 10,000, now 0.5 s)."""
    deliverer = make_deliverer(SmtpConfig("127.0.0.1", free_port()))
    valid = datetime.fromtimestamp(AFTERNOON + 86400, SHANGHAI).isoformat()
    chunk = [replace(notification("sms", f"+86139{i:08d}", event_id="E-W", category="warning"),
                     expires_at=valid, warning_root="W-9") for i in range(500)]  # fmt: skip
    await deliverer.state.cancel_warning("W-9", "CANCEL-9")
    state = deliverer.state
    writes, apply = [], state.apply

    async def counted(batch):
        writes.append(batch)
        await apply(batch)

    state.apply = counted
    outcomes = await deliverer.deliver_many(chunk)
    assert {o[-1].status for o in outcomes} == {"suppressed"}
    assert len(writes) == 2  # the records, then the trace steps
    assert not (tmp_path / "sms.jsonl").exists()
    assert await state.counters("rules") == {"r:suppressed": 500}
    steps = await state.steps(chunk[-1].id)
    assert [s["step"] for s in steps] == ["suppressed"] and "CANCEL-9" in steps[0]["reason"]


@ON_BOTH_REDIS
async def test_a_warning_whose_next_attempt_falls_after_it_expires_fails_at_once(
    make_deliverer, smtp_server
):
    """A temporary failure is retried after a backoff; for a warning that expires before that
    retry it is failed at once (dead-lettered: the operator sees a warning that did not reach
    its recipient), not deferred to a time when it may no longer be sent."""
    config, server = smtp_server("451 4.3.0 busy", "451 4.3.0 busy")
    deliverer = make_deliverer(config, backoff_base=60.0, backoff_max=60.0)  # retried in 30–60 s
    soon = datetime.fromtimestamp(AFTERNOON + 20, SHANGHAI).isoformat()
    later = datetime.fromtimestamp(AFTERNOON + 3600, SHANGHAI).isoformat()
    base = notification("email", "a@example.cn", category="warning")
    first = replace(base, expires_at=soon)
    failed = (await deliverer.deliver(first))[-1]
    assert (failed.status, failed.retriable, failed.dead_letter) == ("failed", False, True)
    assert "451" in failed.error and f"expires at {soon}, before the next attempt" in failed.error
    assert await deliverer.state.due(AFTERNOON + 7200) == []  # nothing left to release
    other = replace(notification("email", "b@example.cn", category="warning"), expires_at=later)
    assert statuses(await deliverer.deliver(other)) == ["sending", "deferred"]
    deliverer.clock.now += 3600  # released at its end: too late
    last = await deliverer.deliver(other)
    assert statuses(last) == ["suppressed"] and "expired" in last[-1].error
    assert server.accepted == []


@ON_BOTH_REDIS
async def test_a_notification_that_could_not_be_rendered_fails_without_sending(
    make_deliverer, smtp_server, tmp_path
):
    config, _ = smtp_server()
    outcome = (
        await make_deliverer(config).deliver(
            notification("sms", "+8613800138000", error="sms.txt: 'x' is undefined")
        )
    )[-1]
    assert (outcome.status, outcome.error, outcome.dead_letter) == (
        "failed",
        "sms.txt: 'x' is undefined",
        True,
    )
    assert outbox_lines(tmp_path / "sms.jsonl") == []


@ON_BOTH_REDIS
async def test_a_reminder_at_2330_is_deferred_to_0800_and_a_warning_goes_at_once(
    make_deliverer, smtp_server, tmp_path
):
    config, _ = smtp_server()
    deliverer = make_deliverer(config, now=LATE_EVENING)
    reminder = (await deliverer.deliver(notification("sms", "+8613800138000")))[-1]
    assert reminder.status == "deferred"
    assert reminder.next_attempt_at == "2026-07-02T00:00:00+00:00"  # 08:00 in Shanghai
    assert reminder.attempt == 0  # waiting out quiet hours is not an attempt
    warning = await deliverer.deliver(
        notification("sms", "+8613800138000", event_id="W1", category="warning")
    )
    assert statuses(warning) == ["sending", "sent"]
    assert [line["category"] for line in outbox_lines(tmp_path / "sms.jsonl")] == ["warning"]
    deliverer.clock.now = datetime(2026, 7, 2, 8, 0, 1, tzinfo=SHANGHAI).timestamp()
    assert statuses(await deliverer.deliver(notification("sms", "+8613800138000"))) == [
        "sending",
        "sent",
    ]


@ON_BOTH_REDIS
async def test_a_profile_can_turn_quiet_hours_off(
    make_deliverer, smtp_server, redis_client, prefix
):
    await ProfileStore(redis_client, prefix).upsert(
        parse_profile(person("P-1") | {"preferences": {"quiet_hours": "off"}})
    )
    config, _ = smtp_server()
    assert statuses(
        await make_deliverer(config, now=LATE_EVENING).deliver(
            notification("sms", "+8613800138000")
        )
    ) == ["sending", "sent"]


@ON_BOTH_REDIS
async def test_the_daily_cap_suppresses_reminders_but_not_warnings(make_deliverer, smtp_server):
    config, _ = smtp_server()
    deliverer = make_deliverer(config, daily_cap=2)
    results = [
        (await deliverer.deliver(notification("sms", "+8613800138000", event_id=f"E{i}")))[-1]
        for i in range(3)
    ]
    assert [r.status for r in results] == ["sent", "sent", "suppressed"]
    assert results[-1].error == "daily cap of 2 reached"
    warning = await deliverer.deliver(
        notification("sms", "+8613800138000", event_id="W", category="warning")
    )
    assert statuses(warning) == ["sending", "sent"]
    assert (await deliverer.state.record(results[-1].notification_id))["status"] == "suppressed"


@ON_BOTH_REDIS
async def test_a_retried_reminder_keeps_its_place_under_the_cap(make_deliverer, smtp_server):
    config, _ = smtp_server("451 busy")
    deliverer = make_deliverer(config, daily_cap=1)
    first = notification("email", "a@example.cn", event_id="E1")
    assert statuses(await deliverer.deliver(first)) == ["sending", "deferred"]
    assert (
        statuses(await deliverer.deliver(notification("email", "a@example.cn", event_id="E2")))[-1]
        == "suppressed"
    )
    deliverer.clock.now += 3600
    assert statuses(await deliverer.deliver(first)) == ["sending", "sent"]


@ON_BOTH_REDIS
async def test_opt_outs_suppress_their_category_and_warnings_only_explicitly(
    make_deliverer, smtp_server, redis_client, prefix
):
    config, _ = smtp_server()
    deliverer = make_deliverer(config)
    await Preferences(redis_client, prefix, TEST_SECRET).opt_out(
        "+8613800138000", "*", "sms"
    )  # an SMS reply of TD
    assert statuses(await deliverer.deliver(notification("sms", "+8613800138000"))) == [
        "suppressed"
    ]
    warning = notification("sms", "+8613800138000", event_id="W1", category="warning")
    assert statuses(await deliverer.deliver(warning)) == ["sending", "sent"]
    await Preferences(redis_client, prefix, TEST_SECRET).opt_out("+8613800138000", "warning", "sms")
    warning2 = notification("sms", "+8613800138000", event_id="W2", category="warning")
    assert statuses(await deliverer.deliver(warning2)) == ["suppressed"]


@ON_BOTH_REDIS
async def test_a_batch_decides_each_notification_as_alone_and_sends_each_once(
    make_deliverer, smtp_server, redis_client, prefix, tmp_path
):
    config, server = smtp_server()
    deliverer = make_deliverer(config, daily_cap=2)
    await Preferences(redis_client, prefix, TEST_SECRET).opt_out("+8613800138009", "*", "sms")
    already = notification("sms", "+8613800138001", event_id="E0")
    assert statuses(await deliverer.deliver(already)) == ["sending", "sent"]
    mail = notification("email", "a@example.cn")
    batch = [
        mail,
        notification("sms", "+8613800138002"),
        mail,  # the same notification twice in one batch
        already,  # sent before
        notification("sms", "+8613800138009"),  # opted out
        notification("email", "b@example.cn", error="template failed"),
        *(
            notification("sms", "+8613800138003", event_id=f"C{i}", profile_id="P-3")
            for i in range(3)
        ),
        notification("sms", "+8613800138003", event_id="W", category="warning", profile_id="P-3"),
    ]
    outcomes = await deliverer.deliver_many(batch)
    assert [statuses(o) for o in outcomes] == [
        ["sending", "sent"], ["sending", "sent"], ["duplicate"], ["duplicate"], ["suppressed"],
        ["failed"], ["sending", "sent"], ["sending", "sent"], ["suppressed"], ["sending", "sent"],
    ]  # fmt: skip
    assert outcomes[8][-1].error == "daily cap of 2 reached"
    assert len(server.accepted) == 1
    sms = [line["id"] for line in outbox_lines(tmp_path / "sms.jsonl")]
    assert sorted(sms) == sorted(
        {already.id, *(n.id for n in batch[6:8]), batch[1].id, batch[9].id}
    )
    for n in (mail, batch[1], batch[9]):
        record = await deliverer.state.record(n.id)
        assert (record["status"], record["attempts"]) == ("sent", "1")
        assert [s["outcome"] for s in await deliverer.state.steps(n.id)] == ["sent"]
        assert not await redis_client.exists(deliverer.state.key("tr", n.id))  # its record says
    assert not await redis_client.keys(f"{prefix}claim:*"), "every claim is released"
    assert await deliverer.state.counters("rules") == {
        "r:sent": 6,
        "r:suppressed": 2,
        "r:failed": 1,
    }


@ON_BOTH_REDIS
async def test_in_a_batch_a_failed_send_does_not_hold_back_the_others(make_deliverer, smtp_server):
    config, server = smtp_server("550 5.1.1 no such user", "451 4.3.0 busy")
    deliverer = make_deliverer(config)
    batch = [notification("email", f"{who}@example.cn") for who in ("gone", "busy", "fine")]
    outcomes = await deliverer.deliver_many(batch)  # sent at once: which gets which reply varies
    assert sorted(o[-1].status for o in outcomes) == ["deferred", "failed", "sent"]
    assert [o.dead_letter for o in (o[-1] for o in outcomes) if o.status == "failed"] == [True]
    assert len(server.accepted) == 1


async def test_the_outbox_never_writes_a_notification_twice_even_across_processes(tmp_path):
    path = tmp_path / "sms.jsonl"
    sms = notification("sms", "+8613800138000")
    await OutboxSmsGateway(path).send(sms)
    await OutboxSmsGateway(path).send(sms)  # a second process, e.g. after a crash, sends it again
    other = OutboxSmsGateway(path)
    await other.send(notification("sms", "+8613800138001", event_id="E2"))
    await other.send(sms)
    assert [line["to"] for line in outbox_lines(path)] == ["+8613800138000", "+8613800138001"]


async def test_smtp_connections_are_reused_between_messages(smtp_server):
    config, server = smtp_server()
    gateway = SmtpGateway(config, mail_from=FROM)
    for i in range(3):
        await gateway.send(notification("email", f"u{i}@example.cn", event_id=f"E{i}"))
    assert len(server.accepted) == 3 and len(gateway._idle) == 1  # one connection served all three
    await gateway.close()


async def test_the_commit_hook_runs_once_per_message_handed_over(smtp_server):
    config, server = smtp_server()
    gateway = SmtpGateway(config, mail_from=FROM)
    calls = []
    await gateway.send(
        notification("email", "a@example.cn"), on_commit=lambda: calls.append(len(server.accepted))
    )
    await gateway.send(
        notification("email", "b@example.cn", event_id="E2"), on_commit=lambda: calls.append("b")
    )
    assert len(calls) == 2 and len(server.accepted) == 2
    await gateway.close()


async def test_a_commit_hook_that_fails_does_not_fail_a_message_handed_over(smtp_server, caplog):
    """A send reported failed after the message went would be retried, and sent twice."""
    config, server = smtp_server()
    gateway = SmtpGateway(config, mail_from=FROM)

    class Broken:
        def ready(self) -> None:
            raise RuntimeError("a bug before the last write")

        def __call__(self) -> None:
            raise RuntimeError("a bug after it")

    def broken() -> None:
        raise ValueError("a bug in a plain hook")

    first = await gateway.send(notification("email", "a@example.cn"), on_commit=Broken())
    second = await gateway.send(notification("email", "b@example.cn", event_id="E2"),
                                on_commit=broken)  # fmt: skip
    assert first.startswith("<") and second.startswith("<")  # their Message-IDs: sent
    assert len(server.accepted) == 2
    assert sum("a commit hook failed" in r.message for r in caplog.records) == 3
    await gateway.close()


@ON_BOTH_REDIS
async def test_a_refusal_after_the_early_sent_mark_still_ends_failed_or_deferred(
    make_deliverer, smtp_server, redis_url
):
    from app.core.redis_client import sync_redis

    config, _ = smtp_server("550 5.1.1 no such user", "451 4.3.0 later")
    deliverer = make_deliverer(config)
    deliverer.state.sync_redis = sync_redis(
        redis_url
    )  # the early mark is written, then overwritten
    gone, later = (
        notification("email", "gone@example.cn"),
        notification("email", "later@example.cn", event_id="E2"),
    )
    assert statuses(await deliverer.deliver(gone))[-1] == "failed"
    assert statuses(await deliverer.deliver(later))[-1] == "deferred"
    assert (await deliverer.state.status(gone.id), await deliverer.state.status(later.id)) == (
        "failed",
        "deferred",
    )
    deliverer.state.sync_redis.close()


@ON_BOTH_REDIS
async def test_a_batch_whose_first_round_trip_fails_leaves_no_claim_behind(
    make_deliverer, smtp_server, redis_client, tmp_path
):
    """A record key that is not a hash (corrupted, or written by someone with access to Redis)
    fails the batch's first round trip after the claims before it were taken. The claims this
    batch took are given back (a claim held by another worker is left alone), so each
    notification handled alone next goes at once, not after the lease; the bad one fails alone."""
    import asyncio

    import pytest
    from redis.exceptions import ResponseError

    config, _ = smtp_server()
    deliverer = make_deliverer(config)  # a lease of 60 s
    batch = [notification("sms", f"+86138001390{i:02d}", event_id="E-WRONGTYPE") for i in range(3)]
    state = deliverer.state
    await redis_client.set(state.key("n", batch[1].id), "not a hash")
    other = notification("sms", "+8613800139099", event_id="E-WRONGTYPE")
    assert await state.claim(other.id, "another worker", 60_000)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await deliverer.deliver_many([*batch, other])
    assert await redis_client.exists(*(state.key("claim", n.id) for n in batch)) == 0
    assert await redis_client.get(state.key("claim", other.id)) == b"another worker"
    for n in (batch[0], batch[2]):
        outcomes = await asyncio.wait_for(deliverer.deliver(n), timeout=10)
        assert statuses(outcomes) == ["sending", "sent"]
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await asyncio.wait_for(deliverer.deliver(batch[1]), timeout=10)
    sent = [line["id"] for line in outbox_lines(tmp_path / "sms.jsonl")]
    assert sorted(sent) == sorted([batch[0].id, batch[2].id])


@ON_BOTH_REDIS
async def test_a_batch_slower_than_the_claim_lease_keeps_its_claims_and_each_is_sent_once(
    make_deliverer, smtp_server
):
    """A batch whose sends outlast the lease (a slow SMTP server; here a lease of 0.3 s and
    three messages answered 0.4 s apart) renews its claims while it works. Another worker
    given the same notifications meanwhile (a redelivery after a rebalance) finds them held,
    not expired, and sends none of them again."""
    import asyncio

    from tests.conftest import Replies

    class Slow(Replies):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            await asyncio.sleep(0.4)
            return await super().handle_DATA(server, session, envelope)

    smtp, handler = smtp_server(handler=Slow())
    first, other = make_deliverer(smtp, claim_lease=0.3), make_deliverer(smtp, claim_lease=0.3)
    gateway = first.gateways["email"]
    assert isinstance(gateway, SmtpGateway)
    gateway.pool_size = 1  # one connection: the messages one after another, 1.2 s in all
    batch = [notification("email", f"u{i}@example.cn", event_id=f"E{i}") for i in range(3)]
    sending = asyncio.create_task(first.deliver_many(batch))
    await asyncio.sleep(0.7)  # two leases on: the first batch is on its second message
    again = await other.deliver_many(batch, leave_contested=True)
    done = await sending
    await gateway.close()
    assert [statuses(o)[-1] for o in done] == ["sent", "sent", "sent"]
    assert all(o == [] for o in again)  # held by the first worker: left to it
    assert len(handler.accepted) == 3  # each once


@ON_BOTH_REDIS
async def test_a_claim_found_expired_is_reported_and_only_the_batchs_own_are_given_back(
    make_deliverer, caplog
):
    """A claim that expired and was taken by another worker before the renewal is neither
    renewed nor, at the batch's end, deleted: that worker's claim stands."""
    import asyncio

    from app.delivery.deliverer import ClaimKeeper

    deliverer = make_deliverer(SmtpConfig("127.0.0.1", 1))
    state = deliverer.state
    ids = ["n-kept", "n-taken"]
    for i in ids:
        assert await state.claim(i, "mine", 300)
    keeper = ClaimKeeper(state, ids, "mine", 0.3)
    await state.release("n-taken")  # expired, say, and claimed by another worker
    assert await state.claim("n-taken", "theirs", 5000)
    await asyncio.sleep(0.45)  # a renewal at 0.1 s and at 0.2 s, past the first lease
    assert await state.claim_ttl_ms("n-kept") > 0  # renewed: still held after 0.45 s
    assert await keeper.stop() is True
    assert "1 of a batch's 2 claims had expired" in caplog.text
    await state.release_own(ids, "mine")
    assert await state.claim_ttl_ms("n-kept") == -2  # given back
    assert await state.claim_ttl_ms("n-taken") > 0  # theirs stands
    assert await ClaimKeeper(state, [], "mine", 0.3).stop() is False  # nothing to keep


@ON_BOTH_REDIS
async def test_a_providers_sms_is_recorded_as_its_answer_comes_not_after_the_batchs_e_mails(
    make_deliverer, smtp_server
):
    """A provider's SMS has no early mark: until its record says "sent", a crash sends it again.
    In a batch with e-mails to a slow SMTP server, its record is written when Aliyun answers,
    not when the last e-mail is answered."""
    import asyncio

    from aiohttp import web

    from tests.conftest import Replies
    from tests.helpers import provider_api
    from tests.unit.delivery.test_aliyun import aliyun_at, numbered

    class Slow(Replies):
        def __init__(self) -> None:
            super().__init__()
            self.holding = asyncio.Event()  # set from the server's thread: read by polling

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.holding.set()
            await asyncio.sleep(1.5)
            return await super().handle_DATA(server, session, envelope)

    async def aliyun(request):
        return web.json_response({"Code": "OK", "BizId": "biz-1", "RequestId": "r"})

    smtp, handler = smtp_server(handler=Slow())
    async with provider_api(aliyun) as url:
        deliverer = make_deliverer(smtp)
        deliverer.gateways["sms"] = aliyun_at(url)
        texts = [numbered(i) for i in range(3)]
        mail = notification("email", "a@example.cn")
        sending = asyncio.create_task(deliverer.deliver_many([*texts, mail]))
        for _ in range(250):
            if handler.holding.is_set():
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # Aliyun has long answered; the e-mail is still held
        meanwhile = [await deliverer.state.status(n.id) for n in texts]
        assert not sending.done()
        done = await sending
        traces = [await deliverer.state.steps(n.id) for n in texts]
        counted = await deliverer.state.counters("rules")
        await deliverer.gateways["sms"].close()
        await deliverer.gateways["email"].close()
    assert meanwhile == ["sent", "sent", "sent"]
    assert [statuses(o)[-1] for o in done] == ["sent"] * 4
    assert [[s["outcome"] for s in steps] for steps in traces] == [["sent"]] * 3
    assert counted == {f"{texts[0].rule_id}:sent": 3, f"{mail.rule_id}:sent": 1}  # once each
