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


MAX_VARIATIONS = 60  # per example event


def variations(example: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The example event, and what its type also allows, one field changed at a time, so that a
    template's other branches render too: each optional field left out, each other value of an
    enumerated field, a true/false field flipped. Each as (what changed, event); only variations
    the type's schema accepts."""
    event_type = catalogue()[example["type"]]
    data_schema = (event_type.schema.get("properties") or {}).get("data") or {}
    properties = data_schema.get("properties") or {}
    required = set(data_schema.get("required") or ())
    data = example.get("data") or {}
    found: list[tuple[str, dict[str, Any]]] = [("the example", example)]
    for key, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        changed: list[tuple[str, Any]] = []
        if key in data and key not in required:
            changed.append((f"without data.{key}", _WITHOUT))
        for value in sub.get("enum") or ():
            if data.get(key) != value:
                changed.append((f"data.{key} = {value!r}", value))
        if sub.get("type") == "boolean":
            changed.append((f"data.{key} = {not data.get(key)!r}", not data.get(key)))
        for label, value in changed:
            varied = {k: v for k, v in data.items() if k != key}
            if value is not _WITHOUT:
                varied[key] = value
            candidate = {**example, "data": varied}
            if event_type.fast.is_valid(candidate):
                found.append((label, candidate))
    return found[: MAX_VARIATIONS + 1]


_WITHOUT = object()


def sample_contexts(rule: Rule, *, varied: bool = False) -> list[dict[str, Any]]:
    """One template context per example event of the rule's event types (and, ``varied``, per
    variation of each: ``labelled_contexts``)."""
    return [context for _, context in labelled_contexts(rule, varied=varied)]


def labelled_contexts(rule: Rule, *, varied: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """(what the event is, context) for each example event and each of its variations."""
    profile = sample_profile(rule)
    people: list[Recipient | None] = [*recipients_of(rule, profile)] or [None]
    contexts: list[tuple[str, dict[str, Any]]] = []
    for example in (e for t in rule.event_types for e in catalogue()[t].examples):
        for label, doc in variations(example) if varied else [("the example", example)]:
            event = validate_event(doc)
            contexts.extend((label, template_context(event, profile, person)) for person in people)
    return contexts
