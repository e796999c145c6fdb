"""A city-wide warning: N enterprise profiles in Redis, a CAP warning that matches M of them;
seconds from the CAP document to the last SMS handed to the outbox gateway, with one worker and
with two. Prints the figures and writes bench/results/fanout.json.

    python -m bench.fanout --profiles 1000000 --matching 100000
    python -m bench.fanout --profiles 200000 --matching 20000 --workers 1 --profile 200
    python -m bench.fanout --profiles 200000 --matching 50000 --workers 1 \
        --compare /tmp/wt-before,/tmp/wt-after --rounds 3
    python -m bench.fanout --profiles 200000 --matching 50000 --workers 1 \
        --compare /tmp/wt-before+LIFECYCLE_SMS_RATE=1000000,.+LIFECYCLE_SMS_RATE=1000000

``--compare`` runs workers from each checkout in turn (another revision's, e.g. made with
``git worktree add``; after ``+``, environment for its workers), alternately, ``--rounds``
times, on the same profiles: these machines are noisy, so a change is measured against its
parent side by side. It prints the medians and writes
bench/results/fanout-compare.json.

The profiles live in a Redis of the benchmark's own (so that its memory per profile is measured
alone): ``matching`` of them hold an outdoor-advertising permit in Yantian (440308), the rest are
spread over other districts or hold no permit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.core.redis_client import async_redis
from app.core.settings import PROJECT_ROOT, Settings
from app.core.timestamps import local_iso
from app.intake.cap import alert_events
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from bench.harness import Delivered, Variant, Workers, cpu_seconds, redis_usage
from bench.profile import summarise
from devstack.stack import Broker, RedisClusterServers, RedisServer, SmtpSink
from wiring.kafka import publish

RESULTS = PROJECT_ROOT / "bench" / "results"
OTHER_DISTRICTS = ["440303", "440304", "440305", "440306", "440307", "440309", "440310", "440311"]


def enterprise(i: int, matching: int) -> dict[str, Any]:
    if i < matching:
        district, permits = "440308", ["outdoor_advertising"]
    else:
        district = OTHER_DISTRICTS[i % len(OTHER_DISTRICTS)] if i % 3 else "440308"
        permits = ["outdoor_advertising"] if i % 3 else []
    return {"id": f"E{i:08d}", "kind": "enterprise", "name": f"企业{i}", "district": district,
            "industry": "advertising", "permits": permits,
            "contacts": [{"role": "safety_officer", "name": "安全员", "mobile": f"+86139{i:08d}"}]}  # fmt: skip


def cap_document(identifier: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            f"<identifier>{identifier}</identifier><sender>sz_meteo</sender><sent>{local_iso(-60)}</sent>"
            "<status>Actual</status><msgType>Alert</msgType><scope>Public</scope><info><language>zh-CN</language>"
            "<category>Met</category><event>台风</event><urgency>Immediate</urgency><severity>Extreme</severity>"
            "<certainty>Observed</certainty><expires>2099-01-01T00:00:00+08:00</expires>"
            "<headline>盐田区台风红色预警信号</headline><instruction>立即加固或拆除户外广告设施。</instruction>"
            "<area><areaDesc>盐田区</areaDesc><geocode><valueName>GB/T 2260</valueName><value>440308</value>"
            "</geocode></area></info></alert>").encode()  # fmt: skip


async def load(redis_url: str, prefix: str, count: int, matching: int) -> float:
    """Bulk-load the profiles; returns Redis memory per profile in bytes."""
    client = async_redis(redis_url)
    before = (await redis_usage(redis_url))[0]
    store = ProfileStore(client, prefix)
    started = time.monotonic()
    for start in range(0, count, 2000):
        await store.insert_new(
            [parse_profile(enterprise(i, matching)) for i in range(start, min(start + 2000, count))]
        )
    after = (await redis_usage(redis_url))[0]
    await client.aclose()
    print(f"loaded {count:,} profiles in {time.monotonic() - started:.0f} s")
    return (after - before) / count


async def one_run(settings: Settings, workers_count: int, matching: int, run: str, logs: Path,
                  profile: int = 0, code: Path = PROJECT_ROOT, env: dict[str, str] | None = None
                  ) -> dict[str, float]:  # fmt: skip
    sink = SmtpSink.start()
    outbox = Path(tempfile.mkdtemp(prefix="fanout-")) / "sms.jsonl"
    settings = settings.with_(smtp_url=sink.url, sms_url=f"file://{outbox}")
    workers = Workers(settings, logs / f"{run}-{workers_count}w", code=code, env=env or {})
    seen = Delivered(outbox, sink)
    try:
        procs = [workers.start() for _ in range(workers_count)]
        for proc in procs:
            assert await workers.ready(proc, timeout=120), "a worker did not start"
        await asyncio.sleep(3)  # let the group settle
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        redis_before = await redis_usage(settings.redis_url)
        sampler = spy(procs[0].pid, profile, logs / "fanout-profile.txt") if profile else None
        started = time.monotonic()
        events = alert_events(cap_document(f"BENCH-{run}-{workers_count}"))
        await asyncio.to_thread(publish, settings.kafka_servers, events)
        first = None
        while seen.refresh().total < matching:
            if first is None and seen.total:
                first = time.monotonic() - started
            await asyncio.sleep(0.1)
        last = time.monotonic() - started
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)
            sampler.wait(60)
            print(summarise(logs / "fanout-profile.txt", 45))
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
        await asyncio.sleep(1)  # the last records written after the hand-off
        redis_bytes, redis_cpu = (a - b for a, b in zip(await redis_usage(settings.redis_url),
                                                          redis_before, strict=True))  # fmt: skip
        return {"workers": workers_count, "notifications": matching, "first_s": round(first or last, 2),
                "last_s": round(last, 1), "per_second": round(matching / last),
                "worker_cpu_us_per_recipient": round(cpu / matching * 1e6),
                "redis_cpu_us_per_recipient": round(redis_cpu / matching * 1e6),
                "redis_bytes_per_recipient": round(redis_bytes / matching)}  # fmt: skip
    finally:
        workers.stop_all()
        sink.stop()


def spy(pid: int, rate: int, samples: Path) -> subprocess.Popen[bytes]:
    """py-spy recording a worker (see bench.profile), until interrupted."""
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(binary).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    return subprocess.Popen([binary, "record", "--pid", str(pid), "--format", "raw", "--rate",
                             str(rate), "-o", str(samples)])  # fmt: skip


async def run(count: int, matching: int, worker_counts: list[int], cluster: bool = False,
              profile: int = 0, compare: list[Variant] | None = None, rounds: int = 1
              ) -> dict[str, Any]:  # fmt: skip
    logs = PROJECT_ROOT / "var" / "bench-logs"
    broker = Broker.start(logs)
    own_redis: RedisServer | RedisClusterServers = (
        RedisClusterServers.start(logs) if cluster
        else RedisServer.start(logs, folder=Path(tempfile.mkdtemp(prefix="fanout-redis-")))
    )  # fmt: skip
    redis_url = own_redis.url
    try:
        per_profile = await load(redis_url, "b:", count, matching)
        runs = []
        for n in worker_counts:
            settings = Settings(secret=secrets.token_urlsafe(32), kafka_url=broker.url, redis_url=redis_url, redis_prefix="b:", partitions=8,
                                quiet_hours="off", daily_cap=0, blast_ceiling=10 * count,
                                blast_first_run=0)  # fmt: skip
            if compare:
                runs.extend(await compared(settings, n, matching, logs, compare, rounds))
                continue
            result = await one_run(settings, n, matching, time.strftime("%H%M%S"), logs, profile)
            print(f"{n} worker(s): {matching:,} warnings, first after {result['first_s']} s, "
                  f"last after {result['last_s']} s ({result['per_second']}/s), "
                  f"{result['worker_cpu_us_per_recipient']} µs of worker CPU and "
                  f"{result['redis_cpu_us_per_recipient']} µs of Redis CPU a recipient, "
                  f"{result['redis_bytes_per_recipient']} bytes of Redis a recipient")  # fmt: skip
            runs.append(result)
        return {
            "redis": "cluster of 3 masters" if cluster else "one Redis",
            "profiles": count,
            "matching": matching,
            "redis_bytes_per_profile": round(per_profile),
            "runs": runs,
        }
    finally:
        own_redis.stop()
        broker.stop()


async def compared(settings: Settings, workers_count: int, matching: int, logs: Path,
                   trees: list[Variant], rounds: int) -> list[dict[str, Any]]:  # fmt: skip
    """Each checkout's workers in turn, ``rounds`` times (ABAB…, then BABA… every other round);
    each run's figures and each checkout's medians."""
    measured: dict[Variant, list[dict[str, float]]] = {tree: [] for tree in trees}
    for i in range(rounds):
        for tree in trees if i % 2 == 0 else list(reversed(trees)):
            run_id = f"{time.strftime('%H%M%S')}-{len(measured[tree])}"
            result = await one_run(settings, workers_count, matching, run_id, logs, code=tree.code,
                                   env=dict(tree.env))  # fmt: skip
            measured[tree].append(result)
            print(f"{tree.spec}: {workers_count} worker(s), last after {result['last_s']} s "
                  f"({result['per_second']}/s), {result['worker_cpu_us_per_recipient']} µs of "
                  f"worker CPU a recipient")  # fmt: skip
    out = []
    for tree, results in measured.items():
        medians = {k: statistics.median(r[k] for r in results)
                   for k in ("last_s", "per_second", "worker_cpu_us_per_recipient")}  # fmt: skip
        print(f"median {tree.spec}: last after {medians['last_s']} s ({medians['per_second']:.0f}/s), "
              f"{medians['worker_cpu_us_per_recipient']:.0f} µs of worker CPU a recipient")  # fmt: skip
        out.append(
            {"code": tree.spec, "workers": workers_count, "runs": results, "median": medians}
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--matching", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2")
    parser.add_argument("--redis", choices=("single", "cluster"), default="single",
                        help="one Redis, or a Redis Cluster of three masters on this machine")  # fmt: skip
    parser.add_argument("--profile", type=int, default=0, metavar="RATE",
                        help="sample the (first) worker with py-spy at RATE a second and print "
                             "where its time went; the figures are then not written")  # fmt: skip
    parser.add_argument(
        "--compare",
        default="",
        metavar="DIR,DIR",
        help="checkouts whose workers to run alternately (see above)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: how many rounds")
    args = parser.parse_args()
    cluster = args.redis == "cluster"
    workers = [int(n) for n in args.workers.split(",")]
    trees = [Variant.parse(d) for d in args.compare.split(",") if d]
    result = asyncio.run(run(args.profiles, args.matching, workers, cluster, args.profile,
                             trees, args.rounds))  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.profile:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "fanout-cluster.json" if cluster else "fanout.json"
    if trees:
        name = "fanout-compare.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
