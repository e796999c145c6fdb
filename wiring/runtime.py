"""The services a worker (or a command) needs, built once from Settings.

Building connects nothing: the Redis pool connects on first use, SMTP per message.
Rules are loaded and checked here, so a worker with a broken rule refuses to start.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis import Redis as SyncRedis

from app.access.tokens import TokenStore
from app.core.errors import ConfigError
from app.core.quiet_hours import parse_quiet_hours
from app.core.settings import Settings, require_real_secret
from app.delivery.deliverer import Deliverer, DeliveryPolicy, Gateway
from app.delivery.gateways import sms_gateway_from_url
from app.delivery.gateways.email import SmtpGateway
from app.delivery.preferences import Preferences
from app.delivery.rate_limit import RateLimiter
from app.delivery.unsubscribe import UnsubscribeLinks
from app.planning.blast import BlastGuard, BlastPolicy
from app.planning.planner import Planner
from app.planning.rules import RuleSet, load_rules
from app.profiles.store import ProfileStore
from app.rendering.renderer import Renderer
from app.state import DeliveryState


def make_renderer(settings: Settings) -> Renderer:
    return Renderer(settings.templates_dir, signature=settings.sms_signature, tz=settings.tz,
                    default_language=settings.default_language)  # fmt: skip


def make_redis(settings: Settings) -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5,
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
    return SyncRedis.from_url(settings.redis_url, socket_timeout=1, socket_connect_timeout=1)


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

    @classmethod
    def build(cls, settings: Settings, *, deliver: bool = True) -> Runtime:
        """``deliver=False`` for commands that plan but never send (preview, dev's expectations)."""
        renderer = make_renderer(settings)
        rules = load_rules(settings.rules_dir, renderer)
        if rules.errors:
            listing = "\n  ".join(str(e) for e in rules.errors)
            raise ConfigError(f"{len(rules.errors)} rule error(s):\n  {listing}")
        redis = make_redis(settings)
        profiles = ProfileStore(redis, settings.redis_prefix)
        state = DeliveryState(redis, settings.redis_prefix, make_sync_redis(settings))
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
        guard = BlastGuard(redis, settings.redis_prefix, policy)
        planner = Planner(rules, profiles, renderer, guard=guard, state=state,
                          fanout_chunk=settings.fanout_chunk,
                          max_event_age_days=settings.max_event_age_days)  # fmt: skip
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
            TokenStore(redis, settings.redis_prefix),
        )

    async def close(self) -> None:
        await self.redis.aclose()
        if self.state.sync_redis is not None:
            self.state.sync_redis.close()
