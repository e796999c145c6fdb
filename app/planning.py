"""From an event to planned notifications: match rules, select recipients, render texts.

``Planner.plan(event)`` is the whole decision, without a broker: the agent publishes what it
returns, `rules preview` prints it, `lifecycle dev` uses it to know what to wait for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.errors import RenderError
from app.events import Event
from app.expressions import ExpressionError
from app.notifications import Notification, notification_id
from app.profile_store import ProfileStore
from app.rendering import EmailContent, Renderer, SmsContent
from app.rules import Rule, RuleSet

ADDRESS_FIELD = {"sms": "mobile", "email": "email"}


@dataclass(frozen=True)
class Recipient:
    key: str
    profile: dict[str, Any]
    name: str | None
    role: str | None
    mobile: str | None
    email: str | None


@dataclass
class Plan:
    event: Event
    matched: list[str] = field(default_factory=list)  # rule ids
    notifications: list[Notification] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rule id, reason)


def template_context(
    event: Event, profile: dict[str, Any], recipient: Recipient | None
) -> dict[str, Any]:
    """What a template sees."""
    return {
        "event": event.as_dict(),
        "data": event.data,
        "profile": profile,
        "recipient": {
            "name": recipient.name if recipient else profile.get("name"),
            "role": recipient.role if recipient else None,
        },  # fmt: skip
    }


def recipients_of(rule: Rule, profile: dict[str, Any]) -> list[Recipient]:
    """The people a rule reaches in one profile: the person, or chosen enterprise contacts."""
    if profile["kind"] == "person":
        return [Recipient(profile["id"], profile, profile.get("name"), None,
                          profile.get("mobile"), profile.get("email"))]  # fmt: skip
    contacts = profile.get("contacts", [])
    chosen = [
        (i, c)
        for i, c in enumerate(contacts)
        if rule.contacts is None or c["role"] in rule.contacts
    ]
    if not chosen and rule.fallback_contacts:
        chosen = [(i, c) for i, c in enumerate(contacts) if c["role"] in rule.fallback_contacts]
    return [Recipient(f"{profile['id']}/{c['role']}/{i}", profile, c.get("name"), c["role"],
                      c.get("mobile"), c.get("email")) for i, c in chosen]  # fmt: skip


class Planner:
    def __init__(self, rules: RuleSet, store: ProfileStore, renderer: Renderer) -> None:
        self.rules = rules
        self.store = store
        self.renderer = renderer

    async def plan(self, event: Event, *, only_rule: str | None = None) -> Plan:
        plan = Plan(event)
        for rule in self.rules.for_event(event.type):
            if only_rule and rule.id != only_rule:
                continue
            plan.matched.append(rule.id)
            try:
                async for profiles in self._profiles(rule, event):
                    self._plan_profiles(plan, rule, event, profiles)
            except ExpressionError as exc:
                plan.skipped.append((rule.id, f"audience: {exc}"))
        return plan

    async def _profiles(self, rule: Rule, event: Event) -> AsyncIterator[list[dict[str, Any]]]:
        if rule.subject:
            profile = await self.store.get(event.subject_id) if event.subject_id else None
            yield [profile] if profile else []
            return
        assert rule.audience is not None
        any_of: list[str] = []
        if rule.audience.areas is not None:
            codes = rule.audience.areas.evaluate({"event": event.as_dict(), "data": event.data})
            codes = [codes] if isinstance(codes, str) else list(codes or [])
            if not codes:
                return
            any_of = [f"area:{c}" for c in codes]
        async for ids in self.store.select(all_of=rule.audience.index_terms(), any_of=any_of):
            yield await self.store.get_many(ids)

    def _plan_profiles(
        self, plan: Plan, rule: Rule, event: Event, profiles: Iterable[dict[str, Any]]
    ) -> None:
        found = False
        seen: set[tuple[str, str]] = set()
        for profile in profiles:
            found = True
            context = {"event": event.as_dict(), "data": event.data, "profile": profile}
            if rule.condition is not None and not rule.condition.test(context):
                plan.skipped.append((rule.id, f"condition false for {profile['id']}"))
                continue
            people = recipients_of(rule, profile)
            if not people:
                plan.skipped.append((rule.id, f"no matching contact in {profile['id']}"))
            for person in people:
                for channel, template in rule.channels.items():
                    address = getattr(person, ADDRESS_FIELD[channel])
                    if not address or (channel, address) in seen:
                        continue
                    seen.add((channel, address))
                    plan.notifications.append(
                        self._notification(rule, event, person, channel, template)
                    )
        if rule.subject and not found:
            plan.skipped.append((rule.id, f"no profile for subject {event.subject_id}"))

    def _notification(
        self, rule: Rule, event: Event, person: Recipient, channel: str, template: str
    ) -> Notification:
        language = self.renderer.pick_language(template, person.profile.get("language"))
        content: dict[str, Any] = {}
        error = None
        try:
            rendered = self.renderer.render(
                template, channel, language, template_context(event, person.profile, person)
            )
            content = _content_dict(rendered)
        except RenderError as exc:
            error = str(exc)
        return Notification(
            id=notification_id(rule_id=rule.id, rule_version=rule.version, event_id=event.id,
                               recipient=person.key, channel=channel),
            rule_id=rule.id, rule_version=rule.version, category=rule.category, event_id=event.id,
            event_type=event.type, channel=channel, profile_id=person.profile["id"],
            recipient=person.key, recipient_name=person.name, role=person.role,
            address=getattr(person, ADDRESS_FIELD[channel]), language=language,
            planned_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            content=content, error=error,
        )  # fmt: skip


def _content_dict(rendered: SmsContent | EmailContent) -> dict[str, Any]:
    if isinstance(rendered, SmsContent):
        sms = {"text": rendered.text, "segments": rendered.length.segments,
               "encoding": rendered.length.encoding, "units": rendered.length.units}  # fmt: skip
        if rendered.provider:
            sms["provider"] = rendered.provider
        return sms
    return {"subject": rendered.subject, "text": rendered.text, "html": rendered.html}
