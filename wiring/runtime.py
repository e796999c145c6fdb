"""The services a worker (or a command) needs, built once from Settings.

Building connects nothing: the Redis pool connects on first use, SMTP per message.
Rules are loaded and checked here, so a worker with a broken rule refuses to start.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis import Redis as SyncRedis
from redis.exceptions import RedisClusterException, RedisError

from app.access.tokens import TokenStore
from app.core.errors import ConfigError
from app.core.quiet_hours import parse_quiet_hours
from app.core.redis_client import async_redis, sync_redis
from app.core.settings import Settings, require_real_secret
from app.core.urgency import Urgency
from app.delivery.deliverer import Deliverer, DeliveryPolicy, Gateway
from app.delivery.gateways import sms_gateway_from_url
from app.delivery.gateways.email import SmtpGateway
from app.delivery.preferences import Preferences
from app.delivery.rate_limit import RateLimiter
from app.delivery.shortcut import Shortcut
from app.delivery.unsubscribe import UnsubscribeLinks
from app.intake.events import install_types
from app.intake.typebook import read_types
from app.planning.blast import BlastGuard, BlastPolicy
from app.planning.planner import Planner
from app.planning.policies import Policy
from app.planning.policybook import read_live_policies
from app.planning.rulebook import materialise, read_snapshot
from app.planning.rules import RuleSet, load_rules
from app.profiles.store import ProfileStore
from app.rendering.renderer import Renderer
from app.state import DeliveryState
from wiring.alerts import HoldAlerts

logger = logging.getLogger(__name__)


def make_renderer(settings: Settings, templates_dir: Path | None = None) -> Renderer:
    return Renderer(templates_dir or settings.templates_dir, signature=settings.sms_signature, tz=settings.tz,
                    default_language=settings.default_language,
                    signatures={"en": settings.sms_signature_en})  # fmt: skip


def load_live_rules(
    settings: Settings, sync_redis: SyncRedis
) -> tuple[RuleSet, Renderer, int, Path | None]:
    """The live rules: the seed files with the rule book's live versions over them, checked by
    ``load_rules``; the book's generation; where the set was written (None: the seed as is).
    The console's event types are installed first, so that rules on them load.
    With Redis unreachable, the seed files (generation -1, so that the book is tried again)."""
    try:
        generation, live = read_snapshot(sync_redis, settings.control_prefix)
        install_types(read_types(sync_redis, settings.control_prefix))
    except (RedisError, RedisClusterException, OSError) as exc:
        logger.warning("rule book unreadable (%s); using the rule files", type(exc).__name__)
        generation, live = -1, {}
    if not live:
        renderer = make_renderer(settings)
        return load_rules(settings.rules_dir, renderer), renderer, generation, None
    rules, renderer, root = load_live_set(settings, live, generation)
    return rules, renderer, generation, root


def load_live_policies(settings: Settings, sync_redis: SyncRedis) -> list[Policy]:
    """The shipped policies with the policy book's live versions over them (the shipped ones
    alone while Redis is unreachable)."""
    try:
        return read_live_policies(sync_redis, settings.control_prefix, settings.policies_dir)
    except (RedisError, RedisClusterException, OSError) as exc:
        logger.warning("policy book unreadable (%s); using the policy files", type(exc).__name__)
        return read_live_policies(None, settings.control_prefix, settings.policies_dir)


def load_live_set(
    settings: Settings, live: Mapping[str, Mapping[str, Any]], generation: int
) -> tuple[RuleSet, Renderer, Path]:
    """The seed files with ``live`` versions over them, written to a new folder (its path is
    returned: the caller removes it when done) and loaded with ``load_rules``' checks."""
    live_set = materialise(settings.rules_dir, settings.templates_dir, live, generation)
    renderer = make_renderer(settings, live_set.templates_dir)
    return load_rules(live_set.rules_dir, renderer), renderer, live_set.root


def make_redis(settings: Settings) -> aioredis.Redis:
    return async_redis(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
                       health_check_interval=15)  # fmt: skip


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        tz=settings.tz,
        quiet_hours=parse_quiet_hours(settings.quiet_hours, "LIFECYCLE_QUIET_HOURS"),
        daily_cap=settings.daily_cap,
        attempts=settings.retry_attempts,
        backoff_base=settings.retry_base_seconds,
        backoff_max=settings.retry_max_seconds,
        claim_lease=settings.claim_lease_seconds,
    )


def make_sync_redis(settings: Settings) -> SyncRedis:
    """For the single write that must happen without yielding to the event loop."""
    return sync_redis(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)


@dataclass
class Runtime:
    settings: Settings
    redis: aioredis.Redis
    profiles: ProfileStore
    state: DeliveryState
    preferences: Preferences
    renderer: Renderer
    rules: RuleSet
    planner: Planner
    deliverer: Deliverer | None
    guard: BlastGuard
    tokens: TokenStore
    alerts: HoldAlerts | None = None  # e-mail to approvers when a send is held (workers)
    rules_generation: int = -1  # of the rule book, as last applied (-1: the seed files only)
    live_root: Path | None = None  # where the live set was written (None: the seed files)
    urgency: Urgency = field(default_factory=Urgency)  # warnings first, chores give way
    shortcut: Shortcut = field(default_factory=Shortcut)  # delivering where planned, while quick

    def __post_init__(self) -> None:
        if self.deliverer is not None:  # how long sends take decides the shortcut past the lanes
            self.deliverer.on_sends = self.shortcut.took

    @classmethod
    def build(cls, settings: Settings, *, deliver: bool = True) -> Runtime:
        """``deliver=False`` for commands that plan but never send (preview, dev's expectations)."""
        sync_redis = make_sync_redis(settings)
        rules, renderer, generation, live_root = load_live_rules(settings, sync_redis)
        if rules.errors:
            listing = "\n  ".join(str(e) for e in rules.errors)
            raise ConfigError(f"{len(rules.errors)} rule error(s):\n  {listing}")
        redis = make_redis(settings)
        profiles = ProfileStore(redis, settings.redis_prefix)
        state = DeliveryState(redis, settings.redis_prefix, sync_redis)
        # A command that never sends may run without the secret; it then reads no opt-outs.
        secret = (
            require_real_secret(settings, "a worker that delivers")
            if deliver
            else settings.secret or secrets.token_urlsafe(32)
        )
        preferences = Preferences(redis, settings.redis_prefix, secret)
        deliverer = None
        if deliver:
            gateways: dict[str, Gateway] = {
                "email": SmtpGateway(settings.smtp, mail_from=settings.mail_from,
                                     unsubscribe=UnsubscribeLinks(settings.web_url, secret)),
                "sms": sms_gateway_from_url(settings.sms_url),
            }  # fmt: skip
            limiter = RateLimiter(
                redis,
                settings.redis_prefix,
                {"sms": settings.sms_rate, "email": settings.email_rate},
            )
            deliverer = Deliverer(
                state, preferences, profiles, gateways, delivery_policy(settings), limiter=limiter
            )
        policy = BlastPolicy(settings.blast_factor, settings.blast_ceiling, settings.blast_min_runs,
                             settings.blast_first_run)  # fmt: skip
        guard = BlastGuard(redis, settings.control_prefix, policy)
        planner = Planner(rules, profiles, renderer, guard=guard, state=state,
                          fanout_chunk=settings.fanout_chunk,
                          max_event_age_days=settings.max_event_age_days, tz=settings.tz)  # fmt: skip
        planner.matcher.policies = load_live_policies(settings, sync_redis)
        profiles.after_write = planner.after_profiles_written  # dates and policies follow them
        return cls(
            settings,
            redis,
            profiles,
            state,
            preferences,
            renderer,
            rules,
            planner,
            deliverer,
            guard,
            TokenStore(redis, settings.control_prefix),
            HoldAlerts(settings, redis, guard) if deliver else None,
            generation,
            live_root,
        )

    async def reload_rules(self) -> str | None:
        """Apply the rule book's live set if it changed; what happened, or None if nothing did.
        A set that does not load is not applied: the rules in use stay, and the errors are said."""
        generation = int(
            await self.redis.get(f"{self.settings.control_prefix}rulebook:generation") or 0
        )
        if generation == self.rules_generation:
            return None
        assert self.state.sync_redis is not None
        rules, renderer, generation, root = load_live_rules(self.settings, self.state.sync_redis)
        if rules.errors:
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)
            self.rules_generation = generation  # said once; the next change is tried again
            listing = "; ".join(str(e) for e in rules.errors)[:2000]
            return f"rule set {generation} refused, the last good one kept: {listing}"
        old, self.live_root = self.live_root, root
        self.rules, self.renderer, self.rules_generation = rules, renderer, generation
        self.planner.rules, self.planner.renderer = rules, renderer
        self.planner.matcher.policies = load_live_policies(self.settings, self.state.sync_redis)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return f"rule set {generation} applied: {len(rules.rules)} rule(s)"

    async def close(self) -> None:
        if self.live_root is not None:
            shutil.rmtree(self.live_root, ignore_errors=True)
        await self.redis.aclose()
        if self.state.sync_redis is not None:
            self.state.sync_redis.close()
