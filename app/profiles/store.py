"""The profile store in Redis, with secondary indexes.

Keys (all under the configured prefix):

    p:{id}              the profile as JSON
    ix:{field}:{value}  a set of profile ids: kind:…, area:…, permit:…, industry:…, tag:…
    geo                 a geo set of the profiles that have a location

``area:`` holds each profile under its district, city and province code, so "enterprises with
permit X in areas A or B" is SUNION of the area sets intersected with the permit and kind sets —
never a scan of all profiles. Upserts and deletes keep the indexes in step in one transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from app.core.codec import text
from app.core.geo import bounding_box, in_polygon
from app.profiles.model import Location, Profile
from app.profiles.validate import index_terms

UPSERT_ATTEMPTS = 20


class ProfileStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, profile_id: str) -> str:
        return f"{self.prefix}p:{profile_id}"

    _key = key

    def _index(self, term: str) -> str:
        return f"{self.prefix}ix:{term}"

    async def get(self, profile_id: str) -> Profile | None:
        raw = await self.redis.get(self._key(profile_id))
        return json.loads(raw) if raw else None

    async def term_exists(self, field: str, value: str) -> bool:
        """Whether any profile has ``field`` (permit, industry, tag, kind, area) ``value``."""
        return bool(await self.redis.exists(self._index(f"{field}:{value}")))

    async def terms(self, field: str, limit: int = 1000) -> list[str]:
        """The values of ``field`` that some profile has (from the index keys), sorted."""
        found: set[str] = set()
        start = self._index(f"{field}:")
        async for key in self.redis.scan_iter(f"{start}*", count=1000):
            found.add(text(key).removeprefix(start))
            if len(found) >= limit:
                break
        return sorted(found)

    def queue_get(self, pipe: Pipeline, profile_id: str) -> None:
        """Add to a pipeline: read a profile (its reply: JSON, or None when there is none)."""
        pipe.get(self._key(profile_id))

    async def get_many(self, profile_ids: Iterable[str]) -> list[Profile]:
        ids = list(profile_ids)
        if not ids:
            return []
        raws = await self.redis.mget([self._key(i) for i in ids])
        return [json.loads(r) for r in raws if r]

    async def upsert(self, profile: Profile) -> str:
        """Store a validated profile; returns "inserted", "updated" or "unchanged"."""
        encoded = json.dumps(profile, ensure_ascii=False, sort_keys=True)
        return await self._replace(profile["id"], encoded, index_terms(profile),
                                   profile.get("location"), roles_of(profile))  # fmt: skip

    async def roles(self) -> list[str]:
        """Every contact role some stored profile has had (a vocabulary for the rule checker:
        ``contacts: [saftey_officer]`` names none of them). Not an index: it only grows."""
        return sorted(text(r) for r in await self.redis.smembers(f"{self.prefix}vocab:role"))

    async def insert_new(self, profiles: list[Profile]) -> None:
        """Bulk-load profiles known not to be stored yet (an initial import), pipelined.

        No read of the previous version and no optimistic lock: only for a store being filled,
        where nothing else writes the same ids."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for profile in profiles:
                pipe.set(
                    self._key(profile["id"]),
                    json.dumps(profile, ensure_ascii=False, sort_keys=True),
                )
                for term in index_terms(profile):
                    pipe.sadd(self._index(term), profile["id"])
                if roles := roles_of(profile):
                    pipe.sadd(f"{self.prefix}vocab:role", *roles)
                if profile.get("location"):
                    location = profile["location"]
                    pipe.geoadd(
                        f"{self.prefix}geo", (location["lon"], location["lat"], profile["id"])
                    )
            await pipe.execute()

    async def delete(self, profile_id: str) -> bool:
        return await self._replace(profile_id, None, set(), None) != "unchanged"

    async def _replace(self, profile_id: str, encoded: str | None, terms: set[str],
                       location: Location | None, roles: set[str] | None = None) -> str:  # fmt: skip
        key = self._key(profile_id)
        for _ in range(UPSERT_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    old = await pipe.get(key)
                    old_text = text(old)
                    if old_text == encoded:
                        return "unchanged"
                    old_terms = index_terms(json.loads(old_text)) if old_text else set()
                    pipe.multi()
                    for term in old_terms - terms:
                        pipe.srem(self._index(term), profile_id)
                    for term in terms - old_terms:
                        pipe.sadd(self._index(term), profile_id)
                    if roles:
                        pipe.sadd(f"{self.prefix}vocab:role", *roles)
                    if location:
                        pipe.geoadd(
                            f"{self.prefix}geo", (location["lon"], location["lat"], profile_id)
                        )
                    elif old_text and json.loads(old_text).get("location"):
                        pipe.zrem(f"{self.prefix}geo", profile_id)
                    if encoded is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, encoded)
                    await pipe.execute()
                    return "updated" if old_text else "inserted"
                except WatchError:
                    continue
        raise RuntimeError(f"profile {profile_id} kept changing during {UPSERT_ATTEMPTS} attempts")

    async def within(self, polygons: list[list[list[float]]], circles: list[dict[str, float]],
                     all_of: list[str]) -> list[str]:  # fmt: skip
        """Ids of located profiles inside any of the shapes and in every ``all_of`` index."""
        found: set[str] = set()
        key = f"{self.prefix}geo"
        for circle in circles:
            names = cast(
                list[Any],
                await self.redis.geosearch(
                    key,
                    longitude=circle["lon"],
                    latitude=circle["lat"],
                    radius=circle["radius_km"],
                    unit="km",
                ),
            )
            found.update(text(n) for n in names)
        for ring in polygons:
            clat, clon, height, width = bounding_box(ring)
            hits = cast(
                list[Any],
                await self.redis.geosearch(
                    key,
                    longitude=clon,
                    latitude=clat,
                    width=width,
                    height=height,
                    unit="km",
                    withcoord=True,
                ),
            )
            for name, (lon, lat) in hits:
                if in_polygon(float(lat), float(lon), ring):
                    found.add(text(name))
        ids: list[str] = sorted(found)
        for term in all_of:
            if not ids:
                break
            member = await self.redis.smismember(self._index(term), ids)
            ids = [i for i, yes in zip(ids, member, strict=True) if yes]
        return ids

    async def select(
        self, *, all_of: Iterable[str], any_of: Iterable[str] = ()
    ) -> AsyncIterator[list[str]]:
        """Ids in every ``all_of`` index and (if given) in at least one ``any_of`` index.

        Yields batches so that a city-wide audience never sits in memory at once twice.
        """
        scratch = f"{self.prefix}tmp:{uuid.uuid4().hex}"
        keys = [self._index(t) for t in all_of]
        any_keys = [self._index(t) for t in any_of]
        if any_keys:
            union = f"{scratch}:any"
            await self.redis.sunionstore(union, any_keys)
            await self.redis.expire(union, 60)
            keys.append(union)
        if not keys:
            raise ValueError("an audience needs at least one index")
        if len(keys) == 1:
            source = keys[0]
        else:
            source = f"{scratch}:all"
            await self.redis.sinterstore(source, keys)
            await self.redis.expire(source, 60)
        cursor = 0
        while True:
            cursor, batch = await self.redis.sscan(source, cursor=cursor, count=1000)
            ids = sorted(text(b) for b in batch)
            if ids:
                yield ids
            if cursor == 0:
                break
        await self.redis.delete(f"{scratch}:any", f"{scratch}:all")


def roles_of(profile: Profile) -> set[str]:
    return {c["role"] for c in profile.get("contacts", ()) if c.get("role")}
