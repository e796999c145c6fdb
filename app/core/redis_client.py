"""Redis clients from ``LIFECYCLE_REDIS_URL``: one server or a Redis Cluster.

    redis://[:password@]host:port/db            one server (rediss:// with TLS)
    redis+cluster://[:password@]host:port[,host:port…]   a Redis Cluster, from any of its nodes
                                                (rediss+cluster:// with TLS)

On a cluster every script and every MULTI must touch keys of one slot: the stores give their
keys hash tags there (``Keys``), group batched writes by slot and read many keys with
``mget``, which splits a read across slots. On one server the keys are as they always were, so a
store moved to a cluster is re-imported, and one that stays where it is needs nothing.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncNode
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.core import redis_pack, redis_patch
from app.core.errors import ConfigError

redis_patch.install()  # a connection closed while writing says ConnectionError (see the module)
redis_pack.install()  # a command of plain arguments packed by hiredis alone (see the module)

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")

# What Redis raises when it cannot be reached, or a cluster is down or changing (catch these,
# then ask ``unavailable``: a cluster client raises RedisClusterException for a bug too)
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, ClusterDownError,
              TryAgainError, RedisClusterException)  # fmt: skip


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says Redis is out of reach for now (wait and try again), not that a
    command was wrong: on a cluster "cannot be connected" and an uncovered slot are outages,
    keys of several slots in one command are a bug."""
    if isinstance(exc, SlotNotCoveredError):
        return True
    if isinstance(exc, RedisClusterException):
        return "cannot be connected" in str(exc) or "reachable node" in str(exc)
    return isinstance(exc, REDIS_DOWN)


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], str | None, bool] | None:
    """(nodes, password, tls) of a ``redis+cluster://`` URL; None for any other URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in CLUSTER_SCHEMES:
        return None
    where = rest.split("/", 1)[0].split("?", 1)[0]
    password = None
    if "@" in where:
        auth, where = where.rsplit("@", 1)
        password = unquote(auth.split(":", 1)[-1]) or None
    nodes = []
    for item in where.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ConfigError(
                f"LIFECYCLE_REDIS_URL: {item.strip()!r} is not host:port "
                "(redis+cluster://host:port,host:port)"
            )
        nodes.append((host.strip("[]"), int(port)))
    path = rest.split("/", 1)[1] if "/" in rest else ""
    if path.split("?", 1)[0] not in ("", "0"):
        raise ConfigError("LIFECYCLE_REDIS_URL: a Redis Cluster has database 0 only")
    return nodes, password, scheme.startswith("rediss")


def async_redis(url: str, **options: Any) -> aioredis.Redis:
    """A client for ``url``. A cluster's client offers the same commands; it is typed as the
    one-server client it stands in for."""
    found = cluster_nodes(url)
    if found is None:
        return aioredis.Redis.from_url(url, **options)
    nodes, password, tls = found
    options.pop("health_check_interval", None)
    cluster = AsyncCluster(startup_nodes=[AsyncNode(h, p) for h, p in nodes], password=password,
                           ssl=tls, **options)  # fmt: skip
    return cast(aioredis.Redis, cluster)


def sync_redis(url: str, **options: Any) -> redis.Redis:
    found = cluster_nodes(url)
    if found is None:
        return redis.Redis.from_url(url, **options)
    nodes, password, tls = found
    cluster = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], password=password,
                           ssl=tls, **options)  # fmt: skip
    return cast(redis.Redis, cluster)


def is_cluster(client: object) -> bool:
    return isinstance(client, AsyncCluster | RedisCluster)


async def mget(client: aioredis.Redis, keys: list[str]) -> list[Any]:
    """MGET, split by slot on a cluster (not atomic there; nothing here needs it to be)."""
    if not keys:
        return []
    if is_cluster(client):
        return list(await cast(AsyncCluster, client).mget_nonatomic(keys))
    return list(await client.mget(keys))


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


class Keys:
    """Key names under a prefix. On one server ``item("n", id)`` is ``{prefix}n:{id}`` as
    always; on a cluster the id is the key's hash tag (``{prefix}n:{{id}}``), so that a
    notification's record, claim, trace and deferred entry share a slot, and ``control`` (the
    prefix as a hash tag, ``{{prefix}}``) puts the small stores' keys (the rule book, the
    accounts, the sessions) in one slot for their transactions."""

    def __init__(self, prefix: str, clustered: bool) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigError(
                f"LIFECYCLE_REDIS_PREFIX={prefix!r}: braces are reserved for hash tags"
            )
        self.prefix = prefix
        self.clustered = clustered

    def item(self, kind: str, ident: str) -> str:
        if self.clustered:
            return f"{self.prefix}{kind}:{{{ident}}}"
        return f"{self.prefix}{kind}:{ident}"

    @property
    def control(self) -> str:
        """The prefix of the stores whose transactions span keys: one slot on a cluster."""
        return f"{{{self.prefix}}}" if self.clustered else self.prefix
