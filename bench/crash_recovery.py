"""Crash and recover: N graduate events (one SMS and one e-mail each) and a CAP warning to W
enterprises (fanned out in chunks, each chunk delivered where it is planned) through a worker
process that is killed with SIGKILL at random points several times and restarted each time, so
that kills land mid-batch and mid-chunk. Prints the final counts of expected / delivered /
duplicated / lost notifications, counted at the SMTP server and in the SMS outbox, and writes
them to bench/results/crash_recovery.json.

    python -m bench.crash_recovery --events 10000 --warning 10000 --kills 5 [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import tempfile
import time
import uuid
from pathlib import Path

import redis.asyncio as aioredis

from app.core.settings import PROJECT_ROOT, Settings
from app.intake.cap import alert_events
from app.intake.events import Event
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from bench.fanout import cap_document, enterprise
from bench.harness import (
    Delivered,
    Workers,
    expected_ids,
    prepare_burst,
    tally,  # fmt: skip
    wait_until,
)
from devstack.stack import Broker, RedisServer, SmtpSink, free_port
from tests.conftest import delete_prefix
from wiring.kafka import publish

RESULTS = PROJECT_ROOT / "bench" / "results"


async def prepare_warning(settings: Settings, count: int, run: str) -> tuple[list[Event], set[str]]:
    """``count`` enterprises a CAP warning reaches; its events and the SMS ids it must send."""
    store = ProfileStore(aioredis.Redis.from_url(settings.redis_url), settings.redis_prefix)
    try:
        for start in range(0, count, 2000):
            await store.insert_new([parse_profile(enterprise(i, count))
                                    for i in range(start, min(start + 2000, count))])  # fmt: skip
    finally:
        await store.redis.aclose()
    events = alert_events(cap_document(f"CRASH-{run}"))
    return events, (await expected_ids(settings, events))["sms"]


async def run(events_count: int, kills: int, seed: int, warning: int = 0) -> dict[str, object]:
    rng = random.Random(seed)
    logs = PROJECT_ROOT / "var" / "bench-logs"
    broker = Broker.start(logs)
    redis = RedisServer.ensure("redis://127.0.0.1:6379/0", logs)
    sink = SmtpSink.start()
    folder = Path(tempfile.mkdtemp(prefix="crash-bench-"))
    outbox = folder / "sms.jsonl"
    prefix = f"bench-crash-{uuid.uuid4().hex[:6]}:"
    settings = Settings(secret=secrets.token_urlsafe(32), kafka_url=broker.url, redis_url=redis.url, redis_prefix=prefix, smtp_url=sink.url,
                        sms_url=f"file://{outbox}", web_port=free_port(), partitions=8, quiet_hours="off",
                        daily_cap=0, claim_lease_seconds=5, retry_base_seconds=0.5, retry_max_seconds=2,
                        blast_ceiling=10 * max(warning, 1), blast_first_run=0)  # fmt: skip
    workers = Workers(settings, logs / prefix.rstrip(":"))
    seen = Delivered(outbox, sink)
    try:
        events, expected, total = await prepare_burst(settings, events_count, prefix)
        if warning:
            alert, warned = await prepare_warning(settings, warning, prefix.rstrip(":"))
            events, expected["sms"], total = (
                alert + events,
                expected["sms"] | warned,
                total + len(warned),
            )
        kill_points = sorted(rng.uniform(0.05, 0.95) for _ in range(kills))
        print(
            f"{events_count} events and a warning to {warning} → {total} notifications; "
            f"SIGKILL at {[f'{p:.0%}' for p in kill_points]}"
        )
        started = time.monotonic()
        worker = workers.start()
        await asyncio.to_thread(publish, settings.kafka_servers, events)
        for point in kill_points:
            await wait_until(
                lambda p=point: seen.refresh().total >= total * p, timeout=900, every=0.02
            )
            workers.kill(worker)
            print(
                f"  killed at {seen.refresh().total} delivered ({time.monotonic() - started:.1f} s)"
            )
            worker = workers.start()
        finished = await wait_until(lambda: seen.refresh().total >= total, timeout=900, every=0.2)
        elapsed = time.monotonic() - started
        await asyncio.sleep(5)  # late duplicates would arrive now
        result: dict[str, object] = tally(expected, seen.refresh()) | {"kills": kills, "seconds": round(elapsed, 1),
                                                    "finished": finished, "events": events_count,
                                                    "warned": warning}  # fmt: skip
        twice = [i for got in (seen.sms, seen.email) for i, n in got.items() if n > 1]
        if twice:  # what a duplicate's record and trace said, before the run's keys are gone
            result["duplicates"] = await records_of(settings, twice[:10])
    finally:
        workers.stop_all()
        sink.stop()
        await delete_prefix(redis.url, prefix)
        redis.stop()
        broker.stop()
    return result


async def records_of(settings: Settings, ids: list[str]) -> list[dict[str, object]]:
    """Each notification's status record (its recipient masked, as stored) and trace steps."""
    from app.state import DeliveryState  # noqa: PLC0415

    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        state = DeliveryState(client, settings.redis_prefix)
        return [{"id": i, "record": await state.record(i), "trace": await state.steps(i)}
                for i in ids]  # fmt: skip
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--warning", type=int, default=10_000,
                        help="enterprises a CAP warning reaches, published first (0: none)")  # fmt: skip
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.kills, args.seed, args.warning))
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "crash_recovery.json").write_text(
        json.dumps(result | {"seed": args.seed}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
