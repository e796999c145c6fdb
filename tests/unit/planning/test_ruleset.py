"""``RuleSet`` keeps what it answered for an event type, and answers afresh when its rules change."""

from dataclasses import replace

from app.core.settings import Settings
from app.planning.rules import load_rules
from wiring.runtime import make_renderer


def shipped():
    settings = Settings()
    return load_rules(settings.rules_dir, make_renderer(settings))


def test_an_event_type_s_rules_are_the_enabled_ones_and_asked_again_the_same():
    rules = shipped()
    found = rules.for_event("graduate.reception.approved")
    assert found and all(
        r.enabled and "graduate.reception.approved" in r.event_types for r in found
    )
    assert found == [r for r in rules.rules
                     if r.enabled and "graduate.reception.approved" in r.event_types]  # fmt: skip
    assert rules.for_event("graduate.reception.approved") is found
    assert rules.for_event("no.such.type") == []
    assert "hukou.migration.completed" in rules.stop_types


def test_rules_added_or_replaced_are_seen():
    rules = shipped()
    before = rules.for_event("graduate.reception.approved")
    stops = rules.stop_types
    extra = replace(before[0], id="extra", event_types=("graduate.reception.approved",))
    rules.rules.append(extra)
    assert rules.for_event("graduate.reception.approved") == [*before, extra]
    rules.rules = [replace(r, enabled=False) if r.id == before[0].id else r for r in rules.rules]
    assert before[0].id not in [r.id for r in rules.for_event("graduate.reception.approved")]
    rules.rules = [r for r in rules.rules if not r.follow_up]
    assert rules.stop_types == frozenset() != stops
