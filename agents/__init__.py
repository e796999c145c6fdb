"""Stream agents, one per module. Importing this package registers all of them with the app."""

from agents import (
    deliver_notifications,
    deliver_warnings,
    flush_counts,
    plan_chunk,
    plan_notifications,
    release_deferred,
    reload_rules,
    run_journeys,
    store_profiles,
    watch_warnings,
)

ALL = (
    plan_notifications.plan_notifications,
    plan_chunk.plan_chunk,
    deliver_notifications.deliver_notifications,
    deliver_warnings.deliver_warnings,
    store_profiles.store_profiles,
)
TIMERS = (
    release_deferred.release_deferred,
    reload_rules.reload_rules,
    run_journeys.run_journeys,
    watch_warnings.watch_warnings,
    flush_counts.flush_counts,
)
