"""Console accounts, sessions and login throttling.

An account is a person: a login, a password (stored only as an argon2id hash), roles, the
districts it acts in (a city code covers its districts), and its own mobile and e-mail, the only
addresses its test-sends ever reach.

| role       | may                                                                   |
|------------|-----------------------------------------------------------------------|
| `author`   | draft rules, templates and event types                                |
| `approver` | approve or reject other people's changes, release or reject held sends |
| `operator` | dashboard, dead letters and replay, message search, held sends        |
| `admin`    | accounts and event types                                               |

Keys (under the configured prefix):

    account:{login}        hash: roles, districts (JSON), password (argon2id), mobile, email,
                           created_at, updated_at
    session:{sha256}       hash: login, csrf, created_at, client; expires when idle
    loginfail:{sha256}     failed logins of one login or one client in the current window

A session token is 32 random bytes in an HttpOnly, SameSite=Strict cookie; Redis holds only its
SHA-256. Authentication goes through ``Authenticator`` (password today); a single sign-on (OIDC)
can be another way to reach ``SessionStore.open`` with the account it vouches for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.access.tokens import covers
from app.core.codec import text
from app.core.errors import ConfigError

ROLES = ("author", "approver", "operator", "admin")
_LOGIN = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
_DISTRICT = re.compile(r"\d{6}|\*")
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256  # argon2 hashes any length; a megabyte "password" is an attack
SESSION_IDLE_SECONDS = 30 * 60
SESSION_MAX_SECONDS = 12 * 3600
THROTTLE_WINDOW_SECONDS = 15 * 60
THROTTLE_FAILURES = 5  # per login, and per client address, in the window

# argon2id, RFC 9106's second recommended option (64 MiB, 3 passes), as argon2-cffi's default
_HASHER = PasswordHasher()
# verified against when the login does not exist, so that its absence takes as long to learn
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Account:
    login: str
    roles: frozenset[str]
    districts: frozenset[str]
    mobile: str | None = None
    email: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles

    def covers(self, codes: Iterable[str]) -> bool:
        """Whether every one of ``codes`` (at least one) lies in the account's districts."""
        wanted = [str(c) for c in codes]
        return bool(wanted) and all(any(covers(d, c) for d in self.districts) for c in wanted)


def check_account(login: str, roles: list[str], districts: list[str]) -> None:
    """ConfigError, saying what is wrong, unless the account's fields are acceptable."""
    if not _LOGIN.fullmatch(login):
        raise ConfigError(f"login {login[:80]!r}: 2 to 64 lower-case letters, digits, . _ -")
    unknown = sorted(set(roles) - set(ROLES))
    if not roles or unknown:
        raise ConfigError(f"--role: one or more of {', '.join(ROLES)}"
                          + (f"; unknown: {', '.join(unknown)}" if unknown else ""))  # fmt: skip
    bad = [d for d in districts if not _DISTRICT.fullmatch(d)]
    if not districts or bad:
        raise ConfigError("--district: at least one six-digit division code (440308; 440300 for "
                          "the whole city), or * for all" + (f"; not one: {bad[0][:20]!r}" if bad else ""))  # fmt: skip


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(f"the password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ConfigError(f"the password is at most {MAX_PASSWORD_CHARS} characters")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class AccountStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _key(self, login: str) -> str:
        return f"{self.prefix}account:{login}"

    async def put(self, login: str, password: str, roles: list[str], districts: list[str], *,
                  mobile: str | None = None, email: str | None = None) -> str:  # fmt: skip
        """Create or update an account; "created" or "updated"."""
        check_account(login, roles, districts)
        check_password(password)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        existed = await self.redis.exists(self._key(login))
        record: dict[str | bytes, str] = {
            "roles": json.dumps(sorted(set(roles))),
            "districts": json.dumps(sorted(set(districts))),
            "password": _HASHER.hash(password),
            "mobile": mobile or "",
            "email": email or "",
            "updated_at": now,
        }
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(login), mapping=record)  # type: ignore[arg-type]
            pipe.hsetnx(self._key(login), "created_at", now)
            await pipe.execute()
        return "updated" if existed else "created"

    async def get(self, login: str) -> Account | None:
        if not _LOGIN.fullmatch(login):
            return None
        raw = {text(k): text(v) for k, v in (await self.redis.hgetall(self._key(login))).items()}
        if not raw:
            return None
        return Account(login, frozenset(json.loads(raw["roles"])),
                       frozenset(json.loads(raw["districts"])), raw.get("mobile") or None,
                       raw.get("email") or None)  # fmt: skip

    async def verify(self, login: str, password: str) -> Account | None:
        """The account if ``password`` is its password; None otherwise (as slowly either way)."""
        stored = None
        if _LOGIN.fullmatch(login) and len(password) <= MAX_PASSWORD_CHARS:
            stored = text(await self.redis.hget(self._key(login), "password"))
        try:
            _HASHER.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD_CHARS])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if stored is None:
            return None
        if _HASHER.check_needs_rehash(stored):
            await self.redis.hset(self._key(login), "password", _HASHER.hash(password))
        return await self.get(login)

    async def logins(self) -> list[str]:
        found = []
        async for key in self.redis.scan_iter(f"{self.prefix}account:*", count=500):
            found.append(text(key).removeprefix(f"{self.prefix}account:"))
        return sorted(found)


@dataclass(frozen=True)
class Session:
    login: str
    csrf: str
    created_at: float


class SessionStore:
    def __init__(self, redis: aioredis.Redis, prefix: str, *,
                 idle_seconds: int = SESSION_IDLE_SECONDS,
                 max_seconds: int = SESSION_MAX_SECONDS) -> None:  # fmt: skip
        self.redis = redis
        self.prefix = prefix
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds

    def _key(self, token: str) -> str:
        return f"{self.prefix}session:{digest(token)}"

    async def open(self, account: Account, client: str) -> tuple[str, Session]:
        """A new session for ``account``: the cookie's token (shown once) and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(account.login, secrets.token_urlsafe(32), time.time())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._key(token), mapping={"login": session.login, "csrf": session.csrf,
                                                 "created_at": f"{session.created_at:.3f}",
                                                 "client": client[:64]})  # fmt: skip
            pipe.expire(self._key(token), self.idle_seconds)
            await pipe.execute()
        return token, session

    async def get(self, token: str) -> Session | None:
        """The session of a cookie's token, its idle time restarted; None if none or expired."""
        if not token or len(token) > 128:
            return None
        key = self._key(token)
        raw = {text(k): text(v) for k, v in (await self.redis.hgetall(key)).items()}
        if not raw:
            return None
        session = Session(raw["login"], raw["csrf"], float(raw["created_at"]))
        if time.time() - session.created_at > self.max_seconds:
            await self.redis.delete(key)
            return None
        await self.redis.expire(key, self.idle_seconds)
        return session

    async def close(self, token: str) -> None:
        await self.redis.delete(self._key(token))


def csrf_matches(session: Session, offered: str | None) -> bool:
    return bool(offered) and hmac.compare_digest(session.csrf.encode(), str(offered).encode())


class LoginThrottle:
    """At most THROTTLE_FAILURES failed logins per login and per client address in a window
    (shared by every console process, in Redis). The key holds a hash, never the login itself."""

    def __init__(self, redis: aioredis.Redis, prefix: str, *,
                 failures: int = THROTTLE_FAILURES,
                 window_seconds: int = THROTTLE_WINDOW_SECONDS) -> None:  # fmt: skip
        self.redis = redis
        self.prefix = prefix
        self.failures = failures
        self.window_seconds = window_seconds

    def _keys(self, login: str, client: str) -> list[str]:
        return [f"{self.prefix}loginfail:{digest('login:' + login[:128])}",
                f"{self.prefix}loginfail:{digest('client:' + client[:64])}"]  # fmt: skip

    async def blocked(self, login: str, client: str) -> int:
        """Seconds until another try is allowed (0: now)."""
        keys = self._keys(login, client)
        counts = await self.redis.mget(keys)
        waits = [await self.redis.ttl(k) for k, c in zip(keys, counts, strict=True)
                 if c is not None and int(c) >= self.failures]  # fmt: skip
        return max([max(w, 1) for w in waits], default=0)

    async def failed(self, login: str, client: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in self._keys(login, client):
                pipe.incr(key)
                pipe.expire(key, self.window_seconds, nx=True)
            await pipe.execute()

    async def succeeded(self, login: str) -> None:
        await self.redis.delete(self._keys(login, "")[0])
