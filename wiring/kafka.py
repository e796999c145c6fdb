"""Plain Kafka clients (kafka-python) for what is not a stream: creating topics, publishing from
a command. Workers publish through Faust's producer instead (``topics``)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from app.intake.events import Event

LIFE_EVENTS = "life-events"


def ensure_topics(
    bootstrap: list[str], names: list[str], partitions: int, timeout: float = 30.0
) -> None:
    """Create the topics that do not exist yet (kafka-python admin client)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="lifecycle-admin")
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        existing = set(admin.list_topics())
        for name in names:
            if name in existing:
                continue
            try:
                admin.create_topics([NewTopic(name, partitions, 1)])
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def publish(bootstrap: list[str], events: Iterable[Event], topic: str = LIFE_EVENTS) -> int:
    """Publish events, keyed by subject (or event id); returns how many the broker acknowledged."""
    return publish_raw(bootstrap, topic, (e.record() for e in events))


def publish_raw(bootstrap: list[str], topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Publish (key, value) pairs with kafka-python; returns how many the broker acknowledged."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, client_id="lifecycle-publish"
    )
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in records]
        producer.flush()
        for f in futures:
            f.get(timeout=30)
        return len(futures)
    finally:
        producer.close()
