"""What producing a record costs the worker: ``AIOKafkaProducer.send`` a record, against
``wiring.produce.send_many`` (one batch builder a partition), alternately on one embedded broker
(these machines are noisy). Records shaped like `deliveries` records: a notification id as key,
some 300 bytes of JSON, two a key, 8 partitions, the worker's partitioner and batch size.

    python -m bench.produce [--records 20000] [--rounds 5] [--batch-bytes 16384]

Prints the process CPU and the wall time a record of each way, each round and the medians;
writes bench/results/produce.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaProducer

from app.core.settings import PROJECT_ROOT
from bench.pipeline import LOGS
from devstack.stack import Broker
from wiring.faust_app import PRODUCER_BATCH_BYTES
from wiring.kafka import ensure_topics
from wiring.partitioner import KeyPartitioner
from wiring.produce import send_many

RESULTS = PROJECT_ROOT / "bench" / "results" / "produce.json"
TOPIC = "bench-produce"


async def measure(action: Callable[[], Awaitable[None]], count: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await action()
    return ((time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6)


async def run(count: int, rounds: int, batch_bytes: int) -> None:
    broker = Broker.start(LOGS)
    try:
        bootstrap = broker.url.removeprefix("kafka://")
        ensure_topics([bootstrap], [TOPIC], 8)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, partitioner=KeyPartitioner(),
                                    acks=-1, max_batch_size=batch_bytes)  # fmt: skip
        await producer.start()
        value = json.dumps({"notification_id": "x" * 40, "status": "sent", "channel": "sms",
                            "category": "warning", "rule_id": "gale-warning-outdoor-ads",
                            "event_id": "cap-" + "0" * 36, "recipient": "138****0000",
                            "attempt": 1, "at": "2026-12-04T01:00:00.000Z",
                            "provider_ref": "outbox-" + "0" * 24}).encode()  # fmt: skip
        # two a notification, as its "sending" and "sent" are
        records = [(TOPIC, f"n-{i // 2:012d}-{i // 2 * 7919:08x}".encode(), value)
                   for i in range(count)]  # fmt: skip

        async def one_by_one() -> None:
            for topic, key, v in records:
                await producer.send(topic, v, key=key)
            await producer.flush()

        async def batched() -> None:
            await send_many(producer, records)
            await producer.flush()

        ways = {"send": one_by_one, "send_many": batched}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        await batched()  # warm: metadata, connections
        for i in range(rounds):
            order = list(ways) if i % 2 == 0 else list(reversed(ways))
            for name in order:
                cpu, wall = await measure(ways[name], count)
                runs[name].append((cpu, wall))
                print(f"round {i + 1}: {name:9} {cpu:5.1f} µs CPU, {wall:5.1f} µs wall a record")
        await producer.stop()
    finally:
        broker.stop()
    result: dict[str, object] = {"records": count, "rounds": rounds, "max_batch_bytes": batch_bytes}
    for name, values in runs.items():
        result[name] = {"cpu_us_per_record": round(statistics.median(c for c, _ in values), 1),
                        "wall_us_per_record": round(statistics.median(w for _, w in values), 1)}  # fmt: skip
        print(f"median {name:9} {result[name]['cpu_us_per_record']:5.1f} µs CPU, "
              f"{result[name]['wall_us_per_record']:5.1f} µs wall a record")  # fmt: skip
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-bytes", type=int, default=PRODUCER_BATCH_BYTES,
                        help="the producer's max_batch_size (the worker's by default)")  # fmt: skip
    args = parser.parse_args()
    asyncio.run(run(args.records, args.rounds, args.batch_bytes))


if __name__ == "__main__":
    main()
