"""The dashboard's counts of a batch (``series_counts``): by channel and status, by rule and
status, and the latency of what was sent, whatever mixes in the batch."""

import dataclasses
import time

import pytest

from app.delivery.deliverer import DeliveryOutcome
from tests.unit.delivery.test_deliverer import notification
from wiring.metrics import series_counts


def outcome(n, status: str) -> DeliveryOutcome:
    return DeliveryOutcome(notification_id=n.id, status=status, channel=n.channel,
                           category=n.category, rule_id=n.rule_id, event_id=n.event_id,
                           recipient="masked", attempt=1, at="2026-12-04T00:00:00.000+00:00")  # fmt: skip


def test_a_mixed_batch_is_counted_as_one_count_an_outcome_would_be():
    now = time.time()
    sms = [dataclasses.replace(notification("sms", f"+86138001380{i:02d}", event_id=f"E{i}"),
                               rule_id="warn-a" if i % 2 else "warn-b", event_published_at=now - 2)
           for i in range(6)]  # fmt: skip
    mail = dataclasses.replace(notification("email", "a@example.cn"), event_published_at=None)
    odd = dataclasses.replace(notification("sms", "+8613800138099"), channel="fax",
                              rule_id="no such rule!", event_published_at=now - 1)  # fmt: skip
    batch = [*sms, mail, odd, sms[0]]
    results = [[outcome(n, "sending"), outcome(n, "sent")] for n in sms]
    results += [[outcome(mail, "sending"), outcome(mail, "sent")], [outcome(odd, "failed")],
                RuntimeError("a bug: not counted")]  # fmt: skip
    counts = series_counts(batch, results)
    latency = counts.pop("latency_sum:sms")
    assert counts == {
        "sending:sms": 6, "sent:sms": 6, "sending:email": 1, "sent:email": 1,
        "failed:unknown": 1,
        "rule:warn-a:sending": 3, "rule:warn-a:sent": 3, "rule:warn-b:sending": 3,
        "rule:warn-b:sent": 3, "rule:r:sending": 1, "rule:r:sent": 1, "rule:unknown:failed": 1,
        "latency_count:sms": 6,  # the e-mail's event has no publication time
    }  # fmt: skip
    assert 6 * 2 <= latency < 6 * 2 + 6 * 5  # six sends, each some 2 s after its event


@pytest.mark.parametrize("results", [[], [RuntimeError("x")]])
def test_nothing_counted_is_nothing(results):
    batch = [notification("sms", "+8613800138000")][: len(results)]
    assert series_counts(batch, results) == {}
