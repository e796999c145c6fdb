"""Helpers for tests: waiting for a condition, reading a topic, fixture profiles."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.core.timestamps import local_iso

T = TypeVar("T")

# A real secret for the workers the tests start (a worker refuses to run without one).
TEST_SECRET = secrets.token_urlsafe(32)

# Run a test on one Redis and again on a three-master Redis Cluster (the ``redis_url`` fixture)
ON_BOTH_REDIS = pytest.mark.parametrize("redis_url", ["single", "cluster"], indirect=True)
# A test that shares a module's fixtures with ON_BOTH_REDIS tests but runs on one Redis only: so
# that it uses the same instance of them (not a third stack of workers on the same topics)
ON_ONE_REDIS = pytest.mark.parametrize("redis_url", ["single"], indirect=True)


async def eventually(
    check: Callable[[], Awaitable[T] | T], *, timeout: float = 60.0, every: float = 0.2
) -> T:
    """Call ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value: {value!r})")
        await asyncio.sleep(every)


async def read_topic(bootstrap: str, topic: str, *, timeout_ms: int = 1500) -> list[Any]:
    """Every record on ``topic`` from the beginning (no consumer group: assign and seek)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_ms / 1000 + 5

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in tps])

        while await behind() and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            for messages in batch.values():
                records.extend(messages)
        return records
    finally:
        await consumer.stop()


def outbox_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def person(pid: str, *, district: str = "440308", mobile: str | None = None, email: str | None = None,
           name: str = "测试居民", language: str = "zh-CN") -> dict[str, Any]:  # fmt: skip
    doc: dict[str, Any] = {"id": pid, "kind": "person", "name": name, "district": district,
                           "language": language}  # fmt: skip
    if mobile:
        doc["mobile"] = mobile
    if email:
        doc["email"] = email
    return doc


def enterprise(eid: str, *, district: str = "440308", permits: tuple[str, ...] = (),
               contacts: list[dict[str, Any]] | None = None, name: str = "测试企业有限公司") -> dict[str, Any]:  # fmt: skip
    return {"id": eid, "kind": "enterprise", "name": name, "district": district,
            "industry": "advertising", "permits": list(permits), "contacts": contacts or []}  # fmt: skip


def contact(
    role: str, mobile: str, email: str | None = None, name: str = "联系人"
) -> dict[str, Any]:
    doc = {"role": role, "name": name, "mobile": mobile}
    if email:
        doc["email"] = email
    return doc


def weather_event(event_id: str, areas: list[str], *, level: str = "yellow") -> dict[str, Any]:
    return {"id": event_id, "type": "weather.warning.issued", "occurred_at": local_iso(-3600),
            "source": "test", "data": {"warning_id": f"W-{event_id}", "kind": "gale", "level": level,
                                       "areas": areas, "headline": "盐田区大风黄色预警",
                                       "instruction": "请注意防风。", "expires_at": local_iso(86400)}}  # fmt: skip


def graduate_event(event_id: str, subject: str) -> dict[str, Any]:
    return {"id": event_id, "type": "graduate.reception.approved", "occurred_at": local_iso(-3600),
            "source": "test", "subject": {"kind": "person", "id": subject}, "district": "440308",
            "data": {"approval_no": "SZJS-TEST-0001", "school": "深圳大学", "receiving_unit": "盐田港集团",
                     "approved_on": "2026-07-01"}}  # fmt: skip


def business_event(event_id: str, subject: str, name: str = "测试企业有限公司") -> dict[str, Any]:
    return {"id": event_id, "type": "business.registered", "occurred_at": local_iso(-3600),
            "source": "test", "subject": {"kind": "enterprise", "id": subject}, "district": "440308",
            "data": {"name": name, "enterprise_type": "有限责任公司", "industry": "advertising",
                     "registered_on": "2026-07-02"}}  # fmt: skip


RETIREMENT = "retirement.approved"  # the console-added type of the staff story


def retirement_event(
    event_id: str, subject: str, *, pension: str = "城镇职工养老保险"
) -> dict[str, Any]:
    return {"id": event_id, "type": RETIREMENT, "occurred_at": local_iso(-3600), "source": "test",
            "subject": {"kind": "person", "id": subject}, "district": "440308",
            "data": {"approval_no": "SZTX-TEST-0001", "retire_on": "2026-12-01",
                     "pension_scheme": pension}}  # fmt: skip


def retirement_type() -> dict[str, Any]:
    """What an admin enters in the console for the new type: a schema of its data, an example."""
    return {
        "subject": "person",
        "description": "退休审批通过：养老金领取与医保关系接续是下一步",
        "data": {
            "type": "object",
            "required": ["approval_no", "retire_on", "pension_scheme"],
            "properties": {
                "approval_no": {"type": "string", "minLength": 1},
                "retire_on": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "pension_scheme": {
                    "type": "string",
                    "enum": ["城镇职工养老保险", "城乡居民养老保险"],
                },
            },
        },
        "example": retirement_event("EVT-RT-0001", "P-000123"),
    }


@asynccontextmanager
async def provider_api(handle: Callable[[Any], Awaitable[Any]]) -> AsyncIterator[str]:
    """A real HTTP server on loopback answering POST / with ``handle`` (a provider's API as the
    gateway tests play it); yields its URL."""
    from aiohttp import web

    from devstack.stack import free_port

    app = web.Application()
    app.router.add_post("/", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def acting_planner(redis_client: Any, prefix: str, rules_dir: Path, tz: Any = None) -> Any:
    """A planner that acts (guard and delivery state, as a worker's) over the rules of
    ``rules_dir`` (what loading them refused: ``planner.rules.errors``), with the shipped
    templates, under the test's key prefix."""
    from zoneinfo import ZoneInfo

    from app.core.settings import PROJECT_ROOT
    from app.planning.blast import BlastGuard, BlastPolicy
    from app.planning.planner import Planner
    from app.planning.rules import load_rules
    from app.profiles.store import ProfileStore
    from app.rendering.renderer import Renderer
    from app.state import DeliveryState

    zone = tz or ZoneInfo("Asia/Shanghai")
    renderer = Renderer(PROJECT_ROOT / "templates", signature="【测试】", tz=zone)
    return Planner(load_rules(rules_dir, renderer), ProfileStore(redis_client, prefix), renderer,
                   guard=BlastGuard(redis_client, prefix, BlastPolicy(3, 1000, 3, 1000)),
                   state=DeliveryState(redis_client, prefix), tz=zone)  # fmt: skip
