"""The operators' dashboard: ``GET /api/dashboard`` (JSON) and the page ``/dashboard``, which
redraws itself every 15 seconds.

Throughput, outcomes per channel with the failure rate, and latency, over the last hour (by
minute) and the last day (by hour), from the counts every worker adds to Redis (``app.state.series``);
the lag per topic as the broker says it now (``wiring.health``); the deferred queue; held sends
and dead letters in the caller's districts; each rule's last day with its trend. Charts are SVG
drawn here, each with its numbers in a table beside it for screen readers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aiohttp import web

from app.intake.events import districts_of
from console.api import routes
from console.auth import Caller, guarded, services
from wiring.dlq import read_dead_letters
from wiring.health import SOURCE_TOPICS, probe_for

CHANNELS = ("sms", "email")


def _rate(failed: float, sent: float) -> float | None:
    return round(failed / (failed + sent), 4) if failed + sent else None


def _points(slots: list[tuple[int, dict[str, float]]]) -> list[dict[str, Any]]:
    out = []
    for start, counts in slots:
        point: dict[str, Any] = {
            "start": start,
            "events": sum(v for k, v in counts.items() if k.startswith("events:")),
        }
        for channel in CHANNELS:
            point[f"sent_{channel}"] = counts.get(f"sent:{channel}", 0)
            point[f"failed_{channel}"] = counts.get(f"failed:{channel}", 0)
            n = counts.get(f"latency_count:{channel}", 0)
            point[f"latency_{channel}"] = (
                round(counts.get(f"latency_sum:{channel}", 0) / n, 3) if n else None
            )
        out.append(point)
    return out


def _totals(slots: list[tuple[int, dict[str, float]]]) -> dict[str, Any]:
    summed: dict[str, float] = defaultdict(float)
    for _, counts in slots:
        for key, value in counts.items():
            summed[key] += value
    totals: dict[str, Any] = {"events": {k.removeprefix("events:"): int(v) for k, v in summed.items()
                                         if k.startswith("events:")}}  # fmt: skip
    for channel in CHANNELS:
        sent, failed = summed.get(f"sent:{channel}", 0), summed.get(f"failed:{channel}", 0)
        n = summed.get(f"latency_count:{channel}", 0)
        totals[channel] = {"sent": int(sent), "failed": int(failed),
                           "deferred": int(summed.get(f"deferred:{channel}", 0)),
                           "suppressed": int(summed.get(f"suppressed:{channel}", 0)),
                           "failure_rate": _rate(failed, sent),
                           "mean_latency": round(summed.get(f"latency_sum:{channel}", 0) / n, 3) if n else None}  # fmt: skip
    return totals


def _rules(day: list[tuple[int, dict[str, float]]]) -> list[dict[str, Any]]:
    """Each rule's last 24 hours: sent, suppressed, failed; the trend is the last hour's sends
    against the mean hour before it."""
    per_rule: dict[str, dict[str, Any]] = {}
    for i, (_, counts) in enumerate(day):
        for key, value in counts.items():
            if not key.startswith("rule:"):
                continue
            rule, _, status = key.removeprefix("rule:").rpartition(":")
            entry = per_rule.setdefault(rule, {"rule": rule, "sent": 0, "suppressed": 0, "failed": 0,
                                               "hourly_sent": [0] * len(day)})  # fmt: skip
            if status in ("sent", "suppressed", "failed"):
                entry[status] += int(value)
            if status == "sent":
                entry["hourly_sent"][i] += int(value)
    for entry in per_rule.values():
        hourly = entry["hourly_sent"]
        before = hourly[:-1]
        mean = sum(before) / len(before) if before else 0
        entry["trend"] = "up" if hourly[-1] > 1.5 * mean and hourly[-1] > 0 else (
            "down" if mean > 0 and hourly[-1] < 0.5 * mean else "steady")  # fmt: skip
    return sorted(per_rule.values(), key=lambda e: -e["sent"])


async def dashboard_data(request: web.Request, caller: Caller) -> dict[str, Any]:
    rt = services(request).runtime
    hour = await rt.state.series("m", 60)
    day = await rt.state.series("h", 24)
    health = await probe_for(rt.settings).check(rt)
    lag: dict[str, int] = defaultdict(int)
    for (topic, _), behind in health.lag.items():
        lag[topic] += behind
    held = [h for h in await rt.guard.held() if caller.account.covers(districts_of(h["event"]))]
    letters = await read_dead_letters(rt.settings.kafka_servers)
    dead: dict[str, int] = defaultdict(int)
    for letter in letters:
        dead[letter.topic] += 1
    return {
        "hour": {"points": _points(hour), "totals": _totals(hour)},
        "day": {"points": _points(day), "totals": _totals(day)},
        "lag": {topic: lag.get(topic, 0) for topic in SOURCE_TOPICS}
        if health.kafka == "ok"
        else None,
        "kafka": health.kafka,
        "deferred": await rt.state.deferred_count(),
        "held": len(held),
        "dead_letters": dict(dead),
        "rules": _rules(day),
    }


@routes.get("/api/dashboard")
@guarded("operator")
async def dashboard_api(request: web.Request, caller: Caller) -> web.StreamResponse:
    return web.json_response(await dashboard_data(request, caller))


def spark(
    points: list[dict[str, Any]], field: str, width: int = 360, height: int = 60
) -> dict[str, Any]:
    """An SVG polyline of ``field`` over ``points`` (None as 0), with its largest value."""
    values = [float(p.get(field) or 0) for p in points]
    top = max(values) if values and max(values) > 0 else 1.0
    step = width / max(1, len(values) - 1)
    coords = " ".join(
        f"{i * step:.1f},{height - v / top * (height - 4) - 2:.1f}" for i, v in enumerate(values)
    )
    return {"coords": coords, "top": max(values) if values else 0, "width": width, "height": height}
