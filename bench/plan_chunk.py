"""A warning's fan-out, in one process, without Kafka or Faust: the planning of a CAP warning
into chunk commands, then each chunk as the `fanout` agent handles it (read the command, read
the chunk's profiles and the warning's registry, plan and render, record the plans, deliver the
SMS: claims, policy, the outbox gateway, status writes) and its `deliveries` records encoded.
CPU time a recipient, for changes too small to see end to end on a noisy machine: run it from
each checkout in turn, several times, alternately.

    python -m bench.plan_chunk [--recipients 20000] [--profile]
    (cd /tmp/wt-before && python -m bench.plan_chunk); python -m bench.plan_chunk

Redis: ``LIFECYCLE_REDIS_URL`` (the shared one by default), under a key prefix of its own that it
deletes afterwards. ``--profile`` prints cProfile's top functions (the figures then include its
overhead).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

from app.core.codec import json_bytes
from app.intake.cap import alert_events
from app.planning.planner import refuse_oversized
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from bench.fanout import cap_document, enterprise
from bench.harness import Timed, in_process_settings
from tests.conftest import delete_prefix
from wiring.runtime import Runtime, make_redis


async def run(recipients: int, profile: bool, sort: str = "tottime") -> None:
    prefix = f"bench-pc-{secrets.token_hex(4)}:"
    settings = in_process_settings(prefix, blast_ceiling=10 * recipients, blast_first_run=0)
    runtime = Runtime.build(settings)
    deliverer = runtime.deliverer
    assert deliverer is not None
    redis = make_redis(settings)
    try:
        store = ProfileStore(redis, prefix)
        for start in range(0, recipients, 2000):
            await store.insert_new([parse_profile(enterprise(i, recipients))
                                    for i in range(start, min(start + 2000, recipients))])  # fmt: skip
        planner = runtime.planner

        async def commands(identifier: str) -> list[bytes]:
            [event] = alert_events(cap_document(identifier))
            outcome = await planner.plan_event(event)
            return [value for _, value in outcome.commands]

        async def one_chunk(raw: bytes) -> int:
            command, event, rule = planner.read_chunk(raw)
            chunk = await planner.plan_chunk_command(command, event, rule)
            refuse_oversized(chunk, lambda n: False)
            await planner.record([chunk], command.get("chunk"))
            results = await deliverer.deliver_many(chunk.notifications, profiles=chunk.profiles,
                                                   paced=True, leave_contested=True)  # fmt: skip
            return len([json_bytes(o.as_dict()) for outs in results for o in outs])

        for raw in (await commands(f"BENCH-PC-WARM-{secrets.token_hex(3)}"))[:1]:
            await one_chunk(raw)  # warm: scripts loaded, templates compiled
        with Timed(profile) as timed:
            chunks = await commands(f"BENCH-PC-{secrets.token_hex(3)}")
            records = 0
            for raw in chunks:
                records += await one_chunk(raw)
        print(f"{recipients:,} recipients in {len(chunks)} chunks ({records:,} deliveries "
              f"records): {timed.cpu / recipients * 1e6:.0f} µs of CPU a recipient, "
              f"{timed.wall / recipients * 1e6:.0f} µs of wall time")  # fmt: skip
        timed.print_profile(sort)
    finally:
        await redis.aclose()
        await delete_prefix(settings.redis_url, prefix)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime", help="cProfile's order: tottime, cumulative")
    args = parser.parse_args()
    asyncio.run(run(args.recipients, args.profile, args.sort))


if __name__ == "__main__":
    main()
