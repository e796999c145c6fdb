"""From an event to planned notifications: match rules, select recipients, render texts.

``Planner.plan(event)`` is the whole decision, without a broker: the agent publishes what it
returns, `rules preview` prints it, `lifecycle dev` uses it to know what to wait for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from app.errors import RenderError
from app.events import Event
from app.expressions import ExpressionError
from app.geo import shapes_of
from app.notifications import Notification, notification_id
from app.profile_store import ProfileStore
from app.rendering import EmailContent, Renderer, SmsContent
from app.rules import Rule, RuleSet
from app.warned import LEVEL_RANK, WarnedRegistry

ADDRESS_FIELD = {"sms": "mobile", "email": "email"}
CHUNK = 500  # profiles fetched and planned together


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
    warning_root: str | None = None  # weather warnings: the first warning of the chain


@dataclass(frozen=True)
class WarningContext:
    """What planning a weather warning needs: its chain and who was already warned at what level."""

    root: str
    rank: int
    warned: dict[str, tuple[int, str]]  # recipient key → (level rank, profile id)
    updating: bool


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
        self.warned = WarnedRegistry(store.redis, store.prefix)

    async def plan(self, event: Event, *, only_rule: str | None = None) -> Plan:
        """The whole plan for an event (what preview and dev use; the worker plans in chunks)."""
        plan = Plan(event)
        warning = await self.warning_context(event)
        plan.warning_root = warning.root if warning else None
        for rule in self.rules.for_event(event.type):
            if only_rule and rule.id != only_rule:
                continue
            plan.matched.append(rule.id)
            try:
                ids = await self.audience(rule, event, warning)
            except ExpressionError as exc:
                plan.skipped.append((rule.id, f"audience: {exc}"))
                continue
            for start in range(0, max(len(ids), 1), CHUNK):
                await self.plan_chunk(plan, rule, ids[start : start + CHUNK], warning)
        return plan

    async def warning_context(self, event: Event) -> WarningContext | None:
        if not event.type.startswith("weather.warning."):
            return None
        root = await self.warned.root(event.data)
        return WarningContext(root=root, rank=LEVEL_RANK.get(str(event.data.get("level")), 0),
                              warned=await self.warned.warned(root),
                              updating=event.type == "weather.warning.updated")  # fmt: skip

    async def audience(self, rule: Rule, event: Event, warning: WarningContext | None) -> list[str]:
        """The ids of the profiles a rule reaches for an event, from the indexes (never a scan)."""
        if rule.subject:
            return [event.subject_id] if event.subject_id else []
        if rule.previously_warned:
            return sorted(
                {profile_id for _, profile_id in (warning.warned.values() if warning else [])}
            )
        assert rule.audience is not None
        context = {"event": event.as_dict(), "data": event.data}
        found: dict[str, None] = {}
        if rule.audience.shapes is not None:
            polygons, circles = shapes_of(rule.audience.shapes.evaluate(context))
            if polygons or circles:
                found.update(
                    dict.fromkeys(
                        await self.store.within(polygons, circles, rule.audience.index_terms())
                    )
                )
        if rule.audience.areas is not None:
            codes = rule.audience.areas.evaluate(context)
            codes = [codes] if isinstance(codes, str) else list(codes or [])
            if codes:
                async for ids in self.store.select(
                    all_of=rule.audience.index_terms(), any_of=[f"area:{c}" for c in codes]
                ):
                    found.update(dict.fromkeys(ids))
        elif rule.audience.shapes is None:
            async for ids in self.store.select(all_of=rule.audience.index_terms()):
                found.update(dict.fromkeys(ids))
        return sorted(found)

    async def plan_chunk(self, plan: Plan, rule: Rule, ids: list[str], warning: WarningContext | None,
                         known: Mapping[str, dict[str, Any] | None] | None = None) -> Plan:  # fmt: skip
        """Plan the notifications of ``rule`` for the profiles ``ids`` into ``plan``; profiles
        already read (None: not found) are taken from ``known``."""
        if known is not None and all(i in known for i in ids):
            profiles = [p for p in (known[i] for i in ids) if p is not None]
        else:
            profiles = await self.store.get_many(ids)
        self._plan_profiles(plan, rule, plan.event, profiles, warning)
        return plan

    def _plan_profiles(self, plan: Plan, rule: Rule, event: Event, profiles: Iterable[dict[str, Any]],
                       warning: WarningContext | None = None) -> None:  # fmt: skip
        found = False
        seen: set[tuple[str, str]] = set()
        for profile in profiles:
            found = True
            context = {"event": event.as_dict(), "data": event.data, "profile": profile}
            if rule.condition is not None and not rule.condition.test(context):
                plan.skipped.append((rule.id, f"condition false for {profile['id']}"))
                continue
            people = self._people(rule, profile, warning)
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

    def _people(
        self, rule: Rule, profile: dict[str, Any], warning: WarningContext | None
    ) -> list[Recipient]:
        """The rule's recipients in a profile; for weather warnings, minus those already warned at
        this level (an update), or exactly those warned earlier (``previously_warned``)."""
        if rule.previously_warned:
            every_contact = replace(rule, contacts=None, fallback_contacts=())
            return [
                p
                for p in recipients_of(every_contact, profile)
                if warning and p.key in warning.warned
            ]
        people = recipients_of(rule, profile)
        if warning and warning.updating:
            people = [p for p in people if warning.warned.get(p.key, (0, ""))[0] < warning.rank]
        return people

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
