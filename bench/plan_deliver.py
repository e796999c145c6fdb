"""The planning agent's own work on subject events, in one process, without Kafka or Faust: read the
batch's subject profiles, plan each event, record the plans, deliver the SMS where they were
planned (claims, policy, the outbox gateway, status writes; no e-mail) and encode their `deliveries`
records. CPU time an event, for changes too small to see end to end on a noisy machine: run it
from each checkout in turn, several times, alternately.

    python -m bench.plan_deliver [--events 6000] [--batch 100] [--profile]
    (cd /tmp/wt-before && python -m bench.plan_deliver); python -m bench.plan_deliver

Redis: ``LIFECYCLE_REDIS_URL`` (the shared one by default), under a key prefix of its own that it
deletes afterwards. ``--profile`` prints cProfile's top functions (the figures then include its
overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

from app.core.codec import json_bytes
from app.intake.events import parse_event
from app.planning.planner import refuse_oversized
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from bench.harness import Timed, in_process_settings
from bench.pipeline import PEOPLE, event, people
from tests.conftest import delete_prefix
from wiring.runtime import Runtime, make_redis


async def run(count: int, batch_size: int, profile: bool) -> None:
    prefix = f"bench-pd-{secrets.token_hex(4)}:"
    settings = in_process_settings(prefix)
    runtime = Runtime.build(settings)
    assert runtime.deliverer is not None
    redis = make_redis(settings)
    try:
        await ProfileStore(redis, prefix).insert_new([parse_profile(p) for p in people(PEOPLE)])
        run_id = secrets.token_hex(3)
        events = [parse_event(event(i, run_id)[1]) for i in range(count + batch_size)]
        planner, deliverer = runtime.planner, runtime.deliverer

        async def one_batch(batch: list) -> int:
            subjects = await planner.subject_profiles(batch)
            outcomes = [await planner.plan_event(e, subjects) for e in batch]
            for outcome in outcomes:
                refuse_oversized(outcome.plan, lambda n: False)
            await planner.record([o.plan for o in outcomes])
            ready = [n for o in outcomes for n in o.plan.notifications if n.channel == "sms"]
            profiles = {k: p for k, p in subjects.items() if p is not None}
            results = await deliverer.deliver_many(ready, profiles=profiles, paced=True,
                                                   leave_contested=True)  # fmt: skip
            return len([json_bytes(o.as_dict()) for outs in results for o in outs])

        await one_batch(events[:batch_size])  # warm: scripts loaded, templates compiled
        with Timed(profile) as timed:
            records = 0
            for start in range(batch_size, count + batch_size, batch_size):
                records += await one_batch(events[start : start + batch_size])
        print(f"{count:,} events ({records:,} deliveries records): "
              f"{timed.cpu / count * 1e6:.0f} µs of CPU an event, "
              f"{timed.wall / count * 1e6:.0f} µs of wall time")  # fmt: skip
        timed.print_profile()
    finally:
        await redis.aclose()
        await delete_prefix(settings.redis_url, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.batch, args.profile))


if __name__ == "__main__":
    main()
