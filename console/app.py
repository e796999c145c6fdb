"""Building and running the console: ``lifecycle console``."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

from aiohttp import web

from app.access.accounts import AccountStore, LoginThrottle, SessionStore
from app.access.audit import AUDIT_TOPIC
from app.core.settings import Settings, require_real_secret
from console import (  # noqa: F401 - register their calls
    backtest,
    dashboard,
    dlq_api,
    pages,
    policies_api,
    policy_pages,
    preview,
    rules_api,
    search_api,
    types_api,
)
from console.api import routes
from console.auth import MAX_BODY_BYTES, SERVICES, Services
from wiring.audit import AuditLog
from wiring.health import close_probes
from wiring.kafka import ensure_topics
from wiring.kafka_async import KafkaWriter
from wiring.runtime import Runtime

logger = logging.getLogger(__name__)


def build_app(svc: Services) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[SERVICES] = svc
    app.add_routes(routes)
    app.router.add_static("/static", pages.STATIC, append_version=False)
    app.middlewares.append(security_headers)
    return app


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"
    )
    return response


async def open_services(settings: Settings, stack: AsyncExitStack) -> Services:
    """Everything the console holds open, closed by ``stack``."""
    require_real_secret(settings, "lifecycle console")
    await asyncio.to_thread(ensure_topics, settings.kafka_servers, [AUDIT_TOPIC], 1)
    runtime = Runtime.build(settings, deliver=False)
    stack.push_async_callback(runtime.close)
    stack.push_async_callback(close_probes)  # the dashboard's Kafka clients
    writer = KafkaWriter(settings.kafka_servers)
    await writer.start()
    stack.push_async_callback(writer.stop)
    redis, prefix = runtime.redis, settings.control_prefix
    return Services(runtime=runtime, accounts=AccountStore(redis, prefix),
                    sessions=SessionStore(redis, prefix), throttle=LoginThrottle(redis, prefix),
                    audit=AuditLog(writer), kafka=writer)  # fmt: skip


async def run_console(settings: Settings) -> int:
    async with AsyncExitStack() as stack:
        svc = await open_services(settings, stack)
        runner = web.AppRunner(build_app(svc), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.console_bind, settings.console_port)
        await site.start()
        print(f"console: http://{settings.console_bind}:{settings.console_port}/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    return 0
