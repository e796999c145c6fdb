"""Support policies at work: which enterprises meet which live policy, queued to be told once,
told by the leader, swept when a policy is new, previewed before approval, explained on request
(``app.planning.policies`` says what a policy is; ``app.state.policies`` keeps who was told).

The planner holds one (``Planner.matcher``); the runtime gives it the live policies."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.intake.events import Event
from app.planning.policies import Match, Policy, as_data, match, policy_event
from app.profiles.model import Profile
from app.profiles.store import ProfileStore
from app.state.policies import PolicyMatches
from app.state.writes import Writes


class PolicyMatcher:
    def __init__(self, store: ProfileStore, tz: ZoneInfo) -> None:
        self.store = store
        self.tz = tz
        self.policies: list[Policy] = []  # the live ones
        self.matches = PolicyMatches(store.redis, store.prefix)

    async def queue(self, written: Sequence[tuple[str, Profile | None]],
                                   policies: Sequence[Policy] | None = None) -> int:  # fmt: skip
        """The policies (of ``policies``, else every live one) each written enterprise now meets
        and was not told of yet, queued for the leader to tell (one read of what was told, one
        write, for the batch); how many were queued."""
        today = datetime.fromtimestamp(time.time(), self.tz).date()
        found = [(policy.id, profile_id) for profile_id, profile in written
                 if profile is not None and profile.get("kind") == "enterprise"
                 for policy in (self.policies if policies is None else policies)
                 if match(policy, profile, today).met]  # fmt: skip
        told = await self.matches.told(found)
        writes = Writes()
        for (policy_id, enterprise_id), day in zip(found, told, strict=True):
            if day is None:
                self.matches.add_found(writes, policy_id, enterprise_id, time.time())
        await self.matches.apply(writes)
        return sum(1 for day in told if day is None)

    def to_sweep(self, swept: Mapping[str, int]) -> list[Policy]:
        """The live, valid policies not yet swept at their version (``swept``: policy → version)."""
        today = datetime.fromtimestamp(time.time(), self.tz).date()
        return [p for p in self.policies if p.enabled and p.valid_on(today)
                and swept.get(p.id) != p.version]  # fmt: skip

    async def sweep(self, policies: Sequence[Policy], batch: int = 1000,
                    pause: Callable[[float], Awaitable[None]] | None = None) -> int:  # fmt: skip
        """Match policies (new, or at a new version) against the enterprises stored before them,
        in one pass: those of their districts, from the indexes, ``batch`` profiles at a time,
        each read once whatever the number of policies; how many matches were queued. Those told
        before stay told; a sweep run twice queues nothing twice. ``pause(seconds worked)`` is
        awaited between batches: the worker's urgent work goes first (``app.core.urgency``)."""
        queued = 0
        districts = sorted({d for p in policies for d in p.districts})
        async for found in self._enterprises_in(districts, batch):
            started = time.monotonic()
            queued += await self.queue([(p["id"], p) for p in found], policies)
            if pause is not None:
                await pause(time.monotonic() - started)
        return queued

    async def preview(self, policy: Policy, limit: int = 200_000, sample: int = 5
                             ) -> dict[str, Any]:  # fmt: skip
        """What approving ``policy`` would do now: how many enterprises of its districts meet it
        (of at most ``limit`` read), how many of them were told already, a few of their names."""
        today = datetime.fromtimestamp(time.time(), self.tz).date()
        read, met, names = 0, list[str](), list[str]()
        async for found in self._enterprises_in(policy.districts, 1000):
            read += len(found)
            for profile in found:
                if match(policy, profile, today).met:
                    met.append(profile["id"])
                    if len(names) < sample:
                        names.append(str(profile.get("name") or profile["id"]))
            if read >= limit:
                break
        told = sum(1 for day in await self.matches.told([(policy.id, e) for e in met]) if day)
        return {"meeting": len(met), "told_already": told, "read": read,
                "complete": read < limit, "sample": names}  # fmt: skip

    async def _enterprises_in(self, districts: Sequence[str], batch: int
                              ) -> AsyncIterator[list[Profile]]:  # fmt: skip
        """The enterprises of some districts ("*": all), from the indexes, ``batch`` at a time."""
        areas = [] if "*" in districts else [f"area:{d}" for d in districts]
        async for ids in self.store.select(all_of=["kind:enterprise"], any_of=areas):
            for start in range(0, len(ids), batch):
                yield await self.store.get_many(ids[start : start + batch])

    async def due_events(self, limit: int = 500
                                ) -> list[tuple[str, str, dict[str, Any] | None]]:  # fmt: skip
        """The queued matches: (policy, enterprise, the event that tells it), the event None when
        there is nothing to tell any more (the policy is gone or no longer met, or told)."""
        due = await self.matches.due(limit)
        profiles = {p["id"]: p for p in await self.store.get_many(sorted({e for _, e in due}))}
        told = await self.matches.told(due)
        live = {p.id: p for p in self.policies}
        now = time.time()
        today = datetime.fromtimestamp(now, self.tz).date()
        out: list[tuple[str, str, dict[str, Any] | None]] = []
        for (policy_id, enterprise_id), day in zip(due, told, strict=True):
            policy, profile = live.get(policy_id), profiles.get(enterprise_id)
            if policy is None or profile is None or day or not match(policy, profile, today).met:
                out.append((policy_id, enterprise_id, None))
                continue
            out.append((policy_id, enterprise_id, policy_event(policy, profile, now, self.tz)))
        return out

    def texts_of(self, event: Event) -> Event | None:
        """A policy event with the live policy's own texts (what it offers, what to confirm,
        where), so that one published by anyone else can say nothing the catalogue does not;
        None when no such policy is live."""
        policy = next((p for p in self.policies if p.id == event.data.get("policy_id")), None)
        if policy is None or not policy.enabled:
            return None
        return replace(event, data={**event.data, **as_data(policy)})

    def explain(self, profile: Profile) -> list[Match]:
        """Each live policy, criterion by criterion, for an enterprise (``policies match``)."""
        today = datetime.fromtimestamp(time.time(), self.tz).date()
        return [match(policy, profile, today) for policy in self.policies]
