"""Stuck safety warnings reach the operators by e-mail (real Redis, a real SMTP server): once the
warnings lane has stayed behind long enough, each operator with an e-mail is told, once per
outage, whichever worker notices first."""

from __future__ import annotations

import redis.asyncio as aioredis

from app.access.accounts import AccountStore
from app.core.settings import Settings
from devstack.stack import SmtpSink
from wiring.watch import StuckWarnings

BEHIND = {
    ("notifications-warning", 0): 3,
    ("notifications-warning", 1): 2,
    ("notifications", 0): 900,
}
CAUGHT_UP = {("notifications-warning", 0): 0, ("notifications", 0): 900}


async def test_operators_are_told_once_when_warnings_stay_stuck(redis_url, prefix):
    sink = SmtpSink.start()
    redis = aioredis.Redis.from_url(redis_url)
    try:
        settings = Settings(
            redis_url=redis_url, redis_prefix=prefix, smtp_url=sink.url, warning_stuck_seconds=60
        )
        accounts = AccountStore(redis, prefix)
        await accounts.put(
            "ops", "a long enough password", ["operator"], ["440300"], email="ops@example.cn"
        )
        await accounts.put("ops-nomail", "a long enough password", ["operator"], ["440300"])
        await accounts.put(
            "appr", "a long enough password", ["approver"], ["440300"], email="appr@example.cn"
        )
        one, other = StuckWarnings(settings, redis), StuckWarnings(settings, redis)  # two workers

        assert await one.check(BEHIND, now=1000) == 0  # the clock starts
        assert await other.check(BEHIND, now=1059) == 0
        assert await other.check(BEHIND, now=1061) == 1
        assert await one.check(BEHIND, now=1090) == 0  # told already, by the other worker
        [mail] = sink.received()
        assert mail["To"].addresses[0].addr_spec == "ops@example.cn"
        assert "积压 5 条" in mail["Subject"]

        assert await one.check(CAUGHT_UP, now=1200) == 0  # over: the clock stops
        assert await one.check(BEHIND, now=1300) == 0
        assert await one.check(BEHIND, now=1361) == 1  # a new outage, told again
        assert len(sink.received()) == 2
    finally:
        await redis.aclose()
        sink.stop()
