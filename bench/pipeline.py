"""Side by side on the same pre-generated events, on the embedded broker and a real Redis:

- raw aiokafka consumption (the client's ceiling);
- a bare Faust agent that only counts (the framework's ceiling), out of the box and as the worker
  runs Faust;
- the full pipeline (validate, join the profile, evaluate rules, render, deliver to the SMS
  outbox), saturated, with one worker and with two: the events produced at once (in batches, so
  that the load takes little of the cores the worker shares) for it to drain, 30,000 of them,
  some six seconds of draining on a fast hour (10,000 until 2026-12-05, two seconds, in which
  the first and last batches and the load's own production weighed more); each worker count
  three times (``--repeats``), the counts alternately, and the median reported with each run
  beside it (one run moved ±20 % within an hour on this machine; until 2026-12-05 09:00 UTC
  one run each);
- the full pipeline at fixed offered loads: latency from an event's publication to its SMS being
  handed to the gateway, p50/p95/p99;

each pipeline run (saturated, or at one offered load) on a stack of its own (broker, Redis, SMTP
sink: 2 s to start), since the embedded broker hands records over later the more batches a
topic holds (a run after others measured their history; README, Latency after the runs before);
- the worker's peak memory.

Prints a table and writes bench/results/pipeline.json.

    python -m bench.pipeline [--events 30000] [--bare-events 100000] [--loads 100,1000,5000]
                             [--seconds 10] [--workers 1,2] [--repeats 3] [--offered-workers 1,2]
                             [--fetch-wait 20] [--event-loop uvloop]
    python -m bench.pipeline --compare /tmp/wt-before,/tmp/wt-after --rounds 3 \
                             [--events 10000] [--loads 100,1000]
    python -m bench.pipeline --compare .+LIFECYCLE_DELIVER_WHERE_PLANNED=off,. --rounds 3

``--compare`` runs one worker of each variant in turn, each run on a stack of its own, alternately (ABAB…, then
BABA… every other round): saturated, then at each offered load. A variant is a checkout (another
revision's, made with ``git worktree add``) and, after ``+``, environment for its worker
(``KEY=VALUE``, several joined by ``+``). These machines are noisy, so a change is measured
against its parent side by side. It prints each run and the medians and writes
bench/results/pipeline-compare.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.core.settings import PROJECT_ROOT, Settings, to_environ
from app.core.timestamps import local_iso
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from bench.harness import OutboxTail, Variant, Workers, cpu_seconds, redis_usage, wait_until
from devstack.stack import (
    Broker,
    RedisServer,
    SmtpSink,
    free_port,
    spawn,
    stop_process,
)
from topics import ALL as ALL_TOPICS
from wiring.faust_app import PRODUCER_BATCH_BYTES
from wiring.kafka import ensure_topics
from wiring.produce import send_many
from wiring.runtime import make_redis

RESULTS = PROJECT_ROOT / "bench" / "results"
LOGS = PROJECT_ROOT / "var" / "bench-logs"


def people(count: int) -> list[dict[str, Any]]:
    """Residents with a mobile and no e-mail: one event, one SMS."""
    return [{"id": f"P-PL{i:07d}", "kind": "person", "name": f"居民{i}", "district": "440308",
             "mobile": f"+86137{i:08d}"} for i in range(count)]  # fmt: skip


PEOPLE = 20_000


def event(i: int, run: str) -> tuple[bytes, bytes]:
    doc = {"id": f"PL-{run}-{i:07d}", "type": "graduate.reception.approved", "occurred_at": local_iso(-3600),
           "source": "bench", "subject": {"kind": "person", "id": f"P-PL{i % PEOPLE:07d}"}, "district": "440308",
           "data": {"approval_no": f"A{i}", "school": "深圳大学", "receiving_unit": "盐田港集团", "approved_on": "2026-07-01"}}  # fmt: skip
    return doc["subject"]["id"].encode(), json.dumps(doc, ensure_ascii=False).encode()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]],
                  batched: bool = False) -> None:  # fmt: skip
    """``records`` (key, value) produced to ``topic``, one ``send`` each, or ``batched``: a batch
    builder a partition (``wiring.produce.send_many``, a fifth of the CPU), so that the load
    takes less of the cores the measured worker shares. Either way the key's partition is the
    default partitioner's, as a producer elsewhere would choose it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_batch_size=PRODUCER_BATCH_BYTES)  # fmt: skip
    await producer.start()
    try:
        if batched:
            await send_many(producer, [(topic, k, v) for k, v in records])
            await producer.flush()
            return
        batch = [await producer.send(topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def raw_aiokafka(bootstrap: str, topic: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for p in sorted(consumer.partitions_for_topic(topic) or await _parts(consumer, topic))
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, started = 0, time.monotonic()
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(v) for v in batch.values())
        return count / (time.monotonic() - started)
    finally:
        await consumer.stop()


async def _parts(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer.topics()
    return consumer.partitions_for_topic(topic) or set()


async def bare_faust(settings: Settings, topic: str, count: int, mode: str = "worker") -> float:
    """Events/s of a bare counting agent; ``mode`` is ``worker`` (Faust as the worker runs it) or
    ``default`` (Faust out of the box); see bench/bare_faust.py."""
    out = Path(tempfile.mkdtemp()) / "bare.txt"
    env = {**os.environ, **to_environ(settings), "BENCH_TOPIC": topic, "BENCH_COUNT": str(count), "BENCH_OUT": str(out),
           "BENCH_WEB_PORT": str(free_port()), "BENCH_FAUST_MODE": mode, "BENCH_APP": f"bench-bare-{mode}-{out.parent.name}"}  # fmt: skip
    proc = spawn([sys.executable, "-m", "bench.bare_faust", "worker", "-l", "warn"], LOGS / f"bare-faust-{mode}.log",
                 env=env, cwd=PROJECT_ROOT)  # fmt: skip
    try:
        finished = await wait_until(
            lambda: out.exists() or proc.poll() is not None, timeout=300, every=0.2
        )
        assert finished and out.exists(), (
            f"the bare agent did not finish; see {LOGS / f'bare-faust-{mode}.log'}"
        )
        first, last = (float(x) for x in out.read_text().split())
        return count / (last - first)
    finally:
        stop_process(proc)


async def delivered(outbox: Path, count: int, timeout: float = 1200) -> bool:
    """Whether ``count`` events' SMS reached the outbox within ``timeout`` s: its lines counted
    as they come, and the events told apart (``outbox_times``) only once there are enough."""
    tail, lines = OutboxTail(outbox), 0

    def enough() -> bool:  # parsing the whole outbox twice a second took a tenth of a core
        nonlocal lines
        lines += len(tail.new_lines())
        return lines >= count and len(outbox_times(outbox)) >= count

    return await wait_until(enough, timeout=timeout, every=0.5)


def outbox_times(outbox: Path) -> dict[str, float]:
    """event id → when its SMS was handed over; complete lines only (a worker may be mid-write)."""
    if not outbox.exists():
        return {}
    raw = outbox.read_bytes()
    times = {}
    for line in raw[: raw.rfind(b"\n") + 1].splitlines():
        record = json.loads(line)
        times[record["event_id"]] = datetime.fromisoformat(record["sent_at"]).timestamp()
    return times


async def start_workers(workers: Workers, count: int) -> list[Any]:
    """Start ``count`` workers; return once each is consuming and the group has settled."""
    procs = [workers.start() for _ in range(count)]
    for proc in procs:
        assert await workers.ready(proc, 120), f"worker not ready; see {workers.log(proc)}"
    await asyncio.sleep(3)
    return procs


async def saturated(settings: Settings, workers_count: int, count: int, run: str,
                    variant: Variant | None = None) -> dict[str, Any]:  # fmt: skip
    outbox = Path(tempfile.mkdtemp()) / "sms.jsonl"
    settings = settings.with_(sms_url=f"file://{outbox}")
    workers = Workers(settings, LOGS / f"pipeline-{run}-{workers_count}w")
    if variant is not None:
        workers.code, workers.env = variant.code, dict(variant.env)
    records = [event(i, run) for i in range(count)]  # made before the workers run, not beside
    try:
        procs = await start_workers(workers, workers_count)
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        redis_before = (await redis_usage(settings.redis_url))[1]
        await produce(settings.kafka_servers[0], "life-events", records, batched=True)
        assert await delivered(outbox, count)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before  # the workers' CPU, less noisy
        redis_cpu = (await redis_usage(settings.redis_url))[1] - redis_before
        times = sorted(outbox_times(outbox).values())
        peak = max(_peak_rss_mb(p.pid) for p in procs)
        return {
            "workers": workers_count,
            "events_per_s": round(count / (times[-1] - times[0])),
            "worker_cpu_us_per_event": round(cpu / count * 1e6),
            "redis_cpu_us_per_event": round(redis_cpu / count * 1e6),
            "peak_rss_mb": peak,
        }
    finally:
        workers.stop_all()


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Saturated runs of one worker count as one: each figure the median of the runs' (the peak
    memory their largest), and the runs themselves under ``runs``, in the order they ran."""
    if not runs:
        raise ValueError("median_run: no run")
    out: dict[str, Any] = {"workers": runs[0]["workers"]}
    for key in ("events_per_s", "worker_cpu_us_per_event", "redis_cpu_us_per_event"):
        out[key] = round(statistics.median(r[key] for r in runs))
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["runs"] = runs
    return out


async def offered(settings: Settings, rate: int, seconds: float, run: str, workers_count: int = 1,
                  variant: Variant | None = None) -> dict[str, Any]:  # fmt: skip
    outbox = Path(tempfile.mkdtemp()) / "sms.jsonl"
    settings = settings.with_(sms_url=f"file://{outbox}")
    workers = Workers(settings, LOGS / f"offered-{run}-{rate}-{workers_count}w")
    if variant is not None:
        workers.code, workers.env = variant.code, dict(variant.env)
    try:
        procs = await start_workers(workers, workers_count)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers[0], linger_ms=1)
        await producer.start()
        published: dict[str, float] = {}
        total = int(rate * seconds)
        started = time.monotonic()
        for i in range(total):
            due = started + i / rate
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            key, value = event(i, run)
            published[f"PL-{run}-{i:07d}"] = time.time()
            await producer.send(topic="life-events", key=key, value=value)
        await producer.flush()
        await producer.stop()
        achieved = total / (time.monotonic() - started)
        assert await delivered(outbox, total)
        sent = outbox_times(outbox)
        latencies = sorted((sent[e] - t) * 1000 for e, t in published.items())
        q = statistics.quantiles(latencies, n=100)
        return {"offered_per_s": rate, "workers": workers_count, "achieved_offer_per_s": round(achieved),
                "events": total, "p50_ms": round(q[49], 1), "p95_ms": round(q[94], 1), "p99_ms": round(q[98], 1),
                "peak_rss_mb": max(_peak_rss_mb(p.pid) for p in procs)}  # fmt: skip
    finally:
        workers.stop_all()


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


@asynccontextmanager
async def stack(
    fetch_wait: int = Settings().fetch_max_wait_ms, event_loop: str = Settings().event_loop
) -> AsyncIterator[Settings]:
    """The embedded broker with the project's topics (and ``bench-raw``), a Redis of its own
    holding PEOPLE residents, and an SMTP sink: the settings a worker needs to use them."""
    broker = Broker.start(LOGS)
    redis = RedisServer.start(LOGS)
    sink = SmtpSink.start()
    settings = Settings(secret=secrets.token_urlsafe(32), kafka_url=broker.url, redis_url=redis.url, redis_prefix="pl:", smtp_url=sink.url,
                        partitions=8, quiet_hours="off", daily_cap=0, fetch_max_wait_ms=fetch_wait, event_loop=event_loop)  # fmt: skip
    try:
        names = [t.get_topic_name() for t in ALL_TOPICS] + ["bench-raw"]
        ensure_topics(settings.kafka_servers, names, settings.partitions)
        store_redis = make_redis(settings)
        await ProfileStore(store_redis, settings.redis_prefix).insert_new(
            [parse_profile(p) for p in people(PEOPLE)]
        )
        await store_redis.aclose()
        yield settings
    finally:
        sink.stop()
        redis.stop()
        broker.stop()


async def run(
    count: int,
    bare_count: int,
    loads: list[int],
    seconds: float,
    worker_counts: list[int],
    fetch_wait: int,
    event_loop: str,
    offered_workers: list[int],
    repeats: int = 3,
) -> dict[str, Any]:
    run_id = time.strftime("%H%M%S")
    async with stack(fetch_wait, event_loop) as settings:
        records = [event(i, "raw") for i in range(bare_count)]
        await produce(settings.kafka_servers[0], "bench-raw", records)
        result: dict[str, Any] = {
            "events": count,
            "events_read_bare": bare_count,
            "saturated_repeats": repeats,
            "machine": f"{os.cpu_count()} cores",
            "fetch_max_wait_ms": fetch_wait,
            "event_loop": settings.event_loop,
        }
        result["aiokafka_per_s"] = round(
            await raw_aiokafka(settings.kafka_servers[0], "bench-raw", bare_count)
        )
        print(f"raw aiokafka: {result['aiokafka_per_s']:,} events/s")
        result["bare_faust_default_per_s"] = round(
            await bare_faust(settings, "bench-raw", bare_count, "default")
        )
        print(
            f"bare Faust agent, Faust out of the box: {result['bare_faust_default_per_s']:,} events/s"
        )
        result["bare_faust_per_s"] = round(await bare_faust(settings, "bench-raw", bare_count))
        print(
            f"bare Faust agent, as the worker runs Faust: {result['bare_faust_per_s']:,} events/s"
        )
    # Each pipeline run on a stack of its own: the embedded broker hands records over later the
    # more batches a topic holds (6.4 ms at p50 empty, 52.6 after 45,000 single-record batches;
    # README, Latency after the runs before), so a run after others measured their history.
    # Each worker count's saturated run ``repeats`` times, the counts alternately (1, 2, then
    # 2, 1…): one run moved ±20 % within an hour on this machine, the median of three less.
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in worker_counts}
    for i in range(repeats):
        for n in worker_counts if i % 2 == 0 else list(reversed(worker_counts)):
            async with stack(fetch_wait, event_loop) as settings:
                one = await saturated(settings, n, count, f"{run_id}s{n}r{i}")
            runs[n].append(one)
            print(f"  saturated, {n} worker(s), run {i + 1} of {repeats}: "
                  f"{one['events_per_s']:,} events/s, {one['worker_cpu_us_per_event']:,} µs "
                  "of worker CPU an event")  # fmt: skip
    result["pipeline"] = [median_run(runs[n]) for n in worker_counts]
    for p in result["pipeline"]:
        print(
            f"full pipeline, {p['workers']} worker(s), median of {len(p['runs'])}: "
            f"{p['events_per_s']:,} events/s, {p['worker_cpu_us_per_event']:,} µs of worker CPU "
            f"an event, peak RSS {p['peak_rss_mb']} MB"
        )
    result["offered"] = []
    for n in offered_workers:
        for rate in loads:
            async with stack(fetch_wait, event_loop) as settings:
                result["offered"].append(
                    await offered(settings, rate, seconds, f"{run_id}o{rate}w{n}", n)
                )
    for o in result["offered"]:
        print(
            f"offered {o['offered_per_s']:,}/s to {o['workers']} worker(s): "
            f"p50 {o['p50_ms']} ms, p95 {o['p95_ms']} ms, p99 {o['p99_ms']} ms"
        )
    one = result["pipeline"][0]["events_per_s"]
    result["ratio_pipeline_to_bare_faust"] = round(one / result["bare_faust_per_s"], 3)
    result["ratio_bare_faust_to_aiokafka"] = round(
        result["bare_faust_per_s"] / result["aiokafka_per_s"], 3
    )
    print(f"pipeline / bare Faust: {result['ratio_pipeline_to_bare_faust']:.1%}; "
          f"bare Faust / aiokafka: {result['ratio_bare_faust_to_aiokafka']:.1%}")  # fmt: skip
    return result


async def compared(count: int, loads: list[int], seconds: float, fetch_wait: int,
                   event_loop: str, variants: list[Variant], rounds: int) -> dict[str, Any]:  # fmt: skip
    """One worker of each variant in turn, ``rounds`` times: saturated, then each offered load."""
    run_id = time.strftime("%H%M%S")
    runs: dict[str, list[dict[str, Any]]] = {v.spec: [] for v in variants}
    for i in range(rounds):  # each run on a stack of its own (see ``run``)
        for variant in variants if i % 2 == 0 else list(reversed(variants)):
            tag = f"{run_id}c{i}{variants.index(variant)}"
            async with stack(fetch_wait, event_loop) as settings:
                one = await saturated(settings, 1, count, f"{tag}s", variant)
            one["offered"] = []
            for rate in loads:
                async with stack(fetch_wait, event_loop) as settings:
                    one["offered"].append(
                        await offered(settings, rate, seconds, f"{tag}o{rate}", 1, variant)
                    )
            runs[variant.spec].append(one)
            print(f"{variant.spec}: {one['events_per_s']:,} events/s, "
                  f"{one['worker_cpu_us_per_event']:,} µs of worker CPU an event, "
                  f"{one['redis_cpu_us_per_event']:,} µs of Redis CPU; " +
                  "; ".join(f"p99 at {o['offered_per_s']:,}/s {o['p99_ms']} ms "
                            f"(p50 {o['p50_ms']})" for o in one["offered"]))  # fmt: skip
    out: dict[str, Any] = {"events": count, "machine": f"{os.cpu_count()} cores",
                           "rounds": rounds, "variants": []}  # fmt: skip
    for spec, results in runs.items():
        median = {
            "events_per_s": statistics.median(r["events_per_s"] for r in results),
            "worker_cpu_us_per_event": statistics.median(r["worker_cpu_us_per_event"] for r in results),
            "redis_cpu_us_per_event": statistics.median(r["redis_cpu_us_per_event"] for r in results),
        }  # fmt: skip
        for j, rate in enumerate(loads):
            for q in ("p50_ms", "p99_ms"):
                median[f"{q[:3]}_at_{rate}_ms"] = statistics.median(
                    r["offered"][j][q] for r in results
                )
        print(f"median {spec}: " + ", ".join(f"{k} {v:,.0f}" for k, v in median.items()))
        out["variants"].append({"variant": spec, "runs": results, "median": median})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000, help="events through the pipeline")
    parser.add_argument(
        "--bare-events", type=int, default=100_000, help="events read by aiokafka and bare Faust"
    )
    parser.add_argument("--loads", default="100,1000,5000")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", default="1,2", help="worker counts for the saturated runs")
    parser.add_argument("--repeats", type=int, default=3,
                        help="saturated runs of each worker count (their median is reported)")  # fmt: skip
    parser.add_argument(
        "--offered-workers", default="1,2", help="worker counts for the offered loads"
    )
    parser.add_argument("--out", default="pipeline.json", help="file name under bench/results/")
    parser.add_argument(
        "--fetch-wait",
        type=int,
        default=Settings().fetch_max_wait_ms,
        help="LIFECYCLE_FETCH_MAX_WAIT_MS",
    )
    parser.add_argument(
        "--event-loop",
        default=Settings().event_loop,
        help="LIFECYCLE_EVENT_LOOP: uvloop or asyncio",
    )
    parser.add_argument("--compare", default="", metavar="VARIANT,VARIANT",
                        help="one worker of each, alternately (see above)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="with --compare: how many rounds")
    args = parser.parse_args()
    loads = [int(x) for x in args.loads.split(",") if x]
    if args.compare:
        variants = [Variant.parse(v) for v in args.compare.split(",") if v]
        compare = asyncio.run(compared(args.events, loads, args.seconds, args.fetch_wait,
                                       args.event_loop, variants, args.rounds))  # fmt: skip
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "pipeline-compare.json").write_text(json.dumps(compare, indent=2) + "\n")
        return
    result = asyncio.run(
        run(
            args.events,
            args.bare_events,
            loads,
            args.seconds,
            [int(x) for x in args.workers.split(",")],
            args.fetch_wait,
            args.event_loop,
            [int(x) for x in args.offered_workers.split(",")],
            args.repeats,
        )
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
