"""Outcomes: of the journeys a rule version started, how many were completed within the rule's
window, and how fast; the reminded and the holdout (not reminded) apart.

Each journey is counted twice at most: when it starts and when its completion event arrives
(the first one; a redelivery or a second completion counts nothing). Times are the events' own
(``occurred_at``): a journey starts when its triggering event happened and is completed when the
completion event did, both as the agencies say, so a late delivery moves neither.

The figures for a cohort (rule, version, group) at time ``now`` with window ``w``:

- ``started``: journeys started;
- ``open``: started less than ``w`` ago and not completed yet: still undecided;
- ``decided = started - open``: their window has closed, or they were completed;
- ``completed``: completed within ``w`` of their start;
- ``rate = completed / decided`` (None while nothing is decided);
- ``median_seconds``: the median time from start to completion of those ``completed`` (the
  mean of the two middle ones when their number is even).

Every figure is read with a handful of commands whatever the cohort's size: sorted sets, one per
question (a city's cohort is a few hundred thousand journeys).

Keys (under the configured prefix; ``{rule}:{version}:{group}`` is the hash tag on a cluster):

    oc-s:{rule}:{version}:{group}    sorted set: journey → when it started (epoch seconds)
    oc-c:{rule}:{version}:{group}    sorted set: journey → seconds from start to completion
    oc-cs:{rule}:{version}:{group}   sorted set: journey → when it started, completed ones only
    oc:versions                      hash: ``rule|version`` → its window (seconds)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from app.state.records import decode_record
from app.state.writes import Store, Writes

GROUPS = ("reminded", "holdout")
OUTCOME_TTL_SECONDS = 800 * 24 * 3600  # two years of cohorts, then they go


@dataclass(frozen=True)
class Cohort:
    rule: str
    version: int
    group: str  # reminded | holdout
    window_seconds: int
    started: int
    open: int
    decided: int
    completed: int
    rate: float | None
    median_seconds: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class OutcomeStore(Store):
    def _cohort(self, rule: str, version: int | str, group: str) -> str:
        return f"{rule}:{version}:{group}"

    def _keys(self, rule: str, version: int | str, group: str) -> tuple[str, str, str]:
        ident = self._cohort(rule, version, group)
        return self.key("oc-s", ident), self.key("oc-c", ident), self.key("oc-cs", ident)

    def index_key(self) -> str:
        return self.key("oc", "versions")

    def add_start(self, writes: Writes, *, journey: str, rule: str, version: int, group: str,
                  started: float, window_seconds: int) -> None:  # fmt: skip
        """Add to ``writes``: a journey of the cohort started at ``started`` (once)."""
        starts = self._keys(rule, version, group)[0]
        writes.zadd_nx(starts, journey, started)
        writes.expire(starts, OUTCOME_TTL_SECONDS)
        writes.hset_last(self.index_key(), f"{rule}|{version}", str(window_seconds))

    def add_completion(self, writes: Writes, *, journey: str, rule: str, version: int | str,
                       group: str, started: float, completed: float) -> None:  # fmt: skip
        """Add to ``writes``: the journey was completed at ``completed`` (the first completion
        is the one kept; one that says it came before the start counts as at the start)."""
        _, done, done_starts = self._keys(rule, version, group)
        writes.zadd_nx(done, journey, max(0.0, completed - started))
        writes.zadd_nx(done_starts, journey, started)
        for key in (done, done_starts):
            writes.expire(key, OUTCOME_TTL_SECONDS)

    async def versions(self, rule: str | None = None) -> list[tuple[str, int, int]]:
        """(rule, version, window seconds) of every version that started journeys (of
        ``rule`` only, if given), in order."""
        found = decode_record(await self.redis.hgetall(self.index_key()))
        out = []
        for member, window in found.items():
            name, _, version = member.partition("|")
            if version.isdigit() and window.isdigit() and (rule is None or name == rule):
                out.append((name, int(version), int(window)))
        return sorted(out)

    async def figures(self, rule: str | None, now: float) -> list[Cohort]:
        """Every cohort of ``rule`` (of every rule: None), by version and group."""
        return [await self.cohort(name, version, group, window_seconds=window, now=now)
                for name, version, window in await self.versions(rule) for group in GROUPS]  # fmt: skip

    async def cohort(self, rule: str, version: int, group: str, *, window_seconds: int,
                     now: float) -> Cohort:  # fmt: skip
        """The cohort's figures at ``now`` (the module's docstring defines them)."""
        starts, done, done_starts = self._keys(rule, version, group)
        cutoff = now - window_seconds
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(starts)
            pipe.zcount(starts, f"({cutoff}", "+inf")  # started within the window
            pipe.zcount(done_starts, f"({cutoff}", "+inf")  # … and completed already
            pipe.zcount(done, "-inf", window_seconds)  # completed within the window
            started, recent, recent_done, completed = (int(x) for x in await pipe.execute())
        median = await self._median(done, completed)
        still_open = max(0, recent - recent_done)
        decided = started - still_open
        return Cohort(rule=rule, version=version, group=group, window_seconds=window_seconds,
                      started=started, open=still_open, decided=decided, completed=completed,
                      rate=completed / decided if decided else None, median_seconds=median)  # fmt: skip

    async def _median(self, key: str, count: int) -> float | None:
        """The median of the ``count`` lowest scores of ``key``: by rank, two reads at most."""
        if not count:
            return None
        middle = [(count - 1) // 2, count // 2]
        found = [await self.redis.zrange(key, i, i, withscores=True) for i in sorted(set(middle))]
        scores = [float(pairs[0][1]) for pairs in found if pairs]
        if len(set(middle)) == 2 and len(scores) == 2:
            return (scores[0] + scores[1]) / 2
        return scores[0] if scores else None


def outcome_report(rule: str, cohorts: list[Cohort]) -> dict[str, Any]:
    """The figures by version, each with its groups and, when both have decided journeys, the
    difference reminding made (the reminded's rate minus the holdout's, in points)."""
    versions: dict[int, dict[str, Any]] = {}
    for cohort in cohorts:
        entry = versions.setdefault(cohort.version, {"version": cohort.version,
                                                     "window_seconds": cohort.window_seconds})  # fmt: skip
        entry[cohort.group] = cohort.as_dict()
    for entry in versions.values():
        rates = [entry.get(g, {}).get("rate") for g in GROUPS]
        entry["difference"] = (
            None if None in rates or not entry["holdout"]["started"] else rates[0] - rates[1]
        )
    return {"rule": rule, "versions": [versions[v] for v in sorted(versions)]}
