"""Stream agents, one per module. Importing this package registers all of them with the app."""

from agents import (
    deliver_notifications,
    deliver_warnings,
    plan_notifications,
    release_deferred,
    store_profiles,  # fmt: skip
)

ALL = (
    plan_notifications.plan_notifications,
    deliver_notifications.deliver_notifications,
    deliver_warnings.deliver_warnings,
    store_profiles.store_profiles,
)
TIMERS = (release_deferred.release_deferred,)
