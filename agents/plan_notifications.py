"""life-events → deliveries, notifications: each event is planned by ``Planner.plan_event`` (rules,
guard, fan-out decision); this agent routes what it returns: chunk commands of large audiences to
`fanout`, and the notifications delivered here, where they are planned, or on their lane.

**Delivered where planned.** A batch's notifications go to the deliverer in this agent, as the
lane's agent would deliver them (the same claims, policy, gateway batches and ``deliveries``
records), without a hop through their lane: one production, one consumption, one JSON round trip
and one batch's wait a notification fewer. The batch's events are committed only after that, so
a crash mid-send plans them again into the same notification ids, and what was sent is found
settled. Three things send a notification by its lane instead, so that planning never waits
behind a send (a warning planned next must not): its channel's sends were slow a moment ago
(``app.delivery.shortcut``); its channel is paced and the bucket holds no token for it now; the
batch has more than ``MAX_HERE`` notifications. One that another worker holds a claim on (a
worker that died mid-send holds it for the lease) is not waited for here: it goes by its lane,
which waits. A worker without a deliverer publishes them all, and so does one with
``LIFECYCLE_DELIVER_WHERE_PLANNED=off``.

An event that is not valid JSON, of an unknown type or against its schema goes to
life-events-dlq with the reason, and the agent carries on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial

from faust.types import EventT, StreamT

from agents.common import (
    add_counts,
    dead_letter,
    planned_ahead,
    publish,
    together_or_alone,
    until_available,
)
from agents.deliver_notifications import deliver_planned
from app.core.errors import EventRejected, internal_error
from app.delivery.shortcut import MAX_HERE
from app.intake.events import MAX_EVENT_BYTES, Event, parse_event
from app.notifications import Category, Notification
from app.planning.planner import Outcome, Plan, refuse_oversized
from app.profiles.model import Profile
from topics import fanout, life_events, life_events_dlq
from wiring.faust_app import app, runtime
from wiring.metrics import count_event

logger = logging.getLogger(__name__)
_TYPE = re.compile(rb'"type"\s*:\s*"([a-z0-9_.]{1,80})"')


@app.agent(life_events)
async def plan_notifications(stream: StreamT) -> AsyncIterator[str]:
    async for statuses in planned_ahead(stream, plan_events, finish_events):
        for status in statuses:
            yield status


@dataclass
class Planned:
    """A batch of events planned (``plan_events``), its notifications still to deliver."""

    statuses: list[str]  # each message's, in order: planned, rejected or error
    plans: list[Plan]  # of the events planned and recorded
    ready: list[Notification] = field(default_factory=list)
    encoded: dict[str, bytes] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)


async def plan_events(messages: Sequence[EventT]) -> Planned:
    """Plan a batch of events, each on its own (one that fails is dead-lettered, the others go
    on), with their subjects' profiles read and their plans recorded in one round trip each;
    chunk commands go to `fanout`."""
    rt = runtime()
    planner = rt.planner
    statuses = ["planned"] * len(messages)
    events = await read_events(messages, statuses)
    if rejected := statuses.count("rejected"):
        await until_available(partial(rt.state.count, "events", "rejected", rejected))
    try:
        subjects = await until_available(partial(planner.subject_profiles, [e for _, e in events]))
    except Exception:  # e.g. a stored profile that does not decode: each event reads its own
        logger.exception("reading a batch's subject profiles failed")
        subjects = None
    planned: list[tuple[int, Outcome, dict[str, bytes]]] = []
    for i, event in events:
        try:
            outcome = await until_available(partial(planner.plan_event, event, subjects))
            planned.append((i, outcome, refuse_oversized(outcome.plan, by_lane)))
        except Exception as exc:  # a bug must not lose the event: keep it, with the reason
            logger.exception("planning failed for event %s", event.id)
            await dead_letter(life_events_dlq, messages[i], internal_error(exc))
            statuses[i] = "error"
            count_event(event.type, "error")
    recorded = await together_or_alone(
        [outcome.plan for _, outcome, _ in planned], planner.record, "recording plans"
    )
    batch = Planned(
        statuses, [], profiles={k: p for k, p in (subjects or {}).items() if p is not None}
    )
    for (i, outcome, plan_encoded), failure in zip(planned, recorded, strict=True):
        if failure is not None:
            await dead_letter(life_events_dlq, messages[i], internal_error(failure))
            statuses[i] = "error"
            count_event(outcome.plan.event.type, "error")
            continue
        for key, value in outcome.commands:
            await fanout.send(key=key, value=value)
        plan = outcome.plan
        batch.plans.append(plan)
        batch.ready.extend(plan.notifications)
        batch.encoded.update(plan_encoded)
        batch.profiles.update(plan.profiles)
        if outcome.held and rt.alerts is not None:
            try:
                await rt.alerts.held(outcome.held)
            except Exception:  # the hold stands and is listed; only the e-mail is missing
                logger.exception("telling the approvers of %s failed", outcome.held)
        count_event(
            plan.event.type,
            "held" if outcome.held else "suppressed" if outcome.suppressed else "planned",
        )
        logger.log(logging.INFO if outcome.commands else logging.DEBUG,
                   "event %s (%s): %d rule(s), %d notification(s) planned, %d chunk(s) to fan out",
                   plan.event.id, plan.event.type, len(plan.matched), len(plan.notifications),
                   len(outcome.commands))  # fmt: skip
    return batch


async def finish_events(batch: Planned) -> list[str]:
    """Deliver what a batch planned (here or by its lanes) and count it; each event's status."""
    await deliver_here_or_by_lane(batch.ready, batch.encoded, batch.profiles)
    statuses = batch.statuses
    notifications = sum(len(plan.notifications) for plan in batch.plans)
    await add_counts({f"events:{status}": statuses.count(status) for status in set(statuses)}
                     | {"planned_notifications": notifications})  # fmt: skip
    if statuses:
        logger.info("planned %d event(s) into %d notification(s); %d rejected, %d failed",
                    statuses.count("planned"), notifications, statuses.count("rejected"),
                    statuses.count("error"))  # fmt: skip
    return statuses


def by_lane(n: Notification) -> bool:
    """Whether ``n`` will go by its lane (and so is encoded now); one that the shortcut would take
    may still go by its lane (no token, too many), and is encoded then."""
    rt = runtime()
    return (rt.deliverer is None or not rt.settings.deliver_where_planned
            or not rt.shortcut.open(n.channel))  # fmt: skip


async def deliver_here_or_by_lane(ready: list[Notification], encoded: Mapping[str, bytes],
                                  profiles: Mapping[str, Profile]) -> None:  # fmt: skip
    """Deliver ``ready`` here, but what the shortcut, the pacing or ``MAX_HERE`` sends by its
    lane (see the module's doc)."""
    rt = runtime()
    here: list[Notification] = []
    by_channel: dict[str, list[Notification]] = {}
    laned: list[Notification] = []
    for n in ready:
        if by_lane(n):
            laned.append(n)
        else:
            by_channel.setdefault(n.channel, []).append(n)
    limiter = rt.deliverer.limiter if rt.deliverer is not None else None
    for channel, ns in by_channel.items():
        room = MAX_HERE - len(here)
        taken = min(len(ns), room)
        if limiter is not None and limiter.paced(channel) and taken:
            try:
                taken = await until_available(partial(limiter.take_now, channel, taken))
            except Exception:  # a bucket that cannot be read (not a hash…): the lane's to handle
                logger.exception("taking %s tokens failed; by the lane instead", channel)
                taken = 0
        here.extend(ns[:taken])
        laned.extend(ns[taken:])
    await publish(laned, encoded)
    if not here:
        return
    deliver = partial(deliver_planned, here, profiles, paced=True, leave_contested=True)
    try:
        if any(n.category == Category.WARNING for n in here):
            with rt.urgency.running():  # a policy sweep waits meanwhile
                statuses = await deliver()
        else:
            statuses = await deliver()
    except Exception:  # outside the deliverer's own guard (the producer, a bug): the lanes
        logger.exception("delivering %d notification(s) where planned failed; by their lanes "
                         "instead (what went is found settled there)", len(here))  # fmt: skip
        await publish(here, encoded)
        return
    # Claimed by another worker (one that died mid-send holds it for the claim's lease): its
    # lane waits for the claim to end, not this agent, which plans warnings too.
    if contested := [n for n, status in zip(here, statuses, strict=True) if status == "contested"]:
        logger.info("%d notification(s) claimed elsewhere go by their lane", len(contested))
        await publish(contested, encoded)


async def read_events(messages: Sequence[EventT], statuses: list[str]) -> list[tuple[int, Event]]:
    """The valid events of a batch, with their places; each other message is dead-lettered with
    its reason and its status set to "rejected"."""
    events: list[tuple[int, Event]] = []
    for i, message in enumerate(messages):
        try:
            event = parse_event(message.value)
            published = message.message.timestamp  # the record's time (CreateTime), in seconds
            events.append((i, replace(event, published_at=published) if published else event))
        except EventRejected as exc:
            await dead_letter(life_events_dlq, message, exc.reason)
            statuses[i] = "rejected"
            count_event(claimed_type(message.value), "rejected")
        except Exception as exc:  # whatever the bytes hold, the batch goes on without them
            logger.exception("reading an event failed")
            await dead_letter(life_events_dlq, message, internal_error(exc))
            statuses[i] = "rejected"
            count_event(None, "rejected")
    return events


def claimed_type(raw: object) -> str | None:
    """The type a refused event says it has (only as a label: ``unknown`` unless the catalogue
    knows it), from a cheap look at its bytes; None when there is none to find."""
    if not isinstance(raw, bytes) or len(raw) > MAX_EVENT_BYTES:
        return None
    found = _TYPE.search(raw)
    return found.group(1).decode("ascii") if found else None
