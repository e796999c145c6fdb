"""What the message search's index costs the deliverer: its first round trip per batch (claim,
record, opt-outs, profile) with the index's commands and without them, run alternately on a Redis
of its own, since these machines are noisy; and what the index holds in memory per notification.

    python -m bench.search_index_cost [--notifications 20000] [--batch 100] [--rounds 5]

Prints each run and the medians; writes bench/results/search_index_cost.json. The worker's whole
CPU per notification is about 1 ms (README, Performance); this is the part that the index adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from app.core.settings import PROJECT_ROOT
from app.delivery.deliverer import Deliverer, DeliveryPolicy
from app.delivery.preferences import Preferences
from app.notifications import Notification
from app.profiles.store import ProfileStore
from app.state import DeliveryState
from bench.pipeline import LOGS
from devstack.stack import RedisServer

RESULTS = PROJECT_ROOT / "bench" / "results" / "search_index_cost.json"
PREFIX = "six:"
POLICY = DeliveryPolicy(ZoneInfo("Asia/Shanghai"), None)


class WithoutIndex(Deliverer):
    async def _queue_index(self, pipe: Any, batch: list[Notification]) -> None:
        return None


def notifications(count: int, run: str) -> list[Notification]:
    return [Notification(id=f"{run}-{i:07d}", rule_id="r", rule_version=1, category="reminder",
                         event_id=f"E-{run}-{i}", event_type="graduate.reception.approved",
                         channel="sms", profile_id=f"P-{i:07d}", recipient=f"P-{i:07d}",
                         recipient_name=None, role=None, address=f"+86138{i:08d}",
                         language="zh-CN", planned_at="2026-12-02T08:00:00+00:00",
                         district="440308") for i in range(count)]  # fmt: skip


async def redis_cpu(redis: aioredis.Redis) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def one_run(deliverer: Deliverer, redis: aioredis.Redis, batch: list[Notification],
                  size: int) -> dict[str, float]:  # fmt: skip
    server_before = await redis_cpu(redis)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    for start in range(0, len(batch), size):
        await deliverer._begin(batch[start : start + size], "bench")
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    server = await redis_cpu(redis) - server_before
    n = len(batch)
    return {"client_us": cpu / n * 1e6, "redis_us": server / n * 1e6, "wall_us": wall / n * 1e6}


async def run(count: int, size: int, rounds: int) -> None:
    server = RedisServer.start(LOGS)
    redis = aioredis.Redis.from_url(server.url)
    try:
        state = DeliveryState(redis, PREFIX)
        preferences = Preferences(redis, PREFIX, secrets.token_urlsafe(32))
        profiles = ProfileStore(redis, PREFIX)
        makers = {"with": Deliverer, "without": WithoutIndex}
        results: dict[str, list[dict[str, float]]] = {"with": [], "without": []}
        await one_run(Deliverer(state, preferences, profiles, {}, POLICY), redis,
                      notifications(size * 10, "warm"), size)  # fmt: skip
        for r in range(rounds):
            order = ("with", "without") if r % 2 == 0 else ("without", "with")
            for mode in order:
                deliverer = makers[mode](state, preferences, profiles, {}, POLICY)
                found = await one_run(deliverer, redis, notifications(count, f"{mode}{r}"), size)
                results[mode].append(found)
                print(f"round {r} {mode:>7}: client {found['client_us']:6.1f} µs, "
                      f"redis {found['redis_us']:6.1f} µs, wall {found['wall_us']:6.1f} µs "
                      "per notification", flush=True)  # fmt: skip
        memory_before = (await redis.info("memory"))["used_memory"]
        marker = notifications(count, "mem")
        await one_run(WithoutIndex(state, preferences, profiles, {}, POLICY), redis,
                      marker, size)  # fmt: skip
        without = (await redis.info("memory"))["used_memory"] - memory_before
        memory_before = (await redis.info("memory"))["used_memory"]
        marker = notifications(count, "mem2")
        await one_run(Deliverer(state, preferences, profiles, {}, POLICY), redis,
                      marker, size)  # fmt: skip
        with_index = (await redis.info("memory"))["used_memory"] - memory_before
        # the second run's addresses and profiles already have who keys (the first "with"
        # rounds wrote them): this is a second notification to the same people
        medians = {mode: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                   for mode, runs in results.items()}  # fmt: skip
        fresh_key = await redis.memory_usage(preferences.who_key("+8613800000001"))
        summary = {
            "notifications": count, "batch": size, "rounds": rounds, "medians": medians,
            "added_client_us": medians["with"]["client_us"] - medians["without"]["client_us"],
            "added_redis_us": medians["with"]["redis_us"] - medians["without"]["redis_us"],
            "who_key_bytes_one_entry": fresh_key,
            "claim_memory_bytes_per_notification": without / count,
            "index_memory_bytes_per_repeat_notification": (with_index - without) / count,
        }  # fmt: skip
        print(json.dumps(summary, indent=2))
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    finally:
        await redis.aclose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(run(args.notifications, args.batch, args.rounds))


if __name__ == "__main__":
    main()
