"""A city-wide warning on paper and in a simulation: how many workers, `fanout` partitions and
Redis shards a city needs, from the per-recipient costs ``bench.fanout`` measured here.

    python -m bench.scale [--residents 17600000] [--enterprises 3200000] [--minutes 15]
                          [--gateway 5000,8000] [--core-share 0.8] [--shard-gb 16]

The simulation plays the fan-out as the worker runs it: the audience cut into chunks of
``LIFECYCLE_FANOUT_CHUNK``, each worker taking the next chunk when it is free and spending the
measured worker CPU per recipient on it (at ``--core-share`` of a core), every SMS through the
shared pacing of ``LIFECYCLE_SMS_RATE`` (the gateway's cap). It reports when the last SMS is
handed over and how many were handed over within ``--minutes``. Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from app.core.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
REDIS_CORE_SHARE = 0.7  # of its one thread, leaving room for reads, the console and spikes


def simulate(recipients: int, workers: int, cpu_us: float, core_share: float, gateway: float,
             chunk: int = 500) -> list[tuple[float, float, int]]:  # fmt: skip
    """Each chunk's (start of its hand-off, end of its hand-off, recipients), in seconds from the
    warning. A worker plans and claims its chunk (CPU), then hands it over at the shared pacing;
    it takes the next chunk once it is done, as the chunk agent does."""
    per_worker = core_share * 1e6 / cpu_us  # recipients a second one worker plans and delivers
    free_at = [0.0] * workers  # when each worker is done with its current chunk
    gateway_free = 0.0  # when the shared pacing lets the next SMS go
    handed = []
    for c in range(math.ceil(recipients / chunk)):
        size = min(chunk, recipients - c * chunk)
        w = min(range(workers), key=free_at.__getitem__)
        start = max(free_at[w] + size / per_worker, gateway_free)
        gateway_free = free_at[w] = start + size / gateway
        handed.append((start, gateway_free, size))
    return handed


def summary(handed: list[tuple[float, float, int]], gateway: float, horizon: float
            ) -> tuple[float, float, int]:  # fmt: skip
    """(first hand-off s, last hand-off s, recipients handed over within ``horizon`` s)."""
    first = min(start for start, _, _ in handed) + 1 / gateway
    last = max(end for _, end, _ in handed)
    done = sum(size if end <= horizon else max(0, min(size, int((horizon - start) * gateway)))
               for start, end, size in handed)  # fmt: skip
    return first, last, done


def workers_to_saturate(recipients: int, cpu_us: float, core_share: float, gateway: float) -> int:
    """The fewest workers that keep the gateway busy: the last SMS within 5 % of what the
    gateway alone allows. More than ``gateway / per-worker rate``, since a worker waiting for
    the pacing with its chunk does no planning meanwhile."""
    floor = recipients / gateway
    workers = max(1, math.floor(gateway * cpu_us / (core_share * 1e6)))
    while True:
        handed = simulate(recipients, workers, cpu_us, core_share, gateway)
        if max(end for _, end, _ in handed) <= 1.05 * floor or workers >= 1000:
            return workers
        workers += 1


def plan(measured: dict[str, Any], residents: int, enterprises: int, minutes: float,
         gateways: list[float], core_share: float, shard_gb: float) -> dict[str, Any]:  # fmt: skip
    run = next(r for r in measured["runs"] if r["workers"] == 1)
    cpu_us, redis_us = run["worker_cpu_us_per_recipient"], run["redis_cpu_us_per_recipient"]
    state_bytes, profile_bytes = (
        run["redis_bytes_per_recipient"],
        measured["redis_bytes_per_profile"],
    )
    recipients = residents + enterprises  # everyone: one contact an enterprise
    horizon = minutes * 60
    rows = []
    for gateway in [*gateways, recipients / horizon]:
        workers = workers_to_saturate(recipients, cpu_us, core_share, gateway)
        first, last, done = summary(simulate(recipients, workers, cpu_us, core_share, gateway),
                                    gateway, horizon)  # fmt: skip
        fewer = summary(simulate(recipients, max(1, workers - 1), cpu_us, core_share, gateway),
                        gateway, horizon)[1]  # fmt: skip
        rows.append({
            "gateway_sms_per_s": round(gateway), "workers": workers,
            "fanout_partitions": max(8, 2 * workers),
            "redis_shards_for_cpu": math.ceil(gateway * redis_us / 1e6 / REDIS_CORE_SHARE),
            "first_sms_s": round(first, 1), "last_sms_min": round(last / 60, 1),
            "handed_over_within": done, "with_one_worker_fewer_last_min": round(fewer / 60, 1),
        })  # fmt: skip
    memory_gb = (recipients * profile_bytes + recipients * state_bytes) / 1e9
    return {
        "recipients": recipients, "minutes": minutes, "measured": {
            "worker_cpu_us_per_recipient": cpu_us, "redis_cpu_us_per_recipient": redis_us,
            "redis_bytes_per_recipient": state_bytes, "redis_bytes_per_profile": profile_bytes,
            "core_share": core_share},
        "profiles_gb": round(recipients * profile_bytes / 1e9, 1),
        "delivery_state_gb_per_warning": round(recipients * state_bytes / 1e9, 1),
        "redis_shards_for_memory": math.ceil(memory_gb / shard_gb),
        "rows": rows,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=17_600_000)
    parser.add_argument("--enterprises", type=int, default=3_200_000)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--gateway", default="5000,8000", help="SMS a second the gateways take")
    parser.add_argument("--core-share", type=float, default=0.8,
                        help="share of a core a worker gets (the rest: its consumer, the OS)")  # fmt: skip
    parser.add_argument("--shard-gb", type=float, default=16, help="memory of one Redis shard")
    args = parser.parse_args()
    measured = json.loads((RESULTS / "fanout.json").read_text())
    result = plan(measured, args.residents, args.enterprises, args.minutes,
                  [float(g) for g in args.gateway.split(",")], args.core_share, args.shard_gb)  # fmt: skip
    print(f"{result['recipients']:,} recipients; measured per recipient: {result['measured']}")
    print(f"profiles {result['profiles_gb']} GB; delivery state of one warning "
          f"{result['delivery_state_gb_per_warning']} GB (30 days); Redis shards for memory: "
          f"{result['redis_shards_for_memory']} of {args.shard_gb:g} GB")  # fmt: skip
    print(f"{'gateway /s':>10} {'workers':>8} {'partitions':>10} {'shards(cpu)':>11} "
          f"{'first s':>8} {'last min':>9} {'in ' + str(args.minutes) + ' min':>12} {'1 fewer':>8}")  # fmt: skip
    for r in result["rows"]:
        print(f"{r['gateway_sms_per_s']:>10,} {r['workers']:>8} {r['fanout_partitions']:>10} "
              f"{r['redis_shards_for_cpu']:>11} {r['first_sms_s']:>8} {r['last_sms_min']:>9} "
              f"{r['handed_over_within']:>12,} {r['with_one_worker_fewer_last_min']:>8}")  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
