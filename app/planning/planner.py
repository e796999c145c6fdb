"""From an event to planned notifications, in one place: match rules, select each audience from
the indexes, hold a send far above its rule's usual (the blast-radius guard), plan a small
audience here and cut a large one into chunk commands that any worker plans.

``Planner.plan_event`` is what a worker does with an event and returns an ``Outcome``; the agent
only routes it (notifications to their lanes, chunk commands to `fanout`). ``Planner.plan`` is the
same loop without the guard, the chunks or any write: what ``rules preview`` prints and what
``lifecycle dev`` waits for. ``plan_chunk_command`` plans one chunk, ``release`` a held send.

Keys (under the configured prefix) are the guard's (``blast``), the warned registry's
(``warned``) and the delivery state's (``app.state``); planning owns none of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.core.errors import ChunkRejected, EventRejected, RenderError
from app.core.geo import shapes_of
from app.core.masking import mask_address
from app.core.timestamps import utc_now_ms
from app.intake.events import Event, expires_at, validate_event, why_not_act
from app.notifications import Category, Content, Notification, notification_id
from app.planning.blast import BlastGuard, HeldSend
from app.planning.explain import Broadcasts, Finding, outside_audience
from app.planning.expressions import ExpressionError
from app.planning.fanout import ChunkCommand, chunk_commands, read_command
from app.planning.followups import Followups
from app.planning.journeys import (
    following,
    next_due,
    step_event_id,
)
from app.planning.matcher import PolicyMatcher
from app.planning.model import Rule, RuleSet
from app.planning.plan import FollowUpStep, Plan
from app.planning.policies import POLICY_EVENT
from app.planning.policies import TRIGGER_TYPES as POLICY_TRIGGERS
from app.planning.recipients import Recipient, recipients_of, template_context
from app.planning.reminders import DateReminders
from app.planning.warned import LEVEL_RANK, WarnedRegistry
from app.profiles.model import Profile
from app.profiles.store import ProfileStore
from app.rendering.renderer import Renderer
from app.state import DeliveryState, Writes

logger = logging.getLogger(__name__)

CHUNK = 500  # profiles fetched and planned together when a whole plan is made at once
HOLD_SAMPLE = 3  # messages a held send shows its approver
GUARD_SAMPLE = 100  # profiles of a large audience planned to estimate its messages
MAX_NOTIFICATION_BYTES = 256 * 1024  # a planned notification; an SMS or e-mail is far smaller


@dataclass
class Outcome:
    """What planning an event decided: the plan (notifications planned here), the chunk commands
    for the audiences too large to plan here, the holds made, or why the event was not acted on."""

    plan: Plan
    commands: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, value) for fanout
    held: list[str] = field(default_factory=list)  # hold ids
    suppressed: str | None = None


@dataclass(frozen=True)
class WarningContext:
    """What planning a weather warning needs: its chain and who was already warned at what level."""

    root: str
    rank: int
    warned: dict[str, tuple[int, str]]  # recipient key → (level rank, profile id)
    updating: bool


@dataclass(frozen=True)
class Released:
    held: HeldSend
    commands: list[tuple[bytes, bytes]]  # (key, value) for fanout


class Planner:
    def __init__(self, rules: RuleSet, store: ProfileStore, renderer: Renderer, *,
                 guard: BlastGuard | None = None, state: DeliveryState | None = None,
                 fanout_chunk: int = CHUNK, max_event_age_days: float = 30,
                 tz: ZoneInfo | None = None) -> None:  # fmt: skip
        """``guard`` and ``state`` are what acting on an event needs (``plan_event``, ``release``,
        ``record``); a planner without them only makes plans (``plan``), as previews do."""
        self.rules = rules
        self.store = store
        self.renderer = renderer
        self.guard = guard
        self.state = state
        self.fanout_chunk = fanout_chunk
        self.max_event_age_days = max_event_age_days
        self.warned = WarnedRegistry(store.redis, store.prefix)
        self.broadcasts = Broadcasts(store.redis, store.prefix)
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.followups = Followups(store.redis, store.prefix, self.tz)  # journeys and outcomes
        self.journeys = self.followups.journeys
        self.matcher = PolicyMatcher(store, self.tz)  # its policies: the live ones (``Runtime``)
        self.outcomes = self.followups.outcomes
        self.dated = DateReminders(store, self.tz, lambda: self.rules)  # date and calendar rules

    # -- the one loop --------------------------------------------------------------------------

    async def plan(self, event: Event, *, only_rule: str | None = None) -> Plan:
        """The whole plan for an event, every audience planned at once, nothing held, fanned out
        or written (what preview and dev use)."""
        return (await self._plan(event, only_rule=only_rule, act=False)).plan

    async def plan_event(
        self, event: Event, subjects: Mapping[str, Profile | None] | None = None
    ) -> Outcome:
        """What a worker does with an event: suppress one too old (or expired), guard each large
        audience, plan the small ones here and cut the large ones into chunk commands. Profiles
        already read (``subject_profiles``) are taken from ``subjects``."""
        state = self._acting()[1]
        stale = why_not_act(event, datetime.now(UTC), self.max_event_age_days)
        if stale:
            await state.count("events", "suppressed")
            logger.info("event %s (%s) suppressed: %s", event.id, event.type, stale)
            return Outcome(Plan(event, skipped=[("*", f"suppressed: {stale}")]), suppressed=stale)
        outcome = await self._plan(event, subjects=subjects, act=True)
        if event.type in POLICY_TRIGGERS and event.subject_id:  # a new enterprise: its policies
            known = (subjects or {}).get(event.subject_id)
            profile = known or await self.store.get(event.subject_id)
            if profile is not None:
                await self.matcher.queue([(event.subject_id, profile)])
        return outcome

    async def _plan(self, event: Event, *, act: bool, only_rule: str | None = None,
                    subjects: Mapping[str, Profile | None] | None = None) -> Outcome:  # fmt: skip
        if event.type == POLICY_EVENT:  # its texts are the live policy's, whoever published it
            told = self.matcher.texts_of(event)
            if told is None:
                why = f"no live policy {event.data.get('policy_id')!r}: nothing is sent"
                return Outcome(Plan(event, skipped=[("*", why)]))
            event = told
        warning = await self.warning_context(event)
        outcome = Outcome(Plan(event, warning_root=warning.root if warning else None))
        plan = outcome.plan
        addressed = {r.id: r.version for r in self.rules.for_event(event.type)
                     if not r.subject and (not only_rule or r.id == only_rule)
                     and (not r.scheduled or r.id == event.data.get("rule_id"))}  # fmt: skip
        if act and addressed:  # remembered for the hotline's "why didn't she get it?"
            await self.broadcasts.remember(event, addressed)
        for rule in self.rules.for_event(event.type):
            if only_rule and rule.id != only_rule:
                continue
            if rule.scheduled and event.data.get("rule_id") != rule.id:
                continue  # a date event is for the one rule whose date came due
            plan.matched.append(rule.id)
            try:
                ids = await self.audience(rule, event, warning)
            except ExpressionError as exc:
                plan.skipped.append((rule.id, f"audience: {exc}"))
                continue
            if not act:
                for start in range(0, max(len(ids), 1), CHUNK):
                    await self.plan_chunk(plan, rule, ids[start : start + CHUNK], warning)
            elif rule.subject:  # one person or enterprise is never a blast
                before = len(plan.notifications)
                await self.plan_chunk(plan, rule, ids, warning, known=subjects)
                if rule.follow_up and len(plan.notifications) > before and event.subject_id:
                    self.followups.start(plan, rule, before)
            else:
                await self._guarded(outcome, rule, ids, warning, subjects)
        plan.completes = bool(
            act and event.subject_id and event.type in self.rules.stop_types and not only_rule
        )  # which journeys: read when it is recorded
        return outcome

    # -- support policies: each enterprise told once of each policy it comes to meet ----------

    async def after_profiles_written(self, written: Sequence[tuple[str, Profile | None]]) -> None:
        """What follows a profile write: its date reminders and its policies."""
        await self.dated.schedule(written)
        await self.matcher.queue(written)

    # -- journeys: the follow-ups of a rule, until the step is done ------------------------------

    async def plan_step(self, journey: str, record: Mapping[str, str], now: float
                        ) -> tuple[Plan | None, str | None]:  # fmt: skip
        """A due journey's step as a plan (its ``follow_up`` says where the journey goes after
        it), or (None, why nothing is sent): "not due", "over" (completed, done or ended) or
        the reason to end it."""
        if record.get("status") != "active":
            return None, "over"
        if float(record.get("due") or 0) > now + 0.001:
            return None, "not due"
        rule = self.rules.get(record.get("rule", ""))
        if rule is None or rule.follow_up is None:
            return None, f"the rule {record.get('rule')!r} has no follow-ups now"
        step, round_ = int(record.get("step") or 0), int(record.get("round") or 1)
        if step >= len(rule.follow_up.steps):
            return None, f"the rule {rule.id} has no step {step + 1} now"
        origin = validate_event(json.loads(record["event"]))
        event = replace(origin, id=step_event_id(origin.id, step, round_))
        this = rule.follow_up.steps[step]
        step_rule = replace(rule, channels=this.channels or rule.channels, follow_up=None,
                            contacts=this.contacts if this.contacts is not None else rule.contacts,
                            fallback_contacts=() if this.contacts is not None else rule.fallback_contacts)  # fmt: skip
        after = following(rule.follow_up, step, round_)
        due = float(record.get("due") or now)
        upcoming = rule.follow_up.steps[after[0]] if after else this
        plan = Plan(event, matched=[rule.id], follow_up=FollowUpStep(
            journey, origin.id, step, round_, after, next_due(max(due, now), upcoming, self.tz)))  # fmt: skip
        await self.plan_chunk(plan, step_rule, [record.get("subject", "")], None)
        return plan, None

    async def _guarded(self, outcome: Outcome, rule: Rule, ids: list[str],
                       warning: WarningContext | None,
                       subjects: Mapping[str, Profile | None] | None) -> None:  # fmt: skip
        """Count messages, not profiles: plan a small audience whole, a large one's first
        profiles; hold the send when the guard says so, else plan it here or in chunks."""
        guard, state = self._acting()
        event = outcome.plan.event
        inline = len(ids) <= self.fanout_chunk
        scratch = Plan(event, warning_root=outcome.plan.warning_root)
        sample = ids if inline else ids[:GUARD_SAMPLE]
        await self.plan_chunk(scratch, rule, sample, warning, known=subjects)
        messages = len(scratch.notifications)
        if not inline and sample:
            messages = round(messages * len(ids) / len(sample))
        reason = await guard.reason_to_hold(rule.id, messages, rule.version)
        if reason:
            shown = [{"channel": n.channel, "to": mask_address(n.channel, n.address),
                       "text": (n.content.get("text") or n.content.get("subject") or "")[:500]}
                      for n in scratch.notifications[:HOLD_SAMPLE]]  # fmt: skip
            hold_id = await guard.hold(event.as_dict(), rule.id, messages, reason,
                                       rule_version=rule.version, sample=shown)  # fmt: skip
            await state.trace(event.id, "held", rule=rule.id, hold=hold_id, reason=reason)
            await state.count("events", "held")
            logger.warning("held %s: %s", hold_id, reason)
            outcome.held.append(hold_id)
            return
        await guard.record_run(rule.id, messages)
        if inline:
            outcome.plan.notifications.extend(scratch.notifications)
            outcome.plan.skipped.extend(scratch.skipped)
        else:
            outcome.commands.extend(chunk_commands(event, rule.id, ids, self.fanout_chunk))
            await state.trace(event.id, "fanned out", rule=rule.id, recipients=len(ids))

    def _acting(self) -> tuple[BlastGuard, DeliveryState]:
        if self.guard is None or self.state is None:
            raise RuntimeError("this planner only previews: it has no guard or delivery state")
        return self.guard, self.state

    # -- one profile, for the hotline ----------------------------------------------------------

    async def explain(self, event: Event, profile: Profile) -> list[Finding]:
        """For each audience rule of ``event``: does it reach ``profile``, and if not, why not
        (``app.planning.explain``). Reached: the notifications it plans, by id and channel."""
        findings = []
        warning: WarningContext | None = None
        for rule in self.rules.for_event(event.type):
            if rule.subject:
                continue
            if warning is None:  # only this profile's entries of a city-wide registry
                every_contact = replace(rule, contacts=None, fallback_contacts=())
                keys = [p.key for p in recipients_of(every_contact, profile)]
                warning = await self.warning_context(event, only=keys)
            finding = Finding(rule.id, rule.version, reached=False, reason="")
            findings.append(finding)
            try:
                if rule.audience is not None:
                    outside = outside_audience(rule, event, profile)
                    if outside:
                        finding.reason = outside
                        continue
                plan = Plan(event)
                self._plan_profiles(plan, rule, event, [profile], warning)
            except ExpressionError as exc:
                finding.reason = f"the rule could not be evaluated: {exc}"
                continue
            if plan.notifications:
                finding.reached = True
                finding.notifications = [(n.id, n.channel) for n in plan.notifications]
                finding.reason = "in the audience: " + ", ".join(
                    f"{n.channel} to {mask_address(n.channel, n.address)}"
                    for n in plan.notifications
                )
            elif rule.condition is not None and any(
                why.startswith("condition false") for _, why in plan.skipped
            ):
                finding.reason = f"the rule's condition is false for it: {rule.condition.source}"
            else:
                finding.reason = self._why_nobody(rule, profile, warning)
        return findings

    def _why_nobody(self, rule: Rule, profile: Profile, warning: WarningContext | None) -> str:
        """Why a profile in the audience gives no notification, in the planner's order."""
        if rule.previously_warned:
            return "not warned earlier under this warning, so not told that it ended"
        everyone = recipients_of(rule, profile)
        if not everyone:
            wanted = ", ".join(rule.contacts or ()) or "any"
            fallback = (
                f" (or {', '.join(rule.fallback_contacts)})" if rule.fallback_contacts else ""
            )
            return f"no contact with the role {wanted}{fallback} on file"
        if warning and warning.updating and not self._people(rule, profile, warning):
            return "already warned under this warning at this level or higher"
        channels = ", ".join(rule.channels)
        return f"no address for {channels} on file for the contacts the rule reaches"

    # -- chunks, holds, what is read and written around a plan --------------------------------

    def read_chunk(self, raw: bytes) -> tuple[ChunkCommand, Event, Rule]:
        """A chunk command from `fanout`, its event and its rule; ChunkRejected with the reason."""
        try:
            command = read_command(raw)
            event = validate_event(command["event"])
            published = command.get("published_at")
            if isinstance(published, int | float) and not isinstance(published, bool):
                event = replace(event, published_at=float(published))
        except (ValueError, EventRejected, KeyError, TypeError, RecursionError) as exc:
            reason = exc.reason if isinstance(exc, EventRejected) else str(exc)
            raise ChunkRejected(f"unreadable chunk command: {reason}", "unreadable") from exc
        rule = self.rules.get(command["rule_id"])
        if rule is None:
            raise ChunkRejected(f"chunk for unknown rule {command['rule_id']!r}", "unknown rule")
        return command, event, rule

    async def plan_chunk_command(self, command: ChunkCommand, event: Event, rule: Rule) -> Plan:
        """Plan one chunk of a large audience (any worker plans any chunk). Of a weather
        warning's registry, only the entries of the chunk's own recipients are read: reading it
        whole for every chunk would make a large warning's planning quadratic."""
        ids = list(command["ids"])
        known: dict[str, Profile | None] = dict.fromkeys(ids)
        known.update((p["id"], p) for p in await self.store.get_many(ids))
        every_contact = replace(rule, contacts=None, fallback_contacts=())
        keys = [r.key for p in known.values() if p for r in recipients_of(every_contact, p)]
        warning = await self.warning_context(event, only=keys)
        chunk = Plan(event, matched=[rule.id], warning_root=warning.root if warning else None,
                     profiles={i: p for i, p in known.items() if p is not None})  # fmt: skip
        await self.plan_chunk(chunk, rule, ids, warning, known=known)
        return chunk

    async def subject_profiles(self, events: Sequence[Event]) -> dict[str, Profile | None]:
        """The profiles of the events' subjects that a rule addresses, in one read (None: no such)."""
        wanted = sorted({e.subject_id for e in events if e.subject_id
                         and any(r.subject for r in self.rules.for_event(e.type))})  # fmt: skip
        found = {p["id"]: p for p in await self.store.get_many(wanted)}
        return {profile_id: found.get(profile_id) for profile_id in wanted}

    async def release(self, hold_id: str, *, by: str) -> Released | None:
        """Release a send held by the guard: its audience is selected again (it may have changed
        while it waited) and cut into chunk commands; the rule's version counts as approved.
        None when nothing is held as ``hold_id``. Every interface (CLI, web) releases here."""
        guard, state = self._acting()
        held = await guard.take(hold_id)
        if held is None:
            return None
        event = validate_event(held["event"])
        rule = self.rules.get(held["rule_id"])
        if rule is None:
            return Released(held, [])
        warning = await self.warning_context(event)
        ids = await self.audience(rule, event, warning)
        await guard.approve(rule.id, rule.version, by)
        await guard.record_run(rule.id, held.get("audience", len(ids)))
        await state.trace(event.id, "released", rule=rule.id, hold=hold_id, recipients=len(ids),
                          by=by)  # fmt: skip
        return Released(held, chunk_commands(event, rule.id, ids, self.fanout_chunk))

    async def record(self, plans: Sequence[Plan], chunk_number: int | None = None) -> list[None]:
        """Remember what plans (or one chunk of a plan) contain: planned states, who is warned,
        trace steps and counters — in one round trip, plus one per weather warning. (None for
        each plan, for ``together_or_alone``.)"""
        state = self._acting()[1]
        for plan in plans:
            event = plan.event
            if plan.warning_root and event.type in (
                "weather.warning.issued",
                "weather.warning.updated",
            ):
                warned = {(n.recipient, n.profile_id) for n in plan.notifications
                          if n.category == Category.WARNING}  # fmt: skip
                await self.warned.record(
                    plan.warning_root, event.data["warning_id"], event.data["level"], warned
                )
            elif plan.warning_root and event.type == "weather.warning.cancelled":
                await state.cancel_warning(plan.warning_root, event.id)  # the rest is not sent
        await self.followups.find_completions(plans)
        writes = Writes()
        for plan in plans:
            state.add_planned(writes, plan.notifications)
            details = {"rules": plan.matched, "notifications": [n.id for n in plan.notifications][:200],
                       "skipped": [f"{r}: {why}" for r, why in plan.skipped][:50]}  # fmt: skip
            steps: list[tuple[str, dict[str, Any]]]
            if plan.follow_up is not None:  # a journey's step: in the trace of its first event
                self.followups.add(writes, plan, state)
                step = plan.follow_up
                state.add_note(writes, step.origin, [(f"follow-up {step.step + 1}.{step.round}",
                                                      details | {"journey": step.journey})],
                               {"planned": len(plan.notifications)})  # fmt: skip
                continue
            if chunk_number is None:  # the whole event
                steps = [("received", {"type": plan.event.type}), ("planned", details)]
                counts = {"received": 1, "planned": len(plan.notifications)}
            else:
                steps = [(f"chunk {chunk_number}", details)]
                counts = {"planned": len(plan.notifications)}
            self.followups.add(writes, plan, state, steps)  # its journeys' steps after "planned"
            state.add_note(writes, plan.event.id, steps, counts)  # in one RPUSH
        await state.apply(writes)
        return [None for _ in plans]

    # -- audiences and recipients --------------------------------------------------------------

    async def warning_context(
        self, event: Event, only: list[str] | None = None
    ) -> WarningContext | None:
        """The warning's chain and who was warned (of the recipient keys ``only``, if given)."""
        if not event.type.startswith("weather.warning."):
            return None
        root = await self.warned.root(event.data)
        return WarningContext(root=root, rank=LEVEL_RANK.get(str(event.data.get("level")), 0),
                              warned=await self.warned.warned(root, only),
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
                         known: Mapping[str, Profile | None] | None = None) -> Plan:  # fmt: skip
        """Plan the notifications of ``rule`` for the profiles ``ids`` into ``plan``; profiles
        already read (None: not found) are taken from ``known``."""
        if known is not None and all(i in known for i in ids):
            profiles = [p for p in (known[i] for i in ids) if p is not None]
        else:
            profiles = await self.store.get_many(ids)
        self._plan_profiles(plan, rule, plan.event, profiles, warning)
        return plan

    def _plan_profiles(self, plan: Plan, rule: Rule, event: Event, profiles: Iterable[Profile],
                       warning: WarningContext | None = None) -> None:  # fmt: skip
        found = False
        seen: set[tuple[str, str]] = set()
        warns = rule.category == Category.WARNING  # its messages end with the warning's end
        ends = (expires_at(event), warning.root if warning is not None else None) if warns else None
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
                    address = person.address(channel)
                    if not address or (channel, address) in seen:
                        continue
                    seen.add((channel, address))
                    plan.notifications.append(
                        self._notification(rule, event, person, channel, address, template, ends)
                    )
        if rule.subject and not found:
            plan.skipped.append((rule.id, f"no profile for subject {event.subject_id}"))

    def _people(
        self, rule: Rule, profile: Profile, warning: WarningContext | None
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

    def _notification(self, rule: Rule, event: Event, person: Recipient, channel: str,
                      address: str, template: str,
                      ends: tuple[str | None, str | None] | None = None) -> Notification:  # fmt: skip
        """``ends``: a warning's (expires_at, chain root), after which it is not sent."""
        language = self.renderer.pick_language(template, person.profile.get("language"))
        content = Content()
        error = None
        try:
            rendered = self.renderer.render(
                template, channel, language, template_context(event, person.profile, person)
            )
            content = rendered.wire()
        except RenderError as exc:
            error = str(exc)
        return Notification(
            id=notification_id(rule_id=rule.id, rule_version=rule.version, event_id=event.id,
                               recipient=person.key, channel=channel),
            rule_id=rule.id, rule_version=rule.version, category=rule.category, event_id=event.id,
            event_type=event.type, channel=channel, profile_id=person.profile["id"],
            recipient=person.key, recipient_name=person.name, role=person.role,
            address=address, language=language,
            planned_at=utc_now_ms(),
            content=content, error=error, event_published_at=event.published_at,
            district=person.profile.get("district"),
            expires_at=ends[0] if ends else None, warning_root=ends[1] if ends else None,
        )  # fmt: skip


def refuse_oversized(plan: Plan, published: Callable[[Notification], bool] = lambda n: True
                     ) -> dict[str, bytes]:  # fmt: skip
    """Each planned notification's JSON, for those ``published`` (the others, delivered where
    they are planned, are only measured: encoded and let go, cheaper with orjson, 0.5 µs, than
    the bound on their size that had been computed instead, 1.9 µs); one larger than
    MAX_NOTIFICATION_BYTES (a profile's text or a template gone wrong) is taken out of the plan,
    with the rule and the recipient (masked) in its reasons: it could not travel on a topic
    (nor to a dead-letter topic), and no message needs that size."""
    encoded: dict[str, bytes] = {}
    kept = []
    for n in plan.notifications:
        value = n.to_json()
        if len(value) > MAX_NOTIFICATION_BYTES:
            plan.skipped.append((n.rule_id, f"the {n.channel} notification to "
                                 f"{mask_address(n.channel, n.address)} is {len(value)} bytes; "
                                 f"at most {MAX_NOTIFICATION_BYTES}"))  # fmt: skip
            continue
        if published(n):
            encoded[n.id] = value
        kept.append(n)
    plan.notifications[:] = kept
    return encoded
