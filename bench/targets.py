"""Issue 14's targets beside what the benchmarks measured: reads ``bench/results/pipeline.json``,
``fanout.json`` and ``crash_recovery.json`` (as the last ``make bench`` left them), prints one
table, and writes ``bench/results/targets.json`` with each figure's ratio to its target (1.0 or
more: met).

    python -m bench.targets        # after python -m bench.pipeline, .crash_recovery, .fanout
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from app.core.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"


@dataclass
class Row:
    measure: str
    target: str
    value: float | None
    unit: str
    ratio: float | None  # value against target, oriented so that 1.0 or more is met
    source: str

    @property
    def met(self) -> bool:
        return self.ratio is not None and self.ratio >= 1.0


def at_least(measure: str, value: float | None, target: float, unit: str, source: str) -> Row:
    ratio = None if value is None else round(value / target, 3)
    return Row(measure, f"≥ {target:,g} {unit}", value, unit, ratio, source)


def at_most(measure: str, value: float | None, target: float, unit: str, source: str) -> Row:
    ratio = None if value is None else round(target / value, 3) if value else float("inf")
    return Row(measure, f"≤ {target:,g} {unit}", value, unit, ratio, source)


def none_of(measure: str, value: float | None, source: str) -> Row:
    ratio = None if value is None else 1.0 if value == 0 else 0.0
    return Row(measure, "0", value, "", ratio, source)


def read(name: str) -> dict[str, Any]:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def fanout_run(fanout: dict[str, Any], workers: int) -> dict[str, Any]:
    return next((r for r in fanout.get("runs", []) if r["workers"] == workers), {})


def rows(pipeline: dict[str, Any], fanout: dict[str, Any], crash: dict[str, Any]) -> list[Row]:
    scale = f"fanout.json: {fanout.get('matching', 0):,} of {fanout.get('profiles', 0):,}"
    one, two = fanout_run(fanout, 1), fanout_run(fanout, 2)
    first = next((p for p in pipeline.get("pipeline", []) if p["workers"] == 1), {})
    saturated = first.get("events_per_s")
    saturated_source = "pipeline.json"
    if len(first.get("runs", [])) > 1:  # the median of repeated runs: each run beside it
        each = ", ".join(f"{r['events_per_s']:,}" for r in first["runs"])
        saturated_source = f"pipeline.json: median of {len(first['runs'])} runs ({each})"
    bare = pipeline.get("bare_faust_per_s")
    p99 = next((o["p99_ms"] for o in pipeline.get("offered", [])
                if o["workers"] == 1 and o["offered_per_s"] == 1000), None)  # fmt: skip
    share = round(100 * saturated / bare, 1) if saturated and bare else None
    lost = None if not crash else crash["lost"] + crash["duplicated"]
    return [
        at_most("fan-out, 1 worker: last SMS handed over", one.get("last_s"), 10, "s", scale),
        at_least(
            "fan-out, 1 worker: recipients a second", one.get("per_second"), 10_000, "/s", scale
        ),  # fmt: skip
        at_most("fan-out, 1 worker: first SMS", one.get("first_s"), 1, "s", scale),
        at_least(
            "fan-out, 2 workers: recipients a second", two.get("per_second"), 10_000, "/s", scale
        ),  # fmt: skip
        at_least(
            "subject events, saturated, 1 worker", saturated, 5_000, "events/s", saturated_source
        ),  # fmt: skip
        at_least("  as a share of bare Faust in the same run", share, 40, "%", "pipeline.json"),
        at_most("p99 at 1,000 events/s, 1 worker", p99, 50, "ms", "pipeline.json"),
        at_least("bare Faust as the worker runs it", bare, 30_000, "events/s", "pipeline.json"),
        at_most(
            "Redis per profile, with its indexes",
            fanout.get("redis_bytes_per_profile"),
            400,
            "bytes",
            scale,
        ),  # fmt: skip
        none_of(
            "crash, kills mid-batch and mid-chunk: lost + dup.",
            lost,
            "crash_recovery.json",
        ),
    ]


def table(found: list[Row]) -> str:
    lines = [f"{'measure':<52} {'target':>18} {'measured':>16} {'ratio':>6}  met"]
    for row in found:
        value = "—" if row.value is None else f"{row.value:,g} {row.unit}".strip()
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(f"{row.measure:<52} {row.target:>18} {value:>16} {ratio:>6}  "
                     f"{'yes' if row.met else 'no'}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    found = rows(read("pipeline.json"), read("fanout.json"), read("crash_recovery.json"))
    print(table(found))
    result = {
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "command": "make bench",
        "targets": [asdict(r) | {"met": r.met} for r in found],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(RESULTS / "targets.json").write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n"
    )


if __name__ == "__main__":
    main()
