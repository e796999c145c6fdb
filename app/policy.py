"""What may be sent when: quiet hours, daily caps and opt-outs.

Policy, in one place:

- **Warnings** (category ``warning``) ignore quiet hours and caps. They are suppressed only when
  the recipient opted out of warnings explicitly (``warning:sms``, ``warning:email`` or
  ``warning:*``). A general opt-out (an SMS reply ``TD``, an unsubscribe link in a reminder) does
  not silence safety warnings.
- **Other categories** are deferred to the end of the recipient's quiet hours (default
  ``LIFECYCLE_QUIET_HOURS`` 22:00–08:00 local time; a profile's ``preferences.quiet_hours`` such
  as ``"23:00-07:00"`` or ``"off"`` overrides it), capped per recipient, channel and local day
  (``LIFECYCLE_DAILY_CAP``; what exceeds it is suppressed and recorded), and suppressed by any
  matching opt-out.

Opt-outs are kept per address (a mobile number or an e-mail address), apart from the profile, so
a profile re-imported from its source never undoes one. Each entry is ``category:channel``, with
``*`` for any.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis

from app.errors import ConfigError
from app.unsubscribe import address_key

WARNING = "warning"
_QUIET = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def end_if_quiet(self, moment: datetime) -> datetime | None:
        """When the quiet period containing ``moment`` (aware, local) ends; None if not quiet."""
        now = moment.timetz().replace(tzinfo=None)
        crosses_midnight = self.start > self.end
        quiet = (
            (now >= self.start or now < self.end)
            if crosses_midnight
            else self.start <= now < self.end
        )
        if not quiet:
            return None
        end = datetime.combine(moment.date(), self.end, tzinfo=moment.tzinfo)
        return end if end > moment else end + timedelta(days=1)


def parse_quiet_hours(text: str | None, where: str = "quiet_hours") -> QuietHours | None:
    """``"22:00-08:00"`` → QuietHours; ``"off"``, ``""`` or None → no quiet hours."""
    if text is None or text.strip().lower() in ("", "off", "none"):
        return None
    match = _QUIET.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{where}: {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) == (h2, m2):
        raise ConfigError(f"{where}: {text!r} is not a period of the day")
    return QuietHours(time(h1, m1), time(h2, m2))


def opted_out(entries: set[str], category: str, channel: str) -> bool:
    """Whether opt-out ``entries`` cover this category and channel, warnings only explicitly."""
    if category == WARNING:
        return bool({f"{WARNING}:{channel}", f"{WARNING}:*"} & entries)
    return bool({f"{category}:{channel}", f"{category}:*", f"*:{channel}", "*:*"} & entries)


class Preferences:
    """Opt-outs and daily counts in Redis.

    Opt-outs are kept under a keyed hash of the address (``optout:{address_key}``), never the
    address itself: a key listing shows no phone number or e-mail address. They have no expiry:
    an opt-out holds until the person opts in again."""

    def __init__(self, redis: aioredis.Redis, prefix: str, secret: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self.secret = secret

    def key(self, address: str) -> str:
        return self.key_of(address_key(self.secret, address))

    def key_of(self, hashed: str) -> str:
        return f"{self.prefix}optout:{hashed}"

    async def opt_outs(self, address: str) -> set[str]:
        return decode_set(await self.redis.smembers(self.key(address)))

    async def opt_out(self, address: str, category: str, channel: str) -> None:
        await self.redis.sadd(self.key(address), f"{category}:{channel}")

    async def opt_out_key(self, hashed: str, category: str, channel: str) -> None:
        """An opt-out asked for by an unsubscribe link, which carries only the address's key."""
        await self.redis.sadd(self.key_of(hashed), f"{category}:{channel}")

    async def opt_in(self, address: str, category: str, channel: str) -> None:
        await self.redis.srem(self.key(address), f"{category}:{channel}")

    async def rank_today_many(self, items: list[tuple[str, str]], day: str) -> list[int]:
        """Each (recipient, notification id)'s 1-based place among the recipient's notifications
        of the day, in one round trip.

        Scored by order of first sight (atomic in Redis): the same notification handled again (a
        retry, a redelivery) keeps its place, so a retry is never capped by later arrivals."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for recipient, notification_id in items:
                pipe.eval(_RANK_SCRIPT, 1, f"{self.prefix}cap:{recipient}:{day}", notification_id)
            return [int(rank) for rank in await pipe.execute()]


_RANK_SCRIPT = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], redis.call('ZCARD', KEYS[1]), ARGV[1])
end
redis.call('EXPIRE', KEYS[1], 172800)
return redis.call('ZRANK', KEYS[1], ARGV[1]) + 1
"""


def decode_set(members: Iterable[bytes | str]) -> set[str]:
    return {m.decode() if isinstance(m, bytes) else m for m in members}


def local_day(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y%m%d")
