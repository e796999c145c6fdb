"""The refusal of a planned notification too large to travel on a topic (``refuse_oversized``),
whether it is published or delivered where it was planned."""

from __future__ import annotations

import random
from dataclasses import replace

from app.intake.events import validate_event
from app.notifications import Notification
from app.planning.planner import MAX_NOTIFICATION_BYTES, Plan, refuse_oversized
from tests.helpers import weather_event

ALPHABET = 'aZ9 "\\\n\t\x00\x1f\u2028é中文💥'  # escapes, multi-byte, astral (lone surrogates are refused at intake)


def notification(nid: str, text: str, category: str = "warning", **content: object) -> Notification:
    return Notification(id=nid, rule_id="r-1", rule_version=3, category=category, event_id="E-1",
                        event_type="weather.warning.issued", channel="sms", profile_id="E00000001",
                        recipient="E00000001/safety_officer/0", recipient_name="王强",
                        role="safety_officer", address="+8613900139000", language="zh-CN",
                        planned_at="2026-12-03T10:00:00+08:00",
                        content={"text": text, "segments": 2, **content},  # type: ignore[typeddict-item]
                        event_published_at=1.7e9)  # fmt: skip


def test_the_limit_is_the_encoded_size_in_bytes_escapes_and_multibyte_characters_included(
) -> None:  # fmt: skip
    rng = random.Random(14)
    for i in range(300):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 400)))
        extra = {"provider": {"aliyun": {"template_code": "SMS_1", "params": {"name": text[:9]}}}}
        n = notification(f"n{i}", text, **(extra if i % 2 else {}))
        if i % 5 == 0:  # fields that may be empty, and a text in one of them
            n = replace(n, recipient_name=None, role=text[:40], event_published_at=None)
        size = len(n.to_json())
        base = "x" * max(0, MAX_NOTIFICATION_BYTES - size)  # pad the text to the limit, ±1
        for pad, kept in ((len(base) - 1, True), (len(base), True), (len(base) + 1, False)):
            padded = replace(n, content={**n.content, "text": text + "x" * pad})
            for published in (True, False):
                plan = Plan(validate_event(weather_event("E-1", ["440308"])))
                plan.notifications.append(padded)
                encoded = refuse_oversized(plan, published=lambda _, p=published: p)
                assert (plan.notifications == [padded]) is kept, (i, pad, published)
                assert list(encoded) == ([padded.id] if kept and published else [])


def test_a_warning_delivered_in_place_is_measured_and_an_oversized_one_refused_all_the_same() -> (
    None
):
    plan = Plan(validate_event(weather_event("E-1", ["440308"])))
    plan.notifications += [
        notification("w-small", "台风红色预警"),
        notification("w-big", "中" * MAX_NOTIFICATION_BYTES),
        notification("r-small", "ok", category="reminder"),
        notification("r-big", "\x00" * (MAX_NOTIFICATION_BYTES // 5), category="reminder"),
    ]
    encoded = refuse_oversized(plan, published=lambda n: n.category != "warning")
    assert [n.id for n in plan.notifications] == ["w-small", "r-small"]
    assert list(encoded) == ["r-small"]  # the warning is delivered here: not kept
    assert encoded["r-small"] == plan.notifications[1].to_json()
    reasons = [reason for _, reason in plan.skipped]
    assert len(reasons) == 2 and all("+86139****9000" in r for r in reasons)
    assert all(f"at most {MAX_NOTIFICATION_BYTES}" in r for r in reasons)
