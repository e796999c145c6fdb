"""The date reminders' scheduler over N resident profiles, each with an identity card expiry and a
birth date, under the shipped date rules (those two facts schedule the card renewal, 30 days
before, and the old-age allowance at 80; the other rules find their facts absent). Measured on a Redis of the benchmark's own, in this process (no broker: what is measured is
the scheduler, not the pipeline after it):

- storing the profiles with the schedule kept (the store's hook), against storing them without:
  the schedule's cost per profile written, in CPU and in wall time;
- Redis memory per scheduled reminder;
- moving 10 % of the reminders (renewed cards): the cost per profile updated;
- taking the reminders that came due (10,000 of them, the day's worth for a city of 17.6 M
  residents is about 2,400 card renewals and 300 80th birthdays), as the leader's timer does.

    python -m bench.date_scheduler --profiles 1000000

Prints the figures and writes bench/results/date_scheduler.json. There is no daily scan: a day's
work is taking what is due, a range read of one sorted set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from app.core.settings import PROJECT_ROOT
from app.planning.planner import Planner
from app.planning.rules import load_rules
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from app.rendering.renderer import Renderer
from devstack.stack import RedisServer

RESULTS = PROJECT_ROOT / "bench" / "results"
BATCH = 2000
TZ = ZoneInfo("Asia/Shanghai")


def resident(i: int, today: date, rng: random.Random) -> dict[str, Any]:
    expiry = today + timedelta(days=rng.randint(1, 3650))  # cards last 10 or 20 years
    born = date(1930, 1, 1) + timedelta(days=rng.randint(0, 75 * 365))
    return {"id": f"P{i:08d}", "kind": "person", "name": f"居民{i}", "district": "440308",
            "mobile": f"+86137{i:08d}",
            "dates": {"id_card_expiry": expiry.isoformat(), "birth_date": born.isoformat()}}  # fmt: skip


async def used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def run(count: int) -> dict[str, Any]:
    server = RedisServer.start(PROJECT_ROOT / "var" / "bench-logs",
                               folder=Path(tempfile.mkdtemp(prefix="dates-redis-")))  # fmt: skip
    client = aioredis.Redis.from_url(server.url)
    renderer = Renderer(PROJECT_ROOT / "templates", signature="【盐田区政务服务】", tz=TZ)
    rules = load_rules(PROJECT_ROOT / "rules", renderer)
    assert not rules.errors, rules.errors
    today = date.today()
    rng = random.Random(7)
    profiles = [parse_profile(resident(i, today, rng)) for i in range(count)]
    try:
        timings: dict[str, float] = {}
        for label, hooked in (("without", False), ("with", True)):  # the same writes, twice
            prefix = f"{label}:"
            store = ProfileStore(client, prefix)
            planner = Planner(rules, store, renderer, tz=TZ)
            store.after_write = planner.dated.schedule if hooked else None
            before = await used_memory(client)
            wall, cpu = time.perf_counter(), time.process_time()
            for start in range(0, count, BATCH):
                await store.insert_new(profiles[start : start + BATCH])
            timings[f"{label}_wall"] = time.perf_counter() - wall
            timings[f"{label}_cpu"] = time.process_time() - cpu
            timings[f"{label}_bytes"] = await used_memory(client) - before
        store = ProfileStore(client, "with:")
        planner = Planner(rules, store, renderer, tz=TZ)
        store.after_write = planner.dated.schedule
        scheduled = await planner.dated.queue.scheduled()
        per_entry = (timings["with_bytes"] - timings["without_bytes"]) / max(scheduled, 1)

        moved = profiles[: count // 10]
        renewed = [parse_profile(p | {"dates": {**p["dates"], "id_card_expiry": (today + timedelta(days=3650 + i % 365)).isoformat()}})
                   for i, p in enumerate(moved)]  # fmt: skip
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(renewed), BATCH):
            await planner.dated.schedule([(p["id"], p) for p in renewed[start : start + BATCH]])
        move_wall, move_cpu = time.perf_counter() - wall, time.process_time() - cpu

        # the reminders due within the next days, taken as the leader does (500 at a time)
        horizon = time.time() + 86400
        due_total, wall = 0, time.perf_counter()
        while due_total < 10_000:
            batch = await planner.dated.due_events(horizon + 400 * 86400, limit=500)
            if not batch:
                break
            for rule_id, profile_id, event in batch:
                if event is None:
                    await planner.dated.queue.drop(rule_id, profile_id)
                else:
                    await planner.dated.queue.mark_sent(rule_id, profile_id, event["data"]["date"])
            due_total += len(batch)
        take_wall = time.perf_counter() - wall
        result = {
            "profiles": count,
            "date_rules": len([r for r in rules.rules if r.on_date]),
            "scheduled": scheduled,
            "schedule_us_per_profile_cpu": round((timings["with_cpu"] - timings["without_cpu"]) / count * 1e6, 1),
            "schedule_us_per_profile_wall": round((timings["with_wall"] - timings["without_wall"]) / count * 1e6, 1),
            "store_us_per_profile_wall_without": round(timings["without_wall"] / count * 1e6, 1),
            "redis_bytes_per_scheduled_reminder": round(per_entry),
            "move_us_per_profile_wall": round(move_wall / len(renewed) * 1e6, 1),
            "move_us_per_profile_cpu": round(move_cpu / len(renewed) * 1e6, 1),
            "due_taken": due_total,
            "take_us_per_reminder_wall": round(take_wall / max(due_total, 1) * 1e6, 1),
        }  # fmt: skip
        return result
    finally:
        await client.aclose()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    args = parser.parse_args()
    result = asyncio.run(run(args.profiles))
    for name, value in result.items():
        print(f"{name:38} {value:>12,}" if isinstance(value, int) else f"{name:38} {value:>12}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "date_scheduler.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
