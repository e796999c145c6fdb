"""Delivering one planned notification, once, when and if it may be sent.

``Deliverer.deliver`` handles one notification and returns the status changes it made, in order,
for the ``deliveries`` topic; ``deliver_many`` does the same for a batch, sharing the Redis round
trips and sending concurrently:

1. A notification whose status is final (sent, suppressed, failed) is a ``duplicate``: the same
   event published twice, a redelivery after a crash or a rebalance. So is one already deferred to
   a later time (the release timer owns it).
2. It is claimed in Redis for ``claim_lease`` seconds, renewed every third of it while its batch
   is handled. A claim left by a worker that died mid-send expires after the lease; only then may
   another worker send it. A claim held by a live worker is waited for.
3. Policy (see ``app.delivery.policy``): a weather warning cancelled since it was planned, or
   past its ``expires_at`` → ``suppressed`` (never sent after its all-clear, nor late); opted
   out → ``suppressed``; a non-warning in quiet hours → ``deferred`` to the end of them (not an
   attempt); over the daily cap → ``suppressed``. A batch's suppressions are written together.
4. One attempt: ``sending``, then ``sent``; or, on a temporary failure, ``deferred`` with
   exponential backoff and jitter (durably: the release timer publishes it again when due, so
   other recipients never wait behind it); after the last attempt, on a permanent failure, or
   when a warning would expire before its next attempt (a provider's daily limit for the number
   waits for tomorrow), ``failed`` with ``dead_letter`` set, so the agent puts it on
   notifications-dlq with its history.

After the provider accepted a message, its ``sent`` status is written even if Redis is briefly
unreachable (retried until it is back), so an outage never causes a second send. The one window
in which a duplicate is still possible: the process dies after the provider accepted the message
and before that write reached Redis (measured by ``bench/crash_recovery.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable
from zoneinfo import ZoneInfo

from app.core.codec import text, texts
from app.core.errors import (
    ConfigError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    internal_error,
)
from app.core.masking import mask_address
from app.core.quiet_hours import QuietHours, parse_quiet_hours
from app.core.redis_client import REDIS_DOWN, is_cluster, unavailable
from app.core.timestamps import utc_now_ms
from app.delivery.policy import WARNING, local_day, opted_out
from app.delivery.preferences import Preferences
from app.delivery.rate_limit import RateLimiter
from app.notifications import Notification, expiry_of
from app.profiles.model import Profile
from app.profiles.store import ProfileStore
from app.state import FINAL, DeliveryState, Status
from app.state.records import decode_progress
from app.state.writes import Batched

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Gateway(Protocol):
    async def send(
        self, notification: Notification, on_commit: Callable[[], None] | None = None
    ) -> str: ...


@runtime_checkable
class BatchGateway(Gateway, Protocol):
    """A gateway that takes many notifications a call: each one's reference or failure."""

    async def send_batch(self, batch: Sequence[Notification]) -> Sequence[str | Exception]: ...


@dataclass(frozen=True)
class DeliveryPolicy:
    tz: ZoneInfo
    quiet_hours: QuietHours | None
    daily_cap: int = 5
    attempts: int = 6
    backoff_base: float = 30.0
    backoff_max: float = 3600.0
    claim_lease: float = 60.0


@dataclass  # not frozen: two a recipient, and a frozen dataclass is built 8× slower
class DeliveryOutcome:
    notification_id: str
    status: str  # a Status, or "duplicate" (an outcome only: nothing is recorded for it)
    channel: str
    category: str
    rule_id: str
    event_id: str
    recipient: str  # masked
    attempt: int
    at: str
    error: str | None = None
    retriable: bool = False
    next_attempt_at: str | None = None
    provider_ref: str | None = None
    dead_letter: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}  # flat: no asdict copy


class Begun(NamedTuple):
    """What one round trip before sending learns about a notification."""

    claimed: bool
    record: dict[str, str]  # of its status record, the fields delivery needs (PROGRESS)
    opt_outs: set[str]  # of its address
    profile: dict[str, Any]  # its recipient's profile ({} if gone)
    cancelled: str | None = None  # the event that cancelled its warning, if one has


class Deliverer:
    def __init__(
        self,
        state: DeliveryState,
        preferences: Preferences,
        profiles: ProfileStore,
        gateways: dict[str, Gateway],
        policy: DeliveryPolicy,
        *,
        clock: Callable[[], float] = time.time,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.state = state
        self.preferences = preferences
        self.profiles = profiles
        self.gateways = gateways
        self.policy = policy
        self.clock = clock
        self.limiter = limiter
        self.worker = f"{os.uname().nodename}:{os.getpid()}"
        # told how long each batch's sends of a channel took (the gateway's time, not pacing)
        self.on_sends: Callable[[str, float], None] | None = None

    async def deliver(self, n: Notification) -> list[DeliveryOutcome]:
        return (await self.deliver_many([n]))[0]

    async def deliver_many(self, batch: list[Notification],
                           profiles: Mapping[str, Profile] | None = None, *, paced: bool = False,
                           leave_contested: bool = False) -> list[list[DeliveryOutcome]]:  # fmt: skip
        """Deliver each notification of ``batch`` as ``deliver`` would; the outcomes in order.
        ``profiles``: the recipients' profiles as just read (a chunk's planning), not read again.
        ``paced``: the caller holds the batch's pacing tokens (``RateLimiter.take_now``).
        ``leave_contested``: a notification another worker holds a claim on is not waited for
        (that may last the claim's lease, after a crash); its outcomes are left empty.

        The decisions are made one by one; the Redis round trips are shared by the batch (one to
        claim and read, one for the daily cap, one for "sending", one for "sent", one to release)
        and the sends run concurrently. A notification claimed elsewhere, or twice in the batch,
        is handled after the rest, once its claim has ended."""
        token = f"{self.worker}:{uuid.uuid4().hex[:8]}"
        outcomes: list[list[DeliveryOutcome]] = [[] for _ in batch]
        try:
            begun = await self._begin(batch, token, known=profiles or {})
        except Exception:  # claims taken before the failure are this batch's: give them back
            await self._give_back(batch, token)
            raise
        contested: list[int] = []
        ready: list[tuple[int, Begun]] = []
        for i, (n, b) in enumerate(zip(batch, begun, strict=True)):
            if self._settled(b.record):
                outcomes[i] = [self._outcome(n, "duplicate", b.record)]
            elif not b.claimed:
                contested.append(i)
            else:
                ready.append((i, b))
        claimed = [n.id for n, b in zip(batch, begun, strict=True) if b.claimed]
        keeping = ClaimKeeper(self.state, claimed, token, self.policy.claim_lease)
        try:
            await self._handle(batch, ready, outcomes, paced=paced)
        finally:
            if await keeping.stop():  # some expired: give back only those still this batch's
                await self._persist(lambda: self.state.release_own(claimed, token))
            else:
                await self._persist(lambda: self.state.release_many(claimed))
        # Another worker (or this batch) is on these: wait for its claim to end, then look again.
        for i in [] if leave_contested else contested:
            outcomes[i] = await self._contested(batch[i], token, begun[i].record, paced=paced)
        return outcomes

    async def _give_back(self, batch: list[Notification], token: str) -> None:
        """The first round trip failed (a record that is not a hash fails the script after the
        claims before it were set; a cluster's pipeline sets every claim before it reports the
        error): release this batch's claims, so that each notification handled again goes at
        once, not after the lease. If Redis does not answer, the lease ends them."""
        try:
            await self.state.release_own([n.id for n in batch], token)
        except Exception:
            logger.warning("could not give back the claims of a batch of %d; they expire "
                           "after %.0f s", len(batch), self.policy.claim_lease, exc_info=True)  # fmt: skip

    async def _contested(self, n: Notification, token: str, record: dict[str, str], *,
                         paced: bool = False) -> list[DeliveryOutcome]:  # fmt: skip
        if not await self._claim(n, token):
            return [self._outcome(n, "duplicate", record)]
        keeping = ClaimKeeper(self.state, [n.id], token, self.policy.claim_lease)
        try:
            [b] = await self._begin([n], token, claim=False)
            if self._settled(b.record):
                return [self._outcome(n, "duplicate", b.record)]
            outcomes: list[list[DeliveryOutcome]] = [[]]
            await self._handle([n], [(0, b)], outcomes, paced=paced)
            return outcomes[0]
        finally:
            if await keeping.stop():
                await self._persist(lambda: self.state.release_own([n.id], token))
            else:
                await self._persist(lambda: self.state.release(n.id))

    async def _begin(self, batch: list[Notification], token: str, *, claim: bool = True,
                     known: Mapping[str, Profile] | None = None) -> list[Begun]:  # fmt: skip
        """One round trip: try each claim (or take it as held), read each status record, the
        address's opt-outs and the profile."""
        lease_ms = int(self.policy.claim_lease * 1000)
        redis = self.state.redis
        clustered = is_cluster(redis)  # a cluster's keys span slots: a command each, pipelined
        pipe: Any = redis.pipeline(transaction=False) if clustered else Batched(redis)
        unknown = [n.profile_id for n in batch if not known or n.profile_id not in known]
        roots = sorted({n.warning_root for n in batch if n.warning_root})
        async with pipe:  # each store adds its own reads: it alone knows its keys
            if clustered:
                for n in batch:
                    if claim:
                        self.state.queue_claim(pipe, n.id, token, lease_ms)
                    self.state.queue_progress(pipe, n.id)
                    self.preferences.queue_opt_outs(pipe, n.address)
            else:  # one script for the claims, records and opt-outs (``Records.queue_begin``)
                address_key = self.preferences.key
                self.state.queue_begin(pipe, [(n.id, address_key(n.address)) for n in batch],
                                       token, lease_ms, claim=claim)  # fmt: skip
            for profile_id in unknown:
                self.profiles.queue_get(pipe, profile_id)
            for root in roots:  # a warning's: cancelled since it was planned?
                self.state.queue_cancelled(pipe, root)
            if claim:  # the message search's index, in the same round trip (one reply)
                await self._queue_index(pipe, batch)
            replies = await pipe.execute()
        if clustered:
            width = 3 if claim else 2
            states = [(bool(replies[i]) if claim else True, decode_progress(replies[i + width - 2]),
                       set(texts(replies[i + width - 1])))
                      for i in range(0, width * len(batch), width)]  # fmt: skip
            rest = replies[width * len(batch) :]
        else:
            states, rest = self.state.decode_begin(replies[0]), replies[1:]
        read = dict(zip(unknown, rest[: len(unknown)], strict=True))
        marks = rest[len(unknown) : len(unknown) + len(roots)]
        cancelled = {root: text(by) for root, by in zip(roots, marks, strict=True) if by}
        begun = []
        for n, (claimed, record, opt_outs) in zip(batch, states, strict=True):
            profile = (known[n.profile_id] if known and n.profile_id in known
                       else self.profiles.decode(read[n.profile_id], n.profile_id))  # fmt: skip
            by = cancelled.get(n.warning_root) if n.warning_root and cancelled else None
            begun.append(Begun(claimed, record, opt_outs, dict(profile or {}), by))
        return begun

    async def _queue_index(self, pipe: Any, batch: list[Notification]) -> None:
        """Remember, under keyed hashes of its address and its profile id, that each notification
        went to them: the console's message search ("why did I get this?") finds it there."""
        entries = [(n.address, n.profile_id, f"{n.district or '*'}|{n.id}") for n in batch]
        await self.preferences.queue_index(pipe, entries, self.clock())

    def _settled(self, record: dict[str, str]) -> bool:
        """Nothing to do now: a final status, or deferred to a later time (the timer owns it)."""
        return record.get("status") in FINAL or self._scheduled_later(record)

    def _scheduled_later(self, record: dict[str, str]) -> bool:
        due = record.get("next_attempt_at")
        return (
            record.get("status") == Status.DEFERRED
            and due is not None
            and float(due) > self.clock() + 1
        )

    async def _claim(self, n: Notification, token: str) -> bool:
        lease_ms = int(self.policy.claim_lease * 1000)
        while not await self.state.claim(n.id, token, lease_ms):
            if await self.state.status(n.id) in FINAL:
                return False
            ttl = await self.state.claim_ttl_ms(n.id)
            await asyncio.sleep(min(max(ttl, 50), lease_ms) / 1000 / 4)
        return True

    async def _handle(self, batch: list[Notification], ready: list[tuple[int, Begun]],
                      outcomes: list[list[DeliveryOutcome]], *, paced: bool = False
                      ) -> None:  # fmt: skip
        """Policy, then one attempt for each claimed notification that may go now."""
        go: list[tuple[int, int]] = []  # (index in batch, attempts so far)
        capped: list[tuple[int, int]] = []
        suppressed: list[tuple[int, int, str]] = []  # (index, attempts, reason): written together
        now = datetime.fromtimestamp(self.clock(), self.policy.tz)
        for i, b in ready:
            n, attempt = batch[i], int(b.record.get("attempts") or 0)
            held = await self._policy(n, attempt, b.opt_outs, b.profile, now, b.cancelled)
            if isinstance(held, str):
                suppressed.append((i, attempt, held))
            elif held is not None:
                outcomes[i] = [held]
            elif n.category != WARNING and self.policy.daily_cap:
                capped.append((i, attempt))
            else:
                go.append((i, attempt))
        if capped:
            day = local_day(now, self.policy.tz)
            ranks = await self._persist(lambda: self.preferences.rank_today_many(
                [(f"{batch[i].recipient}:{batch[i].channel}", batch[i].id) for i, _ in capped], day))  # fmt: skip
            for (i, attempt), rank in zip(capped, ranks, strict=True):
                if rank > self.policy.daily_cap:
                    suppressed.append((i, attempt, f"daily cap of {self.policy.daily_cap} reached"))
                else:
                    go.append((i, attempt))
        if suppressed:  # a cancelled warning's chunk is suppressed whole: two writes, not 2,000
            done = await self._suppress_many([(batch[i], a, why) for i, a, why in suppressed])
            for (i, _, _), outcome in zip(suppressed, done, strict=True):
                outcomes[i] = [outcome]
        go.sort()
        if not go:
            return
        if self.limiter is not None and not paced:  # one round trip a channel, not a send
            for channel, count in Counter(batch[i].channel for i, _ in go).items():
                await self.limiter.acquire(channel, count)
        sending = [batch[i] for i, _ in go]
        attempts = [attempt + 1 for _, attempt in go]
        await self._persist(lambda: self.state.set_status_many(
            sending, Status.SENDING, [{"attempts": a} for a in attempts]))  # fmt: skip
        recorded: set[int] = set()

        async def settle(answers: list[tuple[int, str | Exception]]) -> None:
            """A batch gateway's answers, recorded as soon as they are in rather than after the
            batch's other sends: a provider's SMS has no early mark, and a crash before its
            record sends it again, so its window is its own call, not the slowest e-mail's."""
            items = [(sending[j], attempts[j], ref) for j, ref in answers if isinstance(ref, str)]
            try:
                await self._persist(lambda: self.state.sent_many(items))
            except Exception:  # recorded with the rest, after the batch's other sends
                logger.exception("recording a gateway's %d sends at once failed", len(items))
                return
            recorded.update(j for j, _ in answers)

        refs = await self._attempt_all(sending, attempts, settle)
        results = list(zip(go, sending, attempts, refs, strict=True))
        sent = [(n, attempt, ref) for j, (_, n, attempt, ref) in enumerate(results)
                if isinstance(ref, str) and j not in recorded]  # fmt: skip
        await self._persist(lambda: self.state.sent_many(sent))  # first: what went must stay sent
        debug = logger.isEnabledFor(logging.DEBUG)
        for (i, _), n, attempt, ref in results:
            masked = mask_address(n.channel, n.address)  # once for both outcomes
            first = self._outcome(n, Status.SENDING, attempt=attempt, recipient=masked)
            if isinstance(ref, str):
                outcomes[i] = [
                    first,
                    self._outcome(
                        n, Status.SENT, attempt=attempt, provider_ref=ref, recipient=masked
                    ),
                ]
                if debug:
                    logger.debug("sent %s via %s to %s", n.id, n.channel, masked)
            else:
                outcomes[i] = [first, await self._after_failure(n, attempt, ref)]

    async def _attempt_all(
        self, sending: list[Notification], attempts: list[int],
        settle: Callable[[list[tuple[int, str | Exception]]], Awaitable[None]] | None = None,
    ) -> list[str | Exception]:  # fmt: skip
        """Hand each notification to its gateway, at once: a gateway with ``send_batch`` takes
        its channel's share in one call (it maps each number's answer back), any other one
        notification at a time, concurrently. ``settle`` is given a batch gateway's answers
        (index in ``sending``, answer) as soon as they are in, when other sends of the batch
        are still going (else they are all in, and the caller records them at once)."""
        refs: list[str | Exception] = [RuntimeError("not attempted")] * len(sending)
        started, took = time.monotonic(), dict.fromkeys((n.channel for n in sending), 0.0)
        batched: dict[str, list[int]] = {}
        single: list[int] = []
        batching = {c: isinstance(g, BatchGateway) for c, g in self.gateways.items()}  # once:
        for j, n in enumerate(sending):  # a runtime Protocol check costs microseconds each
            if batching.get(n.channel):
                batched.setdefault(n.channel, []).append(j)
            else:
                single.append(j)

        async def one(j: int) -> None:
            refs[j] = await self._attempt(sending[j], attempts[j])
            took[sending[j].channel] = time.monotonic() - started  # the channel's slowest

        async def many(channel: str, indexes: list[int]) -> None:
            gateway = self.gateways[channel]
            assert isinstance(gateway, BatchGateway)
            try:
                answers: Sequence[str | Exception] = await gateway.send_batch(
                    [sending[j] for j in indexes]
                )
            except Exception as exc:  # a bug in a batch must not lose the others' records
                logger.exception("sending a batch of %d by %s failed unexpectedly",
                                 len(indexes), channel)  # fmt: skip
                answers = [exc] * len(indexes)
            for j, answer in zip(indexes, answers, strict=True):
                refs[j] = answer
            took[channel] = time.monotonic() - started
            if settle is not None and (single or len(batched) > 1):
                await settle([(j, refs[j]) for j in indexes])

        await asyncio.gather(*(one(j) for j in single),
                             *(many(c, ix) for c, ix in batched.items()))  # fmt: skip
        if self.on_sends is not None:
            for channel, seconds in took.items():
                self.on_sends(channel, seconds)
        return refs

    async def _attempt(self, n: Notification, attempt: int) -> str | Exception:
        """Hand ``n`` to its gateway: the provider's reference, or what went wrong."""
        try:
            return await self.gateways[n.channel].send(
                n, on_commit=self.state.sent_mark(n.id, attempt)
            )
        except (TemporaryDeliveryError, PermanentDeliveryError) as exc:
            return exc
        except Exception as exc:  # a bug in one send must not lose the others' records
            logger.exception("sending %s failed unexpectedly", n.id)
            return exc

    async def _after_failure(
        self, n: Notification, attempt: int, exc: Exception
    ) -> DeliveryOutcome:
        if not isinstance(exc, (TemporaryDeliveryError, PermanentDeliveryError)):
            return await self._fail(n, attempt, internal_error(exc), retriable=True)
        temporary = isinstance(exc, TemporaryDeliveryError)
        await self.state.trace(n.id, "attempt", attempt=attempt,
                               outcome="temporary" if temporary else "permanent", error=str(exc))  # fmt: skip
        if temporary and attempt < self.policy.attempts:
            due = self.clock() + self._backoff(attempt)
            if getattr(exc, "next_day", False):  # the provider takes no more today
                due = max(due, self._tomorrow())
            expiry = expiry_of(n)
            if expiry is not None and due >= expiry:  # a warning is not sent after it expired
                return await self._fail(n, attempt, f"{exc}; not tried again: the warning "
                                        f"expires at {n.expires_at}, before the next attempt "
                                        f"({_iso(due)})", retriable=False)  # fmt: skip
            return await self._defer(n, attempt, due, str(exc))
        return await self._fail(n, attempt, str(exc), retriable=temporary)

    async def _policy(self, n: Notification, attempt: int, opt_outs: set[str],
                      profile: dict[str, Any], now: datetime, cancelled: str | None = None
                      ) -> DeliveryOutcome | str | None:  # fmt: skip
        """Fail what cannot be sent; defer by quiet hours; the reason to suppress a warning
        cancelled (by the event ``cancelled``) or past its end, or what its address opted out of
        (the caller suppresses a batch's at once); None: it may go (the daily cap, which needs
        Redis, is applied to the batch by the caller)."""
        if n.error:
            return await self._fail(n, attempt, n.error, retriable=False)
        if n.channel not in self.gateways:
            return await self._fail(
                n, attempt, f"no gateway for channel {n.channel}", retriable=False
            )
        if cancelled is not None:  # its all-clear may be on its way: never the warning after it
            return f"the warning was cancelled (event {cancelled}); not sent after it"
        expiry = expiry_of(n) if n.expires_at is not None else None
        if expiry is not None and self.clock() >= expiry:  # delayed past its end: a retry…
            return f"the warning expired at {n.expires_at}; not sent late"
        if opted_out(opt_outs, n.category, n.channel):
            return f"opted out of {n.category} by {n.channel}"
        if n.category == WARNING:
            return None
        quiet = self._quiet_hours(profile)
        end = quiet.end_if_quiet(now) if quiet else None
        if end is not None:
            return await self._defer(n, attempt, end.timestamp(), f"quiet hours until {end:%H:%M}")
        return None

    def _quiet_hours(self, profile: dict[str, Any]) -> QuietHours | None:
        wanted = (profile.get("preferences") or {}).get("quiet_hours")
        if wanted is None:
            return self.policy.quiet_hours
        try:
            return parse_quiet_hours(str(wanted))
        except ConfigError:
            return self.policy.quiet_hours

    def _tomorrow(self) -> float:
        """The next local midnight, and up to ten minutes more (not everyone at once)."""
        now = datetime.fromtimestamp(self.clock(), self.policy.tz)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(),
                                    tzinfo=self.policy.tz)  # fmt: skip
        return midnight.timestamp() + random.uniform(0, 600)  # noqa: S311 - jitter

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.policy.backoff_max, self.policy.backoff_base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security

    async def _defer(
        self, n: Notification, attempt: int, due: float, reason: str
    ) -> DeliveryOutcome:
        await self.state.defer(n, due, reason)
        await self.state.trace(n.id, "deferred", until=_iso(due), reason=reason)
        return self._outcome(
            n, Status.DEFERRED, attempt=attempt, error=reason, next_attempt_at=_iso(due)
        )

    async def _suppress_many(self, items: list[tuple[Notification, int, str]]
                             ) -> list[DeliveryOutcome]:  # fmt: skip
        """Each (notification, attempts, reason) suppressed: the records in one write, the
        trace steps in another."""
        notifications = [n for n, _, _ in items]
        await self.state.set_status_many(notifications, Status.SUPPRESSED,
                                         [{"attempts": a, "reason": why} for _, a, why in items])  # fmt: skip
        await self.state.trace_many([(n.id, "suppressed", {"reason": why}) for n, _, why in items])
        logger.debug("suppressed %d notification(s)", len(items))
        return [self._outcome(n, Status.SUPPRESSED, attempt=a, error=why) for n, a, why in items]

    async def _fail(
        self, n: Notification, attempt: int, error: str, *, retriable: bool
    ) -> DeliveryOutcome:
        await self.state.set_status(n, Status.FAILED, attempts=attempt, error=error)
        await self.state.trace(n.id, "failed", error=error)
        logger.warning("failed %s via %s after %d attempt(s): %s", n.id, n.channel, attempt, error)
        return self._outcome(
            n, Status.FAILED, attempt=attempt, error=error, retriable=retriable, dead_letter=True
        )

    async def _persist(self, action: Callable[[], Awaitable[T]]) -> T:
        """Write state that must not be lost, waiting out a Redis outage."""
        pause = 0.5
        while True:
            try:
                return await action()
            except REDIS_DOWN as exc:
                if not unavailable(exc):
                    raise
                logger.warning(
                    "Redis unavailable while recording a delivery; retrying in %.1f s", pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _outcome(self, n: Notification, status: str, record: dict[str, str] | None = None,
                 **fields: Any) -> DeliveryOutcome:  # fmt: skip
        fields.setdefault("attempt", int((record or {}).get("attempts") or 0))
        if "recipient" not in fields:  # the caller may have masked it already
            fields["recipient"] = mask_address(n.channel, n.address)
        return DeliveryOutcome(notification_id=n.id, status=status, channel=n.channel, category=n.category,
                               rule_id=n.rule_id, event_id=n.event_id, at=utc_now_ms(),
                               **fields)  # fmt: skip


class ClaimKeeper:
    """Renews a batch's claims every third of the lease until ``stop()``: a batch that takes
    longer than the lease (a slow provider, a stalled machine) keeps them, and no other worker,
    nor another batch here, sends its notifications meanwhile. Only a worker that died, or a
    Redis that did not answer for a whole lease, lets them expire."""

    def __init__(self, state: DeliveryState, ids: list[str], token: str, lease: float) -> None:
        self.state, self.ids, self.token, self.lease = state, ids, token, lease
        self.lost = False  # some claim was found expired (another's, perhaps)
        self.task = asyncio.create_task(self._run(), name="claims renewed") if ids else None

    async def _run(self) -> None:
        ids = self.ids
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                held = await self.state.renew_own(ids, self.token, int(self.lease * 1000))
            except Exception as exc:  # noqa: BLE001 - tried again a third of a lease later
                logger.warning("could not renew the claims of a batch of %d (%s); tried again "
                               "in %.1f s", len(ids), type(exc).__name__, self.lease / 3)  # fmt: skip
                continue
            if held < len(ids):
                self.lost = True
                logger.warning("%d of a batch's %d claims had expired before they were "
                               "renewed: another worker may send those", len(ids) - held, len(ids))  # fmt: skip

    async def stop(self) -> bool:
        """Stop renewing (a Redis call cancelled mid-way drops its connection, as redis-py does
        on cancellation); True if some claim had expired, so that only those still this
        batch's are given back."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        return self.lost


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
