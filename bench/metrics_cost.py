"""What the metrics cost: worker CPU per event on the saturated pipeline, counting on and off
(``LIFECYCLE_METRICS=off``), run alternately (on off, off on, on off, …) on one stack, since these
machines are noisy. Each run is a fresh worker handling a burst of events, each with one SMS.

    python -m bench.metrics_cost [--events 10000] [--rounds 3]

Prints each run and the medians; writes bench/results/metrics_cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from app.core.settings import PROJECT_ROOT
from bench.harness import Workers
from bench.pipeline import LOGS, delivered, event, outbox_times, produce, stack
from bench.profile import cpu_seconds

RESULTS = PROJECT_ROOT / "bench" / "results" / "metrics_cost.json"


async def one_run(settings, mode: str, count: int, run: str) -> dict[str, float]:
    outbox = Path(tempfile.mkdtemp()) / "sms.jsonl"
    workers = Workers(settings.with_(sms_url=f"file://{outbox}"), LOGS / f"metrics-{run}")
    workers.env = {"LIFECYCLE_METRICS": mode}
    proc = workers.start()
    try:
        assert await workers.ready(proc, 120), f"worker not ready; see {workers.log(proc)}"
        await asyncio.sleep(3)
        before = cpu_seconds(proc.pid)
        await produce(
            settings.kafka_servers[0], "life-events", [event(i, run) for i in range(count)]
        )
        assert await delivered(outbox, count)
        used = cpu_seconds(proc.pid) - before
    finally:
        workers.stop_all()
    times = sorted(outbox_times(outbox).values())
    return {"ms_cpu_per_event": used / count * 1000, "events_per_s": count / (times[-1] - times[0])}


async def run(count: int, rounds: int) -> None:
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    async with stack() as settings:
        for number in range(rounds):
            # A B B A …: a drift over the runs (the stack warming up) favours neither
            for mode in ("on", "off") if number % 2 == 0 else ("off", "on"):
                result = await one_run(settings, mode, count, f"m{number}{mode}")
                results[mode].append(result)
                print(f"round {number + 1}, metrics {mode:>3}: {result['ms_cpu_per_event']:.3f} ms CPU/event, "
                      f"{result['events_per_s']:,.0f} events/s", flush=True)  # fmt: skip
    on = statistics.median(r["ms_cpu_per_event"] for r in results["on"])
    off = statistics.median(r["ms_cpu_per_event"] for r in results["off"])
    print(f"\nmedian worker CPU per event: on {on:.3f} ms, off {off:.3f} ms: "
          f"metrics cost {100 * (on - off) / off:+.1f} %")  # fmt: skip
    RESULTS.write_text(json.dumps({"events": count, "rounds": rounds, "runs": results,
                                   "median_on_ms": on, "median_off_ms": off}, indent=2))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(run(args.events, args.rounds))
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
