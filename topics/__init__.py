"""Every topic, declared once. Values are bytes: the agents decode and validate them, so a
message that does not decode is dead-lettered with its reason instead of being dropped by
Faust's deserializer.

| topic            | key                       | value                                  |
|------------------|---------------------------|----------------------------------------|
| life-events      | subject id (else event id)| an event (JSON)                        |
| life-events-dlq  | as received               | an event (or fanout chunk) as received; reason in headers |
| profiles         | profile id                | a profile (JSON), or null to delete it |
| profiles-dlq     | as received               | the bytes as received; reason in headers |
| notifications    | recipient                 | a planned notification (JSON)          |
| notifications-warning | recipient            | the same, for category warning: a lane of its own |
| fanout           | event/rule/chunk          | a chunk of a large audience to plan: event, rule id, profile ids |
| notifications-dlq| notification id           | a failed notification with its history |
| deliveries       | notification id           | each status change (JSON)              |
| audit            | who                       | an audit entry (``app.access.audit``); 1 partition, not in ALL |
"""

from __future__ import annotations

from faust.types import TopicT

from app.access.audit import AUDIT_TOPIC
from app.notifications import Category
from wiring.faust_app import app
from wiring.health import SOURCE_TOPICS

REASON_HEADER = "x-lifecycle-reason"


def _topic(name: str) -> TopicT:
    return app.topic(name, key_serializer="raw", value_serializer="raw")


life_events = _topic("life-events")
life_events_dlq = _topic("life-events-dlq")
profiles = _topic("profiles")
profiles_dlq = _topic("profiles-dlq")
notifications = _topic("notifications")
notifications_warning = _topic("notifications-warning")
fanout = _topic("fanout")
notifications_dlq = _topic("notifications-dlq")
deliveries = _topic("deliveries")
audit = _topic(AUDIT_TOPIC)  # written by workers (rule reloads) and the console

ALL = (
    life_events,
    life_events_dlq,
    profiles,
    profiles_dlq,
    notifications,
    notifications_warning,
    fanout,
    notifications_dlq,
    deliveries,
)


def lane(category: str) -> TopicT:
    """Warnings travel apart, so that no backlog of reminders ever holds one up."""
    return notifications_warning if category == Category.WARNING else notifications


# the topics whose lag is watched (wiring.health names them for those beneath topics/)
if set(SOURCE_TOPICS) - {t.get_topic_name() for t in ALL}:
    raise RuntimeError("wiring.health.SOURCE_TOPICS names a topic not declared here")
