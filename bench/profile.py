"""Where a saturated worker spends its time: py-spy samples one `lifecycle worker` while it
handles a burst of events, then prints the functions by share of samples (own and inclusive).

    python -m bench.profile [--events 10000] [--rate 200] [--top 40]

Needs py-spy (`pip install py-spy`; it reads the worker's memory, so root or ptrace rights).
The raw samples (collapsed stacks, for flamegraph.pl or speedscope) go to var/bench-logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.harness import Workers, cpu_seconds
from bench.pipeline import LOGS, delivered, event, outbox_times, produce, stack


def summarise(samples: Path, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in samples.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    rows = [f"{total} samples", "", "own time:"]
    rows += [f"  {n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    rows += ["", "inclusive:"]
    rows += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(rows)


async def run(count: int, rate: int, top: int) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: pip install py-spy")
    samples = LOGS / "profile.txt"
    outbox = Path(tempfile.mkdtemp()) / "sms.jsonl"
    async with stack() as settings:
        settings = settings.with_(sms_url=f"file://{outbox}")
        workers = Workers(settings, LOGS / "profile")
        proc = workers.start()
        try:
            assert await workers.ready(proc, 120), f"worker not ready; see {workers.log(proc)}"
            await asyncio.sleep(3)
            before = cpu_seconds(proc.pid)
            sampler = subprocess.Popen([spy, "record", "--pid", str(proc.pid), "--format", "raw",
                                        "--rate", str(rate), "-o", str(samples)])  # fmt: skip
            await asyncio.sleep(1)
            await produce(settings.kafka_servers[0], "life-events", [event(i, "prof") for i in range(count)])  # fmt: skip
            assert await delivered(outbox, count)
            used = cpu_seconds(proc.pid) - before
            sampler.send_signal(signal.SIGINT)
            sampler.wait(60)
        finally:
            workers.stop_all()
    times = sorted(outbox_times(outbox).values())
    print(f"{count:,} events, {count / (times[-1] - times[0]):,.0f} events/s while sampled "
          f"(sampling slows the worker), {used / count * 1000:.2f} ms of worker CPU per event\n")  # fmt: skip
    print(summarise(samples, top))
    print(f"\nraw samples: {samples}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    started = time.monotonic()
    asyncio.run(run(args.events, args.rate, args.top))
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
