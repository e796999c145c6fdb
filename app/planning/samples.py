"""Sample data for checking and previewing templates: the catalogue's example events and
one person and one enterprise profile shaped like the contract's."""

from __future__ import annotations

from typing import Any

from app.intake.events import catalogue, validate_event
from app.planning.model import Rule
from app.planning.recipients import Recipient, recipients_of, template_context
from app.profiles.model import Profile

SAMPLE_PERSON: Profile = {
    "id": "P-000123", "kind": "person", "name": "李明", "mobile": "+8613800138000",
    "email": "liming@example.cn", "district": "440308", "language": "zh-CN", "tags": [],
}  # fmt: skip
SAMPLE_ENTERPRISE: Profile = {
    "id": "91440300MA5F00000X", "kind": "enterprise", "name": "深圳市某某广告有限公司",
    "district": "440308", "language": "zh-CN", "industry": "advertising", "tags": [],
    "permits": ["outdoor_advertising"],
    "contacts": [
        {"role": "safety_officer", "name": "王强", "mobile": "+8613900139000", "email": "wq@example.cn"},
        {"role": "legal_representative", "name": "陈红", "mobile": "+8613700137000"},
    ],
}  # fmt: skip


def sample_profile(rule: Rule) -> Profile:
    kind = rule.audience.kind if rule.audience else catalogue()[rule.event_type].subject
    if rule.previously_warned:
        kind = "enterprise"
    return SAMPLE_ENTERPRISE if kind == "enterprise" else SAMPLE_PERSON


def sample_contexts(rule: Rule) -> list[dict[str, Any]]:
    """One template context per example event of the rule's event type."""
    profile = sample_profile(rule)
    people: list[Recipient | None] = [*recipients_of(rule, profile)] or [None]
    contexts: list[dict[str, Any]] = []
    for example in (e for t in rule.event_types for e in catalogue()[t].examples):
        event = validate_event(example)
        contexts.extend(template_context(event, profile, person) for person in people)
    return contexts
