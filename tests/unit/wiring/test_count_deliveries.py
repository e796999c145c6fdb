"""A batch's delivery outcomes counted at once (``count_deliveries``) show what counting each one
would: the counters by rule, channel and status, the latency histogram's buckets, count and sum,
parsed back from the Prometheus text."""

import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wiring.metrics import count_deliveries, exposition, observe_times

BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)


def samples(text: bytes, name: str, **labels: str) -> dict[tuple[str, str], float]:
    """(sample name, its le or "") → value, for the samples of family ``name`` with ``labels``."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        if family.name != name:
            continue
        for s in family.samples:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                found[(s.name, s.labels.get("le", ""))] = s.value
    return found


def test_counters_and_latency_of_a_batch():
    rule = f"rule-{uuid.uuid4().hex[:8]}"  # a label of its own: other tests count too
    published = time.time() - 3.0  # 3 s ago: the 5 s bucket
    batch = (
        [(rule, "sms", "warning", "sending", published)] * 400
        + [(rule, "sms", "warning", "sent", published)] * 399
        + [(rule, "sms", "warning", "failed", published)]
        + [(rule, "email", "warning", "sent", None)]  # no publication time: not observed
        + [(rule, "fax", "warning", "sent", published)]  # an unknown channel: bounded
    )
    before = samples(exposition(), "lifecycle_delivery_latency_seconds",
                     channel="sms", category="warning")  # fmt: skip
    count_deliveries(batch)
    text = exposition()
    by_status = {}
    for family in text_string_to_metric_families(text.decode()):
        if family.name == "lifecycle_notifications":
            for s in family.samples:
                if s.labels.get("rule") == rule and s.name.endswith("_total"):
                    by_status[(s.labels["channel"], s.labels["status"])] = s.value
    assert by_status == {("sms", "sending"): 400, ("sms", "sent"): 399, ("sms", "failed"): 1,
                         ("email", "sent"): 1, ("unknown", "sent"): 1}  # fmt: skip
    after = samples(text, "lifecycle_delivery_latency_seconds", channel="sms", category="warning")
    grew = {k: v - before.get(k, 0.0) for k, v in after.items()}
    assert grew[("lifecycle_delivery_latency_seconds_count", "")] == 399
    assert grew[("lifecycle_delivery_latency_seconds_bucket", "2.0")] == 0
    assert grew[("lifecycle_delivery_latency_seconds_bucket", "5.0")] == 399
    assert grew[("lifecycle_delivery_latency_seconds_bucket", "+Inf")] == 399
    assert 399 * 3.0 <= grew[("lifecycle_delivery_latency_seconds_sum", "")] < 399 * 4.0


@given(st.lists(st.tuples(st.floats(0, 200_000, allow_nan=False), st.integers(1, 1000)),
                max_size=20))  # fmt: skip
def test_observe_times_is_observe_repeated(values):
    one, many = CollectorRegistry(), CollectorRegistry()
    each = Histogram("h", "h", buckets=BUCKETS, registry=one)
    once = Histogram("h", "h", buckets=BUCKETS, registry=many)
    for amount, times in values:
        for _ in range(times):
            each.observe(amount)
        observe_times(once, amount, times)
    expected = samples(generate_latest(one), "h")
    got = samples(generate_latest(many), "h")
    total = ("h_sum", "")
    assert {k: v for k, v in got.items() if k != total} == {
        k: v for k, v in expected.items() if k != total
    }
    assert got[total] == pytest.approx(expected[total], rel=1e-9, abs=1e-6)


def test_observe_times_falls_back_to_observe_without_the_clients_attributes():
    seen = []

    class Plain:
        def observe(self, amount: float) -> None:
            seen.append(amount)

    observe_times(Plain(), 0.5, 3)
    assert seen == [0.5, 0.5, 0.5]


def test_values_no_record_should_hold_are_counted_as_unknown_not_raised_on():
    rule = f"rule-{uuid.uuid4().hex[:8]}"
    odd = [
        ({"a": 1}, "sms", "warning", "sent", "soon"),  # a rule id that is no text, a time either
        (rule, ["sms"], {"x": 1}, "sent", True),  # a bool is no publication time
        (rule, "sms", "warning", "sent", float("nan")),
        ("Not A Rule Id!", "sms", "warning", "failed", None),
    ]
    count_deliveries(odd)
    by_labels = {}
    for family in text_string_to_metric_families(exposition().decode()):
        if family.name == "lifecycle_notifications":
            for s in family.samples:
                if s.labels.get("rule") == rule and s.name.endswith("_total"):
                    by_labels[(s.labels["channel"], s.labels["status"])] = s.value
    assert by_labels == {("unknown", "sent"): 1, ("sms", "sent"): 1}
