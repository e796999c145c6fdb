"""The worker's metrics, in Prometheus text format (``GET /metrics``), with prometheus_client.

Families (``../shared/CONTRACT.md``, "Metrics"):

    lifecycle_events_total{type,outcome}                 events planned, rejected, suppressed, held, error
    lifecycle_notifications_total{rule,channel,status}   delivery outcomes: sent, deferred, suppressed, failed
    lifecycle_delivery_latency_seconds{channel,category} histogram: the event's publication on
                                                         life-events → the hand-off to the gateway
    lifecycle_consumer_lag{topic,partition}              messages behind the partition's current end
    lifecycle_dead_letters_total{topic,reason}           dead letters by topic and reason class
    lifecycle_held_sends                                 sends held for an approver now
    lifecycle_gateway_up{channel}                        1 when the channel's gateway answered its last check
    lifecycle_deferred_notifications                     waiting in the deferred queue (quiet hours, retries)
    lifecycle_outcome_journeys{rule,version,group,state} journeys by state: started, open, decided,
                                                         completed (within the rule's window)
    lifecycle_outcome_completion_ratio{rule,version,group}   completed / decided
    lifecycle_outcome_median_seconds{rule,version,group}     median start → completion, of those completed

Labels are bounded: an event type the catalogue does not know is ``unknown``, a dead letter's
reason is its class (``reason_class``), never its text; no label carries an id or an address.

Counters and the histogram are per process, counted where the agents act. Lag, held sends, the
gateways and the outcomes (``app.state.outcomes``) are read when Prometheus scrapes: lag from the group's committed
offsets and each partition's end offset asked of the broker then, so an idle partition reads 0
and never a stale end. Every worker reports the lag of the whole group: take ``max`` across them.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import Counter as CountOf
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from app.intake.events import catalogue

if TYPE_CHECKING:
    from app.notifications import Notification

logger = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
# off only to measure what counting costs (bench/metrics_cost.py): /metrics then shows zeros
COUNTING = os.environ.get("LIFECYCLE_METRICS", "on") != "off"

EVENTS = Counter("lifecycle_events", "Events by type and outcome.", ["type", "outcome"],
                 registry=REGISTRY)  # fmt: skip
NOTIFICATIONS = Counter("lifecycle_notifications", "Delivery outcomes by rule, channel and status.",
                        ["rule", "channel", "status"], registry=REGISTRY)  # fmt: skip
LATENCY = Histogram(
    "lifecycle_delivery_latency_seconds",
    "From the event's publication on life-events to the hand-off to the gateway.",
    ["channel", "category"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
    registry=REGISTRY,
)
DEAD_LETTERS = Counter("lifecycle_dead_letters", "Dead letters by topic and reason class.",
                       ["topic", "reason"], registry=REGISTRY)  # fmt: skip
LAG = Gauge("lifecycle_consumer_lag", "Messages behind the partition's current end.",
            ["topic", "partition"], registry=REGISTRY)  # fmt: skip
HELD = Gauge("lifecycle_held_sends", "Sends held for an approver.", registry=REGISTRY)
DEFERRED = Gauge("lifecycle_deferred_notifications", "Notifications waiting in the deferred queue "
                 "(quiet hours, retries).", registry=REGISTRY)  # fmt: skip
GATEWAY_UP = Gauge("lifecycle_gateway_up", "1 when the channel's gateway answered its last check.",
                   ["channel"], registry=REGISTRY)  # fmt: skip
WHERE_PLANNED = Gauge("lifecycle_delivered_where_planned", "1 while the channel's notifications "
                      "are sent by the agent that planned them; 0 while they go by their lane "
                      "(its sends were slow a moment ago, or the worker is set so).",
                      ["channel"], registry=REGISTRY)  # fmt: skip

OUTCOME_JOURNEYS = Gauge("lifecycle_outcome_journeys", "Journeys of a rule version by group and "
                         "state: started, open, decided, completed within the window.",
                         ["rule", "version", "group", "state"], registry=REGISTRY)  # fmt: skip
OUTCOME_RATIO = Gauge("lifecycle_outcome_completion_ratio", "Journeys completed within the window "
                      "of those decided.", ["rule", "version", "group"], registry=REGISTRY)  # fmt: skip
OUTCOME_MEDIAN = Gauge("lifecycle_outcome_median_seconds", "Median time from a journey's start to "
                       "its completion, of those completed within the window.",
                       ["rule", "version", "group"], registry=REGISTRY)  # fmt: skip

# (pattern, class): the first that matches a reason names its class
_REASONS = [
    (r"^not UTF-8", "not_utf8"),
    (r"^invalid JSON|^invalid (event|request): nested|^an event is a JSON object", "invalid_json"),
    (r"bytes; the limit is", "too_large"),
    (r"^empty message", "empty"),
    (r"^unknown event type", "unknown_type"),
    (r"^internal error", "internal"),
    (r"^undecodable notification", "undecodable"),
    (r"^unreadable chunk|^chunk for unknown rule", "bad_chunk"),
    (r"^replayed|^replay", "replay"),
]
_REASON_PATTERNS = [(re.compile(p), c) for p, c in _REASONS]
RULE_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def reason_class(reason: str) -> str:
    """A dead letter's reason as a bounded label: schema (a field failed its type's schema),
    delivery (the gateways gave up), or one of the classes above."""
    for pattern, name in _REASON_PATTERNS:
        if pattern.search(reason):
            return name
    if re.match(r"^[a-z0-9_.]+: ", reason) or reason.startswith(
        ("data.", "subject", "occurred_at")
    ):
        return "schema"
    return "delivery" if reason else "other"


def type_label(event_type: object) -> str:
    return event_type if isinstance(event_type, str) and event_type in catalogue() else "unknown"


def rule_label(rule_id: object) -> str:
    """A rule id as a label (``unknown`` if it does not look like one); remembered, as a
    batch's outcomes ask for the same few ids again and again (a bounded memory: an id is
    whatever a record on a lane holds)."""
    if not isinstance(rule_id, str):
        return "unknown"
    label = _rule_labels.get(rule_id)
    if label is None:
        label = rule_id if RULE_LABEL.fullmatch(rule_id) else "unknown"
        if len(_rule_labels) < RULE_LABELS_KEPT:
            _rule_labels[rule_id] = label
    return label


RULE_LABELS_KEPT = 4096
_rule_labels: dict[str, str] = {}


_children: dict[tuple[Any, ...], Any] = {}  # (family, labels…) → its child: labels() is slow


def _child(family: Any, *labels: str) -> Any:
    key = (id(family), *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = family.labels(*labels)
    return child


def count_event(event_type: object, outcome: str) -> None:
    if COUNTING:
        _child(EVENTS, type_label(event_type), outcome).inc()


def count_dead_letter(topic: str, reason: str) -> None:
    if COUNTING:
        _child(DEAD_LETTERS, topic, reason_class(reason)).inc()


def count_deliveries(outcomes: Iterable[tuple[str, str, str, str, object]]) -> None:
    """A batch's delivery outcomes, each a (rule id, channel, category, status, event's
    publication time); for a hand-off to the gateway, its latency from the event's publication.
    ``channel`` and ``category`` as the record claims them: bounded here. Each counter is bumped
    once per label set and each latency observed once per distinct value
    (the batch's sends share one reading of the clock, a chunk's recipients one event), with the
    totals that a call for each would give. Two calls a recipient had cost a fan-out 5 µs of its
    worker's CPU a recipient."""
    if not COUNTING:
        return
    counts: CountOf[tuple[str, str, str]] = CountOf()
    latencies: CountOf[tuple[str, str, float]] = CountOf()
    now = time.time()
    for rule_id, channel, category, status, published_at in outcomes:
        channel = channel if channel in ("sms", "email") else "unknown"
        counts[(rule_label(rule_id), channel, status)] += 1
        if (
            status == "sent"
            and isinstance(published_at, int | float)
            and not isinstance(published_at, bool)
        ):
            category = category if category in ("reminder", "notice", "warning") else "unknown"
            latencies[(channel, category, max(0.0, now - published_at))] += 1
    for labels, times in counts.items():
        _child(NOTIFICATIONS, *labels).inc(times)
    for (channel, category, seconds), times in latencies.items():
        observe_times(_child(LATENCY, channel, category), seconds, times)


def observe_times(histogram: Any, amount: float, times: int) -> None:
    """``histogram.observe(amount)`` ``times`` times, at the cost of one: the sum grows by
    ``amount * times`` and the bucket by ``times`` (prometheus_client keeps a histogram child's
    sum and per-bucket counts as values it exposes cumulatively). A client without those
    attributes is called ``times`` times."""
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    total = getattr(histogram, "_sum", None)
    if times == 1 or buckets is None or bounds is None or total is None:
        for _ in range(times):
            histogram.observe(amount)
        return
    total.inc(amount * times)
    for i, bound in enumerate(bounds):
        if amount <= bound:
            buckets[i].inc(times)
            break


def update_gauges(health: Any) -> None:
    """Lag, held sends and gateways from a ``wiring.health.Health`` just checked."""
    for channel, state in health.gateways.items():
        GATEWAY_UP.labels(channel).set(1 if state == "ok" else 0)
    if health.kafka == "ok":
        LAG.clear()  # partitions gone from the group are not reported forever
        for (topic, partition), behind in health.lag.items():
            LAG.labels(topic, str(partition)).set(behind)
    if health.held is not None:
        HELD.set(health.held)
    if health.deferred is not None:
        DEFERRED.set(health.deferred)


def update_where_planned(runtime: Any) -> None:
    """Whether each channel is delivered where planned now (``app.delivery.shortcut``)."""
    on = runtime.deliverer is not None and runtime.settings.deliver_where_planned
    for channel in ("sms", "email"):
        WHERE_PLANNED.labels(channel).set(1 if on and runtime.shortcut.open(channel) else 0)


def update_outcomes(cohorts: Any) -> None:
    """The outcome gauges from ``OutcomeStore.figures`` just read (a ratio or median only where
    there is one)."""
    for family in (OUTCOME_JOURNEYS, OUTCOME_RATIO, OUTCOME_MEDIAN):
        family.clear()
    for c in cohorts:
        labels = (rule_label(c.rule), str(int(c.version)), c.group)
        for state in ("started", "open", "decided", "completed"):
            OUTCOME_JOURNEYS.labels(*labels, state).set(getattr(c, state))
        if c.rate is not None:
            OUTCOME_RATIO.labels(*labels).set(c.rate)
        if c.median_seconds is not None:
            OUTCOME_MEDIAN.labels(*labels).set(c.median_seconds)


def exposition() -> bytes:
    return generate_latest(REGISTRY)


def series_counts(batch: Sequence[Notification], results: Sequence[Any]) -> dict[str, float]:
    """What a batch adds to the dashboard's counts: outcomes by channel and by rule, latency.
    Tallied by (status, channel, rule) first, its text keys made once each (a chunk's thousand
    recipients share a handful), the latency against one reading of the clock."""
    now = time.time()
    tally: CountOf[tuple[str, str, str]] = CountOf()
    waited: dict[str, float] = {}  # by channel: the sent's seconds since their events
    sent: CountOf[str] = CountOf()
    for n, outcomes in zip(batch, results, strict=True):
        if isinstance(outcomes, Exception):
            continue
        channel = n.channel if n.channel in ("sms", "email") else "unknown"
        for outcome in outcomes:
            tally[(outcome.status, channel, n.rule_id)] += 1
            if outcome.status == "sent" and isinstance(n.event_published_at, int | float):
                waited[channel] = waited.get(channel, 0.0) + max(0.0, now - n.event_published_at)
                sent[channel] += 1
    counts: CountOf[str] = CountOf()
    for (status, channel, rule_id), times in tally.items():
        counts[f"{status}:{channel}"] += times
        counts[f"rule:{rule_label(rule_id)}:{status}"] += times
    for channel, times in sent.items():
        counts[f"latency_count:{channel}"] += times
    return {**counts, **{f"latency_sum:{c}": seconds for c, seconds in waited.items()}}
