"""A chunk's delivery state, piece by piece, in one process: the worker CPU of building and
applying a chunk's record writes (planned, sending, sent: built, encoded, sent and their
replies read), of the batch's first round trip
before sending (claims, records, opt-outs, the message search's index: ``Deliverer._begin``),
and the Redis CPU of the scripts that run them (``INFO commandstats``). For changes to these
paths too small to see end to end: run it from each checkout in turn, alternately, against a
Redis of its own (``commandstats`` counts the whole server's commands):

    redis-server --port 6390 --save "" --appendonly no --daemonize yes
    export LIFECYCLE_REDIS_URL=redis://127.0.0.1:6390/0
    (cd /tmp/wt-before && PYTHONPATH=$PWD python /work/main/bench/delivery_state.py)
    python -m bench.delivery_state

It uses only what both sides have (``add_planned``, ``set_status_many``, ``sent_many``,
``Deliverer._begin``), so an older checkout runs it from this file. Prints the medians of
``--rounds`` chunks of ``--chunk`` notifications; deletes its keys afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from typing import Any

from app.notifications import Notification
from app.state import DeliveryState, Status, Writes
from bench.harness import in_process_settings
from tests.conftest import delete_prefix
from wiring.runtime import Runtime, make_redis


def chunk(run: str, size: int) -> list[Notification]:
    return [Notification(id=f"{run}{i:06d}", rule_id="weather_outdoor_ads", rule_version=1,
                         category="warning", event_id=f"CAP-{run}", event_type="weather.warning.issued",
                         channel="sms", profile_id=f"E-{i}", recipient=f"E-{i}/safety/0",
                         recipient_name=None, role="safety", address=f"+86138{i:08d}",
                         language="zh-CN", planned_at="2026-12-05T00:00:00.000+00:00")
            for i in range(size)]  # fmt: skip


async def scripts_usec(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k.startswith("cmdstat_eval"))


async def run(size: int, rounds: int) -> None:
    prefix = f"bench-ds-{secrets.token_hex(4)}:"
    settings = in_process_settings(prefix)
    runtime = Runtime.build(settings)
    deliverer = runtime.deliverer
    assert deliverer is not None
    state: DeliveryState = deliverer.state
    redis = make_redis(settings)
    known = {f"E-{i}": {"id": f"E-{i}", "kind": "enterprise", "name": "x"} for i in range(size)}
    writes_cpu, begin_cpu, redis_us = [], [], []
    try:
        for r in range(rounds + 2):  # the first two warm up: scripts loaded, caches filled
            batch = chunk(secrets.token_hex(3), size)
            before = await scripts_usec(redis)
            started = time.process_time()
            writes = Writes()
            state.add_planned(writes, batch)
            await state.apply(writes)
            planned = time.process_time() - started
            started = time.process_time()
            begun = await deliverer._begin(batch, "bench:token", known=known)
            begin = time.process_time() - started
            assert all(b.claimed for b in begun)
            started = time.process_time()
            await state.set_status_many(batch, Status.SENDING, [{"attempts": 1} for _ in batch])
            await state.sent_many([(n, 1, f"ref-{i}") for i, n in enumerate(batch)])
            statuses = time.process_time() - started
            after = await scripts_usec(redis)
            await state.release_many([n.id for n in batch])
            if r >= 2:
                writes_cpu.append((planned + statuses) / size * 1e6)
                begin_cpu.append(begin / size * 1e6)
                redis_us.append((after - before) / size)
        print(f"{size:,} notifications a chunk, median of {rounds}: the record writes "
              f"{statistics.median(writes_cpu):.1f} µs of worker CPU a notification, the first "
              f"round trip {statistics.median(begin_cpu):.1f} µs; the scripts "
              f"{statistics.median(redis_us):.1f} µs of Redis CPU (whole server)")  # fmt: skip
    finally:
        await redis.aclose()
        await runtime.close()
        await delete_prefix(settings.redis_url, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.chunk, args.rounds))


if __name__ == "__main__":
    main()
