"""A planned notification's JSON between worker versions: a field a newer worker added is left
out by an older reader, not refused (a rolling upgrade does not dead-letter what is in flight);
a record that is not a notification is still refused."""

import json

import pytest

from app.notifications import Notification


def record(**more) -> dict:
    return {"id": "n-1", "rule_id": "r", "rule_version": 1, "category": "warning", "event_id": "E",
            "event_type": "weather.warning.issued", "channel": "sms", "profile_id": "P-1",
            "recipient": "P-1/safety_officer/0", "recipient_name": None, "role": "safety_officer",
            "address": "+8613900000001", "language": "zh-CN", "planned_at": "2026-12-05T00:00:00+00:00",
            "content": {"text": "【测试】大风预警"}} | more  # fmt: skip


def test_a_round_trip_keeps_every_field():
    n = Notification.from_json(json.dumps(record(expires_at="2026-12-05T20:00:00+08:00",
                                                 warning_root="W-1")))  # fmt: skip
    assert Notification.from_json(n.to_json()) == n
    assert (n.expires_at, n.warning_root) == ("2026-12-05T20:00:00+08:00", "W-1")


def test_a_field_from_a_newer_version_is_left_out_not_refused():
    n = Notification.from_json(json.dumps(record(sent_by_carrier_pigeon=True, priority=9)))
    assert n == Notification(**record())


@pytest.mark.parametrize("raw", [json.dumps({k: v for k, v in record().items() if k != "address"}),
                                 json.dumps({k: v for k, v in record(extra=1).items() if k != "id"}),
                                 json.dumps([record()]), "42"])  # fmt: skip
def test_a_record_missing_a_field_or_not_an_object_is_refused(raw):
    with pytest.raises(TypeError):
        Notification.from_json(raw)
