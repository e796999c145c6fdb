"""Patches of Faust internals, one module each, written against one faust-streaming version.

| module        | what it replaces                                   | why                          |
|---------------|----------------------------------------------------|------------------------------|
| drain         | ``Consumer._drain_messages``                       | one hand-over per fetched batch, not four tasks per message |
| conductor     | ``Conductor._build_handler`` (wraps its handler)   | a message for a full stream buffer waits for room, not in a task and a wait of its own |
| decode        | ``Schema.compile`` (wraps the decoder it compiles) | a raw topic's bytes go into the event without the serializer registry |
| fetch_wait    | ``AIOKafkaConsumerThread._create_worker_consumer`` | a fetch wait below Faust's fixed 1.5 s |
| monitor       | the app's ``Monitor`` sensor (a subclass)          | no per-message statistics for pages not served |
| take          | ``Stream.take_events``                             | an idle batching agent sleeps until an event comes, not every 5 ms |
| quiet_log     | mode's ``CompositeLogger.log``                     | a log call for a level that is off is not formatted first (one a message) |

Each module records the SHA-256 of the Faust source it was written against;
``tests/contract/test_faust_patches.py`` fails when the installed Faust differs, and
``check_version()`` refuses to start a worker on another faust-streaming than FAUST_VERSION
(pinned in ``pyproject.toml``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from app.core.errors import ConfigError
from wiring.faust_patches.conductor import wait_for_room
from wiring.faust_patches.decode import decode_raw_directly
from wiring.faust_patches.drain import drain_in_batches
from wiring.faust_patches.fetch_wait import limit_fetch_wait
from wiring.faust_patches.monitor import LeanMonitor
from wiring.faust_patches.quiet_log import log_only_when_enabled
from wiring.faust_patches.take import sleep_when_idle

FAUST_VERSION = "0.15.3"  # the same pin as pyproject.toml's dependency

__all__ = ["FAUST_VERSION", "LeanMonitor", "check_version", "decode_raw_directly", "drain_in_batches", "install",
           "log_only_when_enabled", "sleep_when_idle", "wait_for_room"]  # fmt: skip


def check_version(installed: str | None = None) -> None:
    """ConfigError unless the installed faust-streaming is the one the patches were written for."""
    if installed is None:
        try:
            installed = version("faust-streaming")
        except PackageNotFoundError:
            installed = "none"
    if installed != FAUST_VERSION:
        raise ConfigError(
            f"faust-streaming {installed} is installed; the worker's patches of Faust internals "
            f"(wiring/faust_patches/) were written for {FAUST_VERSION} exactly. Install "
            f"faust-streaming=={FAUST_VERSION}, or review each patch against the new version, "
            "then update FAUST_VERSION, the pin in pyproject.toml and the hashes in the patches."
        )


def install(fetch_max_wait_ms: int) -> None:
    """Check the version, then apply the function patches (the monitor is set in the config)."""
    check_version()
    limit_fetch_wait(fetch_max_wait_ms)
    drain_in_batches()
    wait_for_room()
    decode_raw_directly()
    sleep_when_idle()
    log_only_when_enabled()
