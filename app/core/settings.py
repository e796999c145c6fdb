"""Configuration: read once, at one boundary, from the environment and an optional ``.env`` file.

Only this module reads the environment. Every other module receives a ``Settings``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.core.errors import ConfigError
from app.core.quiet_hours import parse_quiet_hours
from app.core.redis_client import Keys, cluster_nodes

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MAIL_FROM = "盐田区政务服务 <notify@yantian.gov.example>"
DEFAULT_SMS_SIGNATURE = "【盐田区政务服务】"
# English texts are signed in English: a Chinese signature would make a GSM-7 text UCS-2, and a
# 160-character message three parts of 67. No brackets: [ and ] take two GSM-7 septets each.
DEFAULT_SMS_SIGNATURE_EN = "Yantian Gov Services: "


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    use_tls: bool = False  # smtps://: TLS from the first byte
    start_tls: bool = False  # smtp://…?starttls=true

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(
                f"LIFECYCLE_SMTP_URL must be smtp://host:port or smtps://…, not {url!r}"
            )
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if parts.scheme == "smtps" else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=parts.scheme == "smtps",
            start_tls=query.get("starttls", "false").lower() in ("1", "true", "yes"),
        )


@dataclass(frozen=True)
class Settings:
    kafka_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "lc:"
    smtp_url: str | None = None
    mail_from: str = DEFAULT_MAIL_FROM
    sms_url: str | None = None
    sms_signature: str = DEFAULT_SMS_SIGNATURE
    sms_signature_en: str = DEFAULT_SMS_SIGNATURE_EN  # for templates in English (en, en-GB, …)
    rules_dir: Path = PROJECT_ROOT / "rules"
    templates_dir: Path = PROJECT_ROOT / "templates"
    policies_dir: Path = PROJECT_ROOT / "policies"  # the shipped support policies (the seed)
    timezone: str = "Asia/Shanghai"
    web_port: int = 6066
    web_bind: str = "127.0.0.1"  # the worker's web server listens here only
    console_port: int = 8080
    console_bind: str = "127.0.0.1"  # the staff and operator console listens here only
    partitions: int = 8
    default_language: str = "zh-CN"
    quiet_hours: str = "22:00-08:00"
    daily_cap: int = 5
    retry_attempts: int = 6
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    claim_lease_seconds: float = 60.0
    public_url: str | None = None
    sms_rate: float = (
        0.0  # messages per second through the SMS gateway, all workers together; 0: unlimited
    )
    email_rate: float = 0.0
    fanout_chunk: int = 500  # recipients' profiles per chunk of a large fan-out
    blast_factor: float = 10.0  # hold a send this many times larger than the rule's median run
    blast_ceiling: int = 500_000  # hold any send to more recipients than this
    blast_min_runs: int = 3  # runs of a rule before its median counts
    blast_first_run: int = 100  # messages a rule version may send before a person released a run
    warning_stuck_seconds: int = 300  # the warnings lane behind this long: operators are e-mailed
    fetch_max_wait_ms: int = (
        20  # how long a consumer fetch may wait for data (Faust hard-codes 1500)
    )
    batch_max: int = 200  # events or notifications an agent handles together, at most
    batch_wait_ms: int = 5  # how long an agent waits for a batch to fill before handling it
    event_loop: str = "uvloop"  # the worker's asyncio event loop: uvloop, or asyncio's own
    gc_threshold: int = (
        50_000  # the collector's young generation (wiring/gc_tuning.py); 0: Python's
    )
    deliver_where_planned: bool = True  # an event's notifications sent by the planning agent
    secret: str | None = field(default=None, repr=False)  # `lifecycle dev` makes one
    sms_inbound_secret: str | None = field(default=None, repr=False)  # signs inbound-SMS hooks
    max_event_age_days: float = 30.0  # older events are not acted on (suppressed with the reason)
    explicit: frozenset[str] = field(
        default=frozenset(), compare=False, repr=False
    )  # variables set

    @property
    def web_url(self) -> str:
        """Where recipients reach the worker's web server (unsubscribe links)."""
        return (self.public_url or f"http://127.0.0.1:{self.web_port}").rstrip("/")

    @property
    def redis_cluster(self) -> bool:
        """Whether ``redis_url`` names a Redis Cluster (``redis+cluster://``)."""
        return cluster_nodes(self.redis_url) is not None

    @property
    def control_prefix(self) -> str:
        """The key prefix of the small stores whose transactions span keys (the rule book, the
        accounts, the sessions, held sends): on a cluster the prefix as a hash tag, one slot."""
        return Keys(self.redis_prefix, self.redis_cluster).control

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def kafka_servers(self) -> list[str]:
        """``kafka://a:9092,b:9092`` → ``["a:9092", "b:9092"]``."""
        if not self.kafka_url:
            raise ConfigError(
                "LIFECYCLE_KAFKA_URL is not set: the worker needs a Kafka broker "
                "(kafka://host:port); `lifecycle dev` starts an embedded one"
            )
        return [s.strip() for s in self.kafka_url.removeprefix("kafka://").split(",") if s.strip()]

    @property
    def smtp(self) -> SmtpConfig:
        if not self.smtp_url:
            raise ConfigError("LIFECYCLE_SMTP_URL is not set (smtp://host:port)")
        return SmtpConfig.from_url(self.smtp_url)

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def on_off(raw: str) -> bool:
    """``on`` or ``off`` (``true``/``false``, ``yes``/``no``, ``1``/``0`` as well)."""
    value = raw.strip().lower()
    if value in ("on", "true", "yes", "1"):
        return True
    if value in ("off", "false", "no", "0"):
        return False
    raise ValueError(raw)


on_off.__name__ = "on/off"  # as a setting's error names it: "… is not a valid on/off"

_ENV: dict[str, tuple[str, Callable[[str], object]]] = {
    "LIFECYCLE_KAFKA_URL": ("kafka_url", str),
    "LIFECYCLE_REDIS_URL": ("redis_url", str),
    "LIFECYCLE_REDIS_PREFIX": ("redis_prefix", str),
    "LIFECYCLE_SMTP_URL": ("smtp_url", str),
    "LIFECYCLE_MAIL_FROM": ("mail_from", str),
    "LIFECYCLE_SMS_URL": ("sms_url", str),
    "LIFECYCLE_SMS_SIGNATURE": ("sms_signature", str),
    "LIFECYCLE_SMS_SIGNATURE_EN": ("sms_signature_en", str),
    "LIFECYCLE_RULES_DIR": ("rules_dir", Path),
    "LIFECYCLE_TEMPLATES_DIR": ("templates_dir", Path),
    "LIFECYCLE_POLICIES_DIR": ("policies_dir", Path),
    "LIFECYCLE_TIMEZONE": ("timezone", str),
    "LIFECYCLE_WEB_PORT": ("web_port", int),
    "LIFECYCLE_WEB_BIND": ("web_bind", str),
    "LIFECYCLE_CONSOLE_PORT": ("console_port", int),
    "LIFECYCLE_CONSOLE_BIND": ("console_bind", str),
    "LIFECYCLE_PARTITIONS": ("partitions", int),
    "LIFECYCLE_QUIET_HOURS": ("quiet_hours", str),
    "LIFECYCLE_DAILY_CAP": ("daily_cap", int),
    "LIFECYCLE_RETRY_ATTEMPTS": ("retry_attempts", int),
    "LIFECYCLE_RETRY_BASE_SECONDS": ("retry_base_seconds", float),
    "LIFECYCLE_RETRY_MAX_SECONDS": ("retry_max_seconds", float),
    "LIFECYCLE_CLAIM_LEASE_SECONDS": ("claim_lease_seconds", float),
    "LIFECYCLE_PUBLIC_URL": ("public_url", str),
    "LIFECYCLE_SECRET": ("secret", str),
    "LIFECYCLE_SMS_INBOUND_SECRET": ("sms_inbound_secret", str),
    "LIFECYCLE_MAX_EVENT_AGE_DAYS": ("max_event_age_days", float),
    "LIFECYCLE_SMS_RATE": ("sms_rate", float),
    "LIFECYCLE_EMAIL_RATE": ("email_rate", float),
    "LIFECYCLE_FANOUT_CHUNK": ("fanout_chunk", int),
    "LIFECYCLE_BLAST_FACTOR": ("blast_factor", float),
    "LIFECYCLE_BLAST_CEILING": ("blast_ceiling", int),
    "LIFECYCLE_BLAST_MIN_RUNS": ("blast_min_runs", int),
    "LIFECYCLE_BLAST_FIRST_RUN": ("blast_first_run", int),
    "LIFECYCLE_WARNING_STUCK_SECONDS": ("warning_stuck_seconds", int),
    "LIFECYCLE_FETCH_MAX_WAIT_MS": ("fetch_max_wait_ms", int),
    "LIFECYCLE_BATCH_MAX": ("batch_max", int),
    "LIFECYCLE_BATCH_WAIT_MS": ("batch_wait_ms", int),
    "LIFECYCLE_EVENT_LOOP": ("event_loop", str),
    "LIFECYCLE_GC_THRESHOLD": ("gc_threshold", int),
    "LIFECYCLE_DELIVER_WHERE_PLANNED": ("deliver_where_planned", on_off),
}


EVENT_LOOPS = ("uvloop", "asyncio")


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Settings from ``environ`` (default: the process environment) over an optional ``.env``."""
    values: dict[str, str] = read_env_file(env_file) if env_file else {}
    values.update(os.environ if environ is None else environ)
    kwargs: dict[str, object] = {}
    for name, (attr, kind) in _ENV.items():
        raw = values.get(name)
        if raw is None or raw == "":
            continue
        try:
            kwargs[attr] = kind(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from exc
    kwargs["explicit"] = frozenset(n for n in _ENV if values.get(n))
    settings = Settings(**kwargs)  # type: ignore[arg-type]
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"LIFECYCLE_TIMEZONE={settings.timezone!r} is not a time zone") from exc
    if settings.smtp_url:
        SmtpConfig.from_url(settings.smtp_url)
    if settings.kafka_url and not settings.kafka_url.startswith("kafka://"):
        raise ConfigError(
            f"LIFECYCLE_KAFKA_URL must start with kafka://, not {settings.kafka_url!r}"
        )
    if settings.partitions < 1:
        raise ConfigError("LIFECYCLE_PARTITIONS must be at least 1")
    if settings.retry_attempts < 1 or settings.daily_cap < 0:
        raise ConfigError(
            "LIFECYCLE_RETRY_ATTEMPTS must be at least 1 and LIFECYCLE_DAILY_CAP not negative"
        )
    if settings.batch_max < 1 or settings.batch_wait_ms < 1:
        raise ConfigError(
            "LIFECYCLE_BATCH_MAX and LIFECYCLE_BATCH_WAIT_MS must be at least 1 (without a wait, "
            "a batch that never fills would never be handled)"
        )
    if settings.gc_threshold < 0:
        raise ConfigError("LIFECYCLE_GC_THRESHOLD must be 0 (Python's own) or more")
    if settings.event_loop not in EVENT_LOOPS:
        raise ConfigError(
            f"LIFECYCLE_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, not {settings.event_loop!r}"
        )
    parse_quiet_hours(settings.quiet_hours, "LIFECYCLE_QUIET_HOURS")
    cluster_nodes(settings.redis_url)  # a cluster URL that does not parse is refused here
    Keys(settings.redis_prefix, settings.redis_cluster)  # so is a prefix with braces


# Secrets that were ever shipped or documented as examples: never accepted by a real worker.
KNOWN_DEV_SECRETS = frozenset({"dev-only-secret-change-me", "change-me", "secret", "changeme"})
MIN_SECRET_CHARS = 32


def require_real_secret(settings: Settings, command: str = "lifecycle worker") -> str:
    """The signing secret, or ConfigError saying which variable to set: ``command`` refuses to
    start with none, a short one or one that was ever published (``lifecycle dev`` makes its own)."""
    secret = settings.secret
    if not secret:
        raise ConfigError(
            f"{command} needs LIFECYCLE_SECRET (at least {MIN_SECRET_CHARS} random characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`); it signs "
            "unsubscribe links. `lifecycle dev` makes its own."
        )
    if secret in KNOWN_DEV_SECRETS or len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"{command} refuses this LIFECYCLE_SECRET: it is a published development value or "
            f"shorter than {MIN_SECRET_CHARS} characters; set a random one"
        )
    return secret


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines; ``#`` comments, blank lines and optional quotes allowed."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def to_environ(settings: Settings) -> dict[str, str]:
    """The LIFECYCLE_* variables that reproduce ``settings`` in a child process."""
    out: dict[str, str] = {}
    for name, (attr, _kind) in _ENV.items():
        value = getattr(settings, attr)
        if isinstance(value, bool):
            out[name] = "on" if value else "off"
        elif value is not None:
            out[name] = str(value)
    return out
