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
Upserts and deletes keep the indexes in step in one transaction.

On a Redis Cluster (``redis+cluster://``) a script or transaction touches one slot, so the
profiles are split into ``CLUSTER_GROUPS`` groups by a hash of their id, and each group has all
of the keys above under its own hash tag, ``{pgN}`` (``{prefix}{pg7}p:{id}``,
``{prefix}{pg7}ix:{field}:{value}``, ``{prefix}{pg7}pn:…``, ``{prefix}{pg7}pseq``,
``{prefix}{pg7}geo``): numbers are given within a group, an upsert is a transaction in its
group's slot, an audience is selected group by group. The groups spread over the cluster's
masters as their slots do. On one server there is one group and the keys are as above.
"""

from __future__ import annotations

import uuid
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from app.core.codec import text
from app.core.geo import bounding_box, in_polygon
from app.core.redis_client import is_cluster, mget
from app.profiles.codec import decode, encode, number_of
from app.profiles.model import Profile
from app.profiles.validate import index_terms

UPSERT_ATTEMPTS = 20
BUCKET_BITS = 7  # 128 ids to a ``pn:`` hash: within Redis's default hash-max-listpack-entries
READ_BYTES = 8192  # a bitmap is read 65,536 profiles at a time
BATCH = 1000  # ids yielded at a time by ``select``
CLUSTER_GROUPS = 64  # a store's profile groups on a cluster: fixed for the store's life
_COMBINE = """
redis.call('BITOP', ARGV[1], KEYS[1], unpack(KEYS, 2))
return redis.call('EXPIRE', KEYS[1], 60)
"""
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
        self.clustered = is_cluster(redis)
        self.groups = CLUSTER_GROUPS if self.clustered else 1
        # told of every profile written or deleted, after it is (the date schedule follows
        # them); called again for a profile written again unchanged, so a crash in between
        # is made good when the write is repeated
        self.after_write: Callable[[list[tuple[str, Profile | None]]], Awaitable[None]] | None = (
            None
        )

    def group_of(self, profile_id: str) -> int:
        if self.groups == 1:
            return 0
        return zlib.crc32(profile_id.encode("utf-8", "surrogatepass")) % self.groups

    def _space(self, group: int) -> str:
        """The prefix of a group's keys (its hash tag on a cluster)."""
        return f"{self.prefix}{{pg{group}}}" if self.clustered else self.prefix

    def key(self, profile_id: str) -> str:
        return f"{self._space(self.group_of(profile_id))}p:{profile_id}"

    _key = key

    def _index(self, term: str, group: int = 0) -> str:
        if self.clustered:
            return f"{self._space(group)}ix:{term}"
        return f"{self.prefix}{{ix}}:{term}"

    def _bucket(self, number: int, group: int = 0) -> str:
        return f"{self._space(group)}pn:{number >> BUCKET_BITS}"

    def _seq(self, group: int) -> str:
        return f"{self._space(group)}pseq"

    def _geo(self, group: int) -> str:
        return f"{self._space(group)}geo"

    @staticmethod
    def decode(raw: Any, profile_id: str) -> Profile | None:
        """A profile from a reply of ``queue_get`` (None when there is none)."""
        return decode(raw, profile_id) if raw else None

    async def get(self, profile_id: str) -> Profile | None:
        return self.decode(await self.redis.get(self._key(profile_id)), profile_id)

    async def term_exists(self, field: str, value: str) -> bool:
        """Whether any profile has ``field`` (permit, industry, tag, kind, area) ``value``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for group in range(self.groups):
                pipe.bitcount(self._index(f"{field}:{value}", group))
            return any(await pipe.execute())

    async def terms(self, field: str, limit: int = 1000) -> list[str]:
        """The values of ``field`` that some profile has (from the index keys), sorted."""
        found: dict[str, list[str]] = {}
        pattern = (f"{self.prefix}{{pg*}}ix:{field}:*" if self.clustered
                   else f"{self._index(field)}:*")  # fmt: skip
        async for key in self.redis.scan_iter(pattern, count=1000):
            name = text(key)
            marker = f"}}ix:{field}:" if self.clustered else f"{{ix}}:{field}:"
            value = name[name.index(marker) + len(marker) :]
            if value not in found and len(found) >= limit:
                break
            found.setdefault(value, []).append(name)
        names = [n for keys in found.values() for n in keys]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.bitcount(name)
            counts = dict(zip(names, await pipe.execute(), strict=True))
        return sorted(v for v, keys in found.items() if any(counts[k] for k in keys))

    def queue_get(self, pipe: Pipeline, profile_id: str) -> None:
        """Add to a pipeline: read a profile (its reply: ``ProfileStore.decode(reply, id)``)."""
        pipe.get(self._key(profile_id))

    async def get_many(self, profile_ids: Iterable[str]) -> list[Profile]:
        ids = list(profile_ids)
        if not ids:
            return []
        raws = await mget(self.redis, [self._key(i) for i in ids])
        return [decode(r, i) for i, r in zip(ids, raws, strict=True) if r]

    async def upsert(self, profile: Profile) -> str:
        """Store a validated profile; returns "inserted", "updated" or "unchanged"."""
        outcome = await self._replace(profile["id"], profile)
        if self.after_write is not None:
            await self.after_write([(profile["id"], profile)])
        return outcome

    async def roles(self) -> list[str]:
        """Every contact role some stored profile has had (a vocabulary for the rule checker:
        ``contacts: [saftey_officer]`` names none of them). Not an index: it only grows."""
        return sorted(text(r) for r in await self.redis.smembers(f"{self.prefix}vocab:role"))

    async def insert_new(self, profiles: list[Profile]) -> None:
        """Bulk-load profiles known not to be stored yet (an initial import), pipelined.

        No read of the previous version and no optimistic lock: only for a store being filled,
        where nothing else writes the same ids. An id given twice is stored once, as given last."""
        unique = list({p["id"]: p for p in profiles}.values())
        grouped: dict[int, list[Profile]] = defaultdict(list)
        for profile in unique:
            grouped[self.group_of(profile["id"])].append(profile)
        for group, members in grouped.items():
            last = int(await self.redis.incrby(self._seq(group), len(members)))
            async with self.redis.pipeline(transaction=False) as pipe:
                for number, profile in enumerate(members, start=last - len(members) + 1):
                    pipe.set(self._key(profile["id"]), encode(profile, number))
                    self._queue_entries(pipe, profile, number, index_terms(profile), set(), group)
                    self._queue_roles(pipe, profile)
                await pipe.execute()
        if self.after_write is not None and unique:
            await self.after_write([(p["id"], p) for p in unique])

    async def delete(self, profile_id: str) -> bool:
        deleted = await self._replace(profile_id, None) != "unchanged"
        if self.after_write is not None:
            await self.after_write([(profile_id, None)])
        return deleted

    def _queue_entries(self, pipe: Pipeline, profile: Profile | None, number: int,
                       terms: set[str], old_terms: set[str], group: int) -> None:  # fmt: skip
        """The index entries of a profile number, all in its group's slot."""
        for term in old_terms - terms:
            pipe.setbit(self._index(term, group), number, 0)
        for term in terms - old_terms:
            pipe.setbit(self._index(term, group), number, 1)
        bucket, field = self._bucket(number, group), number & ((1 << BUCKET_BITS) - 1)
        geo = self._geo(group)
        if profile is None:
            pipe.hdel(bucket, str(field))
            pipe.zrem(geo, number)
            return
        pipe.hset(bucket, str(field), profile["id"])
        location = profile.get("location")
        if location:
            pipe.geoadd(geo, (location["lon"], location["lat"], number))
        else:
            pipe.zrem(geo, number)

    def _queue_roles(self, pipe: Pipeline, profile: Profile | None) -> None:
        """The contact roles' vocabulary (another slot; it only grows)."""
        if profile is not None and (roles := roles_of(profile)):
            pipe.sadd(f"{self.prefix}vocab:role", *roles)

    async def _replace(self, profile_id: str, profile: Profile | None) -> str:
        key, group = self._key(profile_id), self.group_of(profile_id)
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
                            fresh = int(await self.redis.incr(self._seq(group)))
                        number = fresh
                    encoded = encode(profile, number) if profile and number else None
                    if old is not None and text(old) == encoded:
                        return "unchanged"
                    old_profile = decode(old, profile_id) if old and old_number else None
                    pipe.multi()
                    if number is not None:
                        old_terms = index_terms(old_profile) if old_profile else set()
                        self._queue_entries(pipe, profile, number, terms, old_terms, group)
                    if encoded is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, encoded)
                    if not self.clustered:
                        self._queue_roles(pipe, profile)
                    await pipe.execute()
                    if self.clustered and profile is not None and roles_of(profile):
                        await self.redis.sadd(f"{self.prefix}vocab:role", *roles_of(profile))
                    return "updated" if old else "inserted"
                except WatchError:
                    continue
        raise RuntimeError(f"profile {profile_id} kept changing during {UPSERT_ATTEMPTS} attempts")

    async def _ids(self, numbers: list[int], group: int = 0) -> list[str]:
        """The ids of a group's profile numbers, in the same order (a number no longer held is
        left out)."""
        if not numbers:
            return []
        mask = (1 << BUCKET_BITS) - 1
        buckets: dict[int, list[int]] = defaultdict(list)
        for n in numbers:
            buckets[n >> BUCKET_BITS].append(n)
        async with self.redis.pipeline(transaction=False) as pipe:
            for bucket, members in buckets.items():
                pipe.hmget(
                    self._bucket(bucket << BUCKET_BITS, group), [str(n & mask) for n in members]
                )
            replies = await pipe.execute()
        ids: dict[int, str] = {}
        for members, reply in zip(buckets.values(), replies, strict=True):
            ids.update((n, text(i)) for n, i in zip(members, reply, strict=True) if i)
        return [ids[n] for n in numbers if n in ids]

    async def within(self, polygons: list[list[list[float]]], circles: list[dict[str, float]],
                     all_of: list[str]) -> list[str]:  # fmt: skip
        """Ids of located profiles inside any of the shapes and in every ``all_of`` index."""
        ids: list[str] = []
        for group in range(self.groups):
            ids += await self._within(group, polygons, circles, all_of)
        return sorted(ids)

    async def _within(self, group: int, polygons: list[list[list[float]]],
                      circles: list[dict[str, float]], all_of: list[str]) -> list[str]:  # fmt: skip
        found: set[int] = set()
        key = self._geo(group)
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
                    pipe.getbit(self._index(term, group), n)
                bits = await pipe.execute()
            numbers = [n for n, bit in zip(numbers, bits, strict=True) if bit]
        return await self._ids(numbers, group)

    async def select(
        self, *, all_of: Iterable[str], any_of: Iterable[str] = ()
    ) -> AsyncIterator[list[str]]:
        """Ids in every ``all_of`` index and (if given) in at least one ``any_of`` index.

        Yields batches (group by group, in each in the order profiles were first stored) so
        that a city-wide audience never sits in memory at once twice."""
        all_terms, any_terms = list(all_of), list(any_of)
        if not all_terms and not any_terms:
            raise ValueError("an audience needs at least one index")
        for group in range(self.groups):
            async for ids in self._select(group, all_terms, any_terms):
                yield ids

    async def _select(
        self, group: int, all_of: list[str], any_of: list[str]
    ) -> AsyncIterator[list[str]]:
        scratch = self._index(f"tmp:{uuid.uuid4().hex}", group)
        keys = [self._index(t, group) for t in all_of]
        any_keys = [self._index(t, group) for t in any_of]
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
                    ids = await self._ids(pending[:BATCH], group)
                    pending = pending[BATCH:]
                    if ids:
                        yield ids
        finally:
            await self.redis.delete(f"{scratch}:any", f"{scratch}:all")

    async def _combine(self, operation: str, destination: str, keys: list[str]) -> None:
        """BITOP into ``destination``, which expires should this process die before deleting
        it (a script: a cluster's pipelines refuse BITOP)."""
        await self.redis.eval(_COMBINE, 1 + len(keys), destination, *keys, operation)


def roles_of(profile: Profile) -> set[str]:
    return {c["role"] for c in profile.get("contacts", ()) if c.get("role")}
