"""Input hygiene of events: too old, dated in the future or past their expiry, they are not acted
on; a file of events reports each bad line and the rest are read."""

import json
from datetime import UTC, datetime, timedelta

from app.intake.events import validate_event, why_not_act
from app.intake.files import read_events
from tests.helpers import graduate_event, weather_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _at(doc, occurred):
    return validate_event(doc | {"occurred_at": occurred.isoformat()})


def test_old_future_and_expired_events_are_not_acted_on():
    fresh = _at(graduate_event("E-1", "P-1"), NOW - timedelta(hours=1))
    assert why_not_act(fresh, NOW, 30) is None
    old = _at(graduate_event("E-2", "P-1"), NOW - timedelta(days=45))
    assert "older than 30 days" in why_not_act(old, NOW, 30)
    assert why_not_act(old, NOW, 0) is None  # 0: no age limit
    future = _at(graduate_event("E-3", "P-1"), datetime(9999, 1, 1, tzinfo=UTC))
    assert "in the future" in why_not_act(future, NOW, 30)
    warning = weather_event("W-1", ["440308"])
    warning["data"]["expires_at"] = (NOW - timedelta(minutes=1)).isoformat()
    assert "expired" in why_not_act(_at(warning, NOW - timedelta(hours=2)), NOW, 30)


def test_events_publish_reports_each_bad_line_and_reads_the_rest():
    good = json.dumps(graduate_event("E-OK", "P-1")).encode()
    lines = [
        good,
        b"[" * 10_000,
        b"\xff\xfe not utf-8",
        b'{"n": ' + b"9" * 5000 + b"}",
        good.replace(b"E-OK", b"E-OK2"),
    ]
    result = read_events(b"\n".join(lines))
    assert [e.id for e in result.events] == ["E-OK", "E-OK2"]
    assert [where for where, _ in result.invalid] == ["line 2", "line 3", "line 4"]
    assert "nested 10000 deep" in result.invalid[0][1] and "not UTF-8" in result.invalid[1][1]
    [(where, reason)] = read_events(b"[" * 50_000).invalid
    assert where == "the array" and "nested" in reason
