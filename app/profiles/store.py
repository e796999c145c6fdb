"""The profile store in Redis, with secondary indexes as bitmaps.

Keys (all under the configured prefix):

    p:{id}              the profile, compact (``codec.py``), with its number
    {ix}:{field}:{value}  a bitmap: bit n set when profile number n has ``field:value``
                        (kind:…, area:…, permit:…, industry:…, tag:…)
    pn:{n >> 7}         a hash, field ``n & 127``: the id of profile number n (128 to a key, so
                        each stays a listpack)
    pseq                the last number given to a profile (numbers are never given twice)
    geo                 a geo set of the numbers of the profiles that have a location

Each profile gets a number when it is first stored. An index is a bitmap over the numbers:
about one bit per profile instead of about 55 bytes per profile in a set, and "enterprises with
permit X in areas A or B" is BITOP OR of the area bitmaps, AND the permit's and the kind's, read
back a chunk at a time. ``area:`` holds each profile under its district, city and province code.
The ``{ix}`` hash tag keeps every index bitmap in one slot of a Redis Cluster, so BITOP may
combine them. Upserts and deletes keep the indexes in step in one transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from app.core.codec import text
from app.core.geo import bounding_box, in_polygon
from app.profiles.codec import decode, encode, number_of
from app.profiles.model import Profile
from app.profiles.validate import index_terms

UPSERT_ATTEMPTS = 20
BUCKET_BITS = 7  # 128 ids to a ``pn:`` hash: within Redis's default hash-max-listpack-entries
READ_BYTES = 8192  # a bitmap is read 65,536 profiles at a time
BATCH = 1000  # ids yielded at a time by ``select``
# the positions of the set bits of each byte value, most significant first (Redis's bit order)
_BITS = [tuple(i for i in range(8) if byte & (0x80 >> i)) for byte in range(256)]


def set_bits(data: bytes, start: int = 0) -> list[int]:
    """The offsets of the bits set in ``data`` (a bitmap read from byte ``start // 8``)."""
    found: list[int] = []
    for i, byte in enumerate(data):
        if byte:
            base = start + i * 8
            found.extend(base + j for j in _BITS[byte])
    return found


class ProfileStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def key(self, profile_id: str) -> str:
        return f"{self.prefix}p:{profile_id}"

    _key = key

    def _index(self, term: str) -> str:
        return f"{self.prefix}{{ix}}:{term}"

    def _bucket(self, number: int) -> str:
        return f"{self.prefix}pn:{number >> BUCKET_BITS}"

    @staticmethod
    def decode(raw: Any, profile_id: str) -> Profile | None:
        """A profile from a reply of ``queue_get`` (None when there is none)."""
        return decode(raw, profile_id) if raw else None

    async def get(self, profile_id: str) -> Profile | None:
        return self.decode(await self.redis.get(self._key(profile_id)), profile_id)

    async def term_exists(self, field: str, value: str) -> bool:
        """Whether any profile has ``field`` (permit, industry, tag, kind, area) ``value``."""
        return bool(await self.redis.bitcount(self._index(f"{field}:{value}")))

    async def terms(self, field: str, limit: int = 1000) -> list[str]:
        """The values of ``field`` that some profile has (from the index keys), sorted."""
        found: list[str] = []
        start = self._index(f"{field}:")
        async for key in self.redis.scan_iter(f"{start}*", count=1000):
            found.append(text(key).removeprefix(start))
            if len(found) >= limit:
                break
        async with self.redis.pipeline(transaction=False) as pipe:
            for value in found:
                pipe.bitcount(start + value)
            counts = await pipe.execute()
        return sorted(v for v, n in zip(found, counts, strict=True) if n)

    def queue_get(self, pipe: Pipeline, profile_id: str) -> None:
        """Add to a pipeline: read a profile (its reply: ``ProfileStore.decode(reply, id)``)."""
        pipe.get(self._key(profile_id))

    async def get_many(self, profile_ids: Iterable[str]) -> list[Profile]:
        ids = list(profile_ids)
        if not ids:
            return []
        raws = await self.redis.mget([self._key(i) for i in ids])
        return [decode(r, i) for i, r in zip(ids, raws, strict=True) if r]

    async def upsert(self, profile: Profile) -> str:
        """Store a validated profile; returns "inserted", "updated" or "unchanged"."""
        return await self._replace(profile["id"], profile)

    async def roles(self) -> list[str]:
        """Every contact role some stored profile has had (a vocabulary for the rule checker:
        ``contacts: [saftey_officer]`` names none of them). Not an index: it only grows."""
        return sorted(text(r) for r in await self.redis.smembers(f"{self.prefix}vocab:role"))

    async def insert_new(self, profiles: list[Profile]) -> None:
        """Bulk-load profiles known not to be stored yet (an initial import), pipelined.

        No read of the previous version and no optimistic lock: only for a store being filled,
        where nothing else writes the same ids. An id given twice is stored once, as given last."""
        profiles = list({p["id"]: p for p in profiles}.values())
        if not profiles:
            return
        last = int(await self.redis.incrby(f"{self.prefix}pseq", len(profiles)))
        async with self.redis.pipeline(transaction=False) as pipe:
            for number, profile in enumerate(profiles, start=last - len(profiles) + 1):
                pipe.set(self._key(profile["id"]), encode(profile, number))
                self._queue_entries(pipe, profile, number, index_terms(profile), set())
            await pipe.execute()

    async def delete(self, profile_id: str) -> bool:
        return await self._replace(profile_id, None) != "unchanged"

    def _queue_entries(self, pipe: Pipeline, profile: Profile | None, number: int,
                       terms: set[str], old_terms: set[str]) -> None:  # fmt: skip
        for term in old_terms - terms:
            pipe.setbit(self._index(term), number, 0)
        for term in terms - old_terms:
            pipe.setbit(self._index(term), number, 1)
        bucket, field = self._bucket(number), number & ((1 << BUCKET_BITS) - 1)
        if profile is None:
            pipe.hdel(bucket, str(field))
            pipe.zrem(f"{self.prefix}geo", number)
            return
        pipe.hset(bucket, str(field), profile["id"])
        if roles := roles_of(profile):
            pipe.sadd(f"{self.prefix}vocab:role", *roles)
        location = profile.get("location")
        if location:
            pipe.geoadd(f"{self.prefix}geo", (location["lon"], location["lat"], number))
        else:
            pipe.zrem(f"{self.prefix}geo", number)

    async def _replace(self, profile_id: str, profile: Profile | None) -> str:
        key = self._key(profile_id)
        fresh: int | None = None  # a number taken for this profile, used by every attempt
        terms = index_terms(profile) if profile else set()
        for _ in range(UPSERT_ATTEMPTS):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    old = await pipe.get(key)
                    if profile is None and old is None:
                        return "unchanged"
                    old_number = number_of(old)  # None: none stored, or stored before numbers
                    number = old_number
                    if number is None and profile is not None:
                        if fresh is None:
                            fresh = int(await self.redis.incr(f"{self.prefix}pseq"))
                        number = fresh
                    encoded = encode(profile, number) if profile and number else None
                    if old is not None and text(old) == encoded:
                        return "unchanged"
                    old_profile = decode(old, profile_id) if old and old_number else None
                    pipe.multi()
                    if number is not None:
                        old_terms = index_terms(old_profile) if old_profile else set()
                        self._queue_entries(pipe, profile, number, terms, old_terms)
                    if encoded is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, encoded)
                    await pipe.execute()
                    return "updated" if old else "inserted"
                except WatchError:
                    continue
        raise RuntimeError(f"profile {profile_id} kept changing during {UPSERT_ATTEMPTS} attempts")

    async def _ids(self, numbers: list[int]) -> list[str]:
        """The ids of profile numbers, in the same order (a number no longer held is left out)."""
        if not numbers:
            return []
        mask = (1 << BUCKET_BITS) - 1
        buckets: dict[int, list[int]] = defaultdict(list)
        for n in numbers:
            buckets[n >> BUCKET_BITS].append(n)
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket, members in buckets.items():
                pipe.hmget(f"{self.prefix}pn:{bucket}", [str(n & mask) for n in members])
            replies = await pipe.execute()
        ids: dict[int, str] = {}
        for members, reply in zip(buckets.values(), replies, strict=True):
            ids.update((n, text(i)) for n, i in zip(members, reply, strict=True) if i)
        return [ids[n] for n in numbers if n in ids]

    async def within(self, polygons: list[list[list[float]]], circles: list[dict[str, float]],
                     all_of: list[str]) -> list[str]:  # fmt: skip
        """Ids of located profiles inside any of the shapes and in every ``all_of`` index."""
        found: set[int] = set()
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
            found.update(int(n) for n in names if text(n).isdigit())
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
                if text(name).isdigit() and in_polygon(float(lat), float(lon), ring):
                    found.add(int(name))
        numbers = sorted(found)
        for term in all_of:
            if not numbers:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for n in numbers:
                    pipe.getbit(self._index(term), n)
                bits = await pipe.execute()
            numbers = [n for n, bit in zip(numbers, bits, strict=True) if bit]
        return sorted(await self._ids(numbers))

    async def select(
        self, *, all_of: Iterable[str], any_of: Iterable[str] = ()
    ) -> AsyncIterator[list[str]]:
        """Ids in every ``all_of`` index and (if given) in at least one ``any_of`` index.

        Yields batches (in the order profiles were first stored) so that a city-wide audience
        never sits in memory at once twice."""
        scratch = self._index(f"tmp:{uuid.uuid4().hex}")
        keys = [self._index(t) for t in all_of]
        any_keys = [self._index(t) for t in any_of]
        if not keys and not any_keys:
            raise ValueError("an audience needs at least one index")
        try:
            if any_keys:
                await self._combine("OR", f"{scratch}:any", any_keys)
                keys.append(f"{scratch}:any")
            source = keys[0]
            if len(keys) > 1:
                source = f"{scratch}:all"
                await self._combine("AND", source, keys)
            size = int(await self.redis.strlen(source))
            pending: list[int] = []
            for offset in range(0, size, READ_BYTES):
                data = await self.redis.getrange(source, offset, offset + READ_BYTES - 1)
                pending += set_bits(cast(bytes, data), offset * 8)  # the client reads bytes
                while len(pending) >= BATCH or (pending and offset + READ_BYTES >= size):
                    ids = await self._ids(pending[:BATCH])
                    pending = pending[BATCH:]
                    if ids:
                        yield ids
        finally:
            await self.redis.delete(f"{scratch}:any", f"{scratch}:all")

    async def _combine(self, operation: str, destination: str, keys: list[str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.bitop(operation, destination, *keys)
            pipe.expire(destination, 60)  # should this process die before deleting it
            await pipe.execute()


def roles_of(profile: Profile) -> set[str]:
    return {c["role"] for c in profile.get("contacts", ()) if c.get("role")}
