"""Bearer tokens for machine callers: a CAP feed, the SMS provider, an operator's script.

A token is shown once, when it is made, and stored only as its SHA-256 (``{prefix}token:{hash}``,
a hash of name, scopes, CAP senders and creation time; ``{prefix}tokens`` maps names to hashes).
A token is 32 random bytes, so a plain hash is enough: there is nothing to guess, and a keyed or
slow hash would add nothing but cost per request.

Scopes say what a caller may do:

| scope          | allows                                                        |
|----------------|---------------------------------------------------------------|
| `cap:publish`  | `POST /cap/`, only for the CAP `<sender>` values the token names |
| `held:read`    | `GET /held/`                                                  |
| `held:release` | `POST /held/{id}/release/`                                    |
| `stats:read`   | `GET /stats/`                                                 |
| `metrics:read` | `GET /metrics` (Prometheus: ``authorization: {credentials_file: …}``) |

Every token is scoped to districts too (``--district``, GB/T 2260 codes; a city code such as
440300 covers its districts, a province code 440000 its cities): a CAP token may speak only for
areas inside them, a held-send token sees and releases only sends inside them. ``/stats/`` counts
for the whole deployment, so it needs a token whose districts are ``*`` (all).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis

from app.core.codec import text
from app.core.errors import ConfigError

SCOPES = {
    "cap:publish": "publish CAP alerts (only for the CAP senders named with --cap-sender)",
    "held:read": "list sends held by the blast-radius guard",
    "held:release": "release a held send",
    "stats:read": "read the worker's counters",
    "metrics:read": "scrape the worker's Prometheus metrics (GET /metrics)",
}
TOKEN_PREFIX = "lct_"  # noqa: S105 - the visible prefix of every token, not a secret
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to, and what it may do."""

    name: str
    scopes: frozenset[str]
    cap_senders: frozenset[str]
    created_at: str
    districts: frozenset[str] = frozenset()

    def may(self, scope: str) -> bool:
        return scope in self.scopes

    def covers(self, codes: Iterable[str]) -> bool:
        """Whether every one of ``codes`` (at least one) lies in the token's districts."""
        wanted = [str(c) for c in codes]
        return bool(wanted) and all(any(covers(d, c) for d in self.districts) for c in wanted)


def covers(district: str, code: str) -> bool:
    """``440300`` covers ``440308``; ``440000`` covers ``4403xx``; ``*`` covers everything."""
    if district == "*" or district == code:
        return True
    if district.endswith("0000"):
        return code.startswith(district[:2])
    return district.endswith("00") and code.startswith(district[:4])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, digest: str) -> str:
        return f"{self.prefix}token:{digest}"

    async def add(self, name: str, scopes: list[str], cap_senders: list[str] | None = None,
                  districts: list[str] | None = None) -> str:  # fmt: skip
        """Make a token (replacing one of the same name); return it: it is never shown again."""
        check_token_request(name, scopes, cap_senders or [], districts or [])
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = token_hash(token)
        record: dict[str | bytes, str] = {
            "name": name,
            "scopes": json.dumps(sorted(set(scopes))),
            "cap_senders": json.dumps(sorted(set(cap_senders or []))),
            "districts": json.dumps(sorted(set(districts or []))),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        old = await self.redis.hget(f"{self.prefix}tokens", name)
        async with self.redis.pipeline(transaction=True) as pipe:
            if old:
                pipe.delete(self._key(text(old)))
            pipe.hset(self._key(digest), mapping=record)  # type: ignore[arg-type]
            pipe.hset(f"{self.prefix}tokens", name, digest)
            await pipe.execute()
        return token

    async def revoke(self, name: str) -> bool:
        digest = await self.redis.hget(f"{self.prefix}tokens", name)
        if not digest:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(text(digest)))
            pipe.hdel(f"{self.prefix}tokens", name)
            await pipe.execute()
        return True

    async def list(self) -> list[Caller]:
        names = await self.redis.hgetall(f"{self.prefix}tokens")
        out = []
        for digest in sorted(text(d) for d in names.values()):
            caller = await self._load(digest)
            if caller:
                out.append(caller)
        return sorted(out, key=lambda c: c.name)

    async def caller(self, token: str) -> Caller | None:
        """The caller a presented token belongs to; None for anything not issued here."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
            return None
        return await self._load(token_hash(token))

    async def _load(self, digest: str) -> Caller | None:
        raw = await self.redis.hgetall(self._key(digest))
        if not raw:
            return None
        record = {text(k): text(v) for k, v in raw.items()}
        # the stored name must still point at this hash (a replaced token is dead)
        current = await self.redis.hget(f"{self.prefix}tokens", record["name"])
        if current is None or not hmac.compare_digest(text(current), digest):
            return None
        return Caller(
            name=record["name"],
            scopes=frozenset(json.loads(record["scopes"])),
            cap_senders=frozenset(json.loads(record["cap_senders"])),
            districts=frozenset(json.loads(record.get("districts", "[]"))),
            created_at=record["created_at"],
        )


def check_token_request(
    name: str, scopes: list[str], cap_senders: list[str], districts: list[str]
) -> None:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
        raise ConfigError(f"a token name is 1-64 of A-Z a-z 0-9 - _ ., not {name!r}")
    if not scopes:
        raise ConfigError(f"a token needs at least one --scope: {', '.join(SCOPES)}")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ConfigError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    if "cap:publish" in scopes and not cap_senders:
        raise ConfigError(
            "a cap:publish token must name the CAP senders it speaks for (--cap-sender)"
        )
    if not districts:
        raise ConfigError("a token needs at least one --district (a GB/T 2260 code, or * for all)")
    bad = [d for d in districts if d != "*" and not (len(d) == 6 and d.isascii() and d.isdigit())]
    if bad:
        raise ConfigError(f"--district takes six-digit GB/T 2260 codes or *, not {', '.join(bad)}")
    if "stats:read" in scopes and "*" not in districts:
        raise ConfigError("stats:read counts for the whole deployment: it needs --district '*'")
    if "metrics:read" in scopes and "*" not in districts:
        raise ConfigError("metrics:read counts for the whole deployment: it needs --district '*'")
    if cap_senders and "cap:publish" not in scopes:
        raise ConfigError("--cap-sender goes with --scope cap:publish")
