"""Why one profile was, or was not, reached by a broadcast: the hotline's "why didn't my mother get
the warning?" answered from what was recorded and the planner's own steps.

A broadcast (an event that a rule sends to an audience, not to its subject: a weather warning) is
remembered when a worker plans it, for the retention window:

    bc:log        sorted set: event id → when it was planned (seconds)
    bc:ev:{id}    JSON: the event, the rules (id → version) that addressed an audience, when

``explain`` then walks one profile through each rule the way planning walks an audience: is the
profile in the audience (its kind, permit, industry, tag, area, or inside the warning's shapes),
is the rule's condition true for it, which of its contacts the rule reaches, and which of them
has an address for each channel. What a profile reaches is planned as the worker would, so the
notification ids it gives are the ids the records are kept under; whether they were sent, and
why not (opted out, quiet hours, the daily cap, the gateway), is read from those records.

The walk uses the profile as it is now: a profile changed after the broadcast may answer
differently from what was planned then, and the result says so when the two disagree.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from app.core.codec import text
from app.core.geo import distance_km, in_polygon, shapes_of
from app.core.redis_client import mget
from app.intake.events import Event
from app.planning.model import Rule
from app.profiles.model import Profile
from app.profiles.validate import index_terms

RETENTION_SECONDS = 30 * 24 * 3600
KEPT = 500  # broadcasts remembered at most (a year of a district's warnings)


@dataclass(frozen=True)
class Broadcast:
    event: dict[str, Any]  # the event document, as received
    rules: dict[str, int]  # rule id → version, the rules that addressed an audience
    at: float  # when it was planned


class Broadcasts:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def remember(self, event: Event, rules: dict[str, int], now: float | None = None) -> None:
        """One write per broadcast event (a redelivery writes the same again)."""
        now = time.time() if now is None else now
        log = f"{self.prefix}bc:log"
        document = {"event": event.as_dict(), "rules": rules, "at": now}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{self.prefix}bc:ev:{event.id}", json.dumps(document, ensure_ascii=False),
                     ex=RETENTION_SECONDS)  # fmt: skip
            pipe.zadd(log, {event.id: now}, nx=True)
            pipe.zremrangebyscore(log, 0, now - RETENTION_SECONDS)
            pipe.zremrangebyrank(log, 0, -KEPT - 1)
            pipe.expire(log, RETENTION_SECONDS)
            await pipe.execute()

    async def recent(self, limit: int = 50) -> list[Broadcast]:
        """The latest broadcasts in the retention window, newest first."""
        since = time.time() - RETENTION_SECONDS
        ids: list[Any] = await self.redis.zrevrangebyscore(
            f"{self.prefix}bc:log", "+inf", since, start=0, num=limit
        )
        if not ids:
            return []
        raws = await mget(self.redis, [f"{self.prefix}bc:ev:{text(i)}" for i in ids])
        found = []
        for raw in raws:
            if raw:
                document = json.loads(raw)
                found.append(Broadcast(document["event"], document["rules"], document["at"]))
        return found


@dataclass
class Finding:
    """What one rule did, or would do, for one profile."""

    rule_id: str
    rule_version: int
    reached: bool
    reason: str  # in a sentence, for the hotline
    notifications: list[tuple[str, str]] = field(default_factory=list)  # (id, channel)


def outside_audience(rule: Rule, event: Event, profile: Profile) -> str | None:
    """Why ``profile`` is not in the audience the indexes give for ``rule`` (None: it is)."""
    assert rule.audience is not None
    audience = rule.audience
    terms = index_terms(profile)
    for term in audience.index_terms():
        if term not in terms:
            name, _, value = term.partition(":")
            held = sorted(t.partition(":")[2] for t in terms if t.startswith(f"{name}:"))
            has = f"it has {', '.join(held)}" if held else "it has none"
            return f"the rule reaches profiles with {name} {value}; {has}"
    if audience.shapes is None and audience.areas is None:
        return None
    context = {"event": event.as_dict(), "data": event.data}
    places: list[str] = []
    if audience.areas is not None:
        codes = audience.areas.evaluate(context)
        codes = [codes] if isinstance(codes, str) else [str(c) for c in codes or []]
        if any(f"area:{c}" in terms for c in codes):
            return None
        places.append(f"the areas {', '.join(codes) or '(none)'}")
    if audience.shapes is not None:
        polygons, circles = shapes_of(audience.shapes.evaluate(context))
        location = profile.get("location")
        if location and _inside(location["lat"], location["lon"], polygons, circles):
            return None
        if polygons or circles:
            places.append("the warning's shapes" + ("" if location else
                                                    " (the profile has no location on file)"))  # fmt: skip
    district = profile.get("district", "?")
    return f"not in {' or '.join(places) or 'the audience'}: the profile is in district {district}"


def _inside(lat: float, lon: float, polygons: list[list[list[float]]],
            circles: list[dict[str, float]]) -> bool:  # fmt: skip
    if any(in_polygon(lat, lon, ring) for ring in polygons):
        return True
    return any(distance_km(lat, lon, c["lat"], c["lon"]) <= c["radius_km"] for c in circles)
