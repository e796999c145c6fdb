"""A timer, every second: the journeys' follow-ups whose time has come are planned and sent
(``app.planning.journeys``), and the date reminders that came due are published as their
events (``app.planning.dates``), the calendar rules' (``app.planning.calendar``) among them,
and the enterprises that came to meet a support policy are told (``app.planning.policies``); a
policy new to the deployment is first matched against the enterprises stored before it.

One worker at a time sends them: the one holding the lease in Redis (taken for a few seconds,
kept while it runs; another takes it over when it stops). For each due journey the step is
planned, recorded, published and flushed to the broker, and only then is the journey moved on: a
worker that dies in between publishes the step again, under the same notification ids, and
delivery sends it once. A completion that arrived first has ended the journey: nothing is sent.
A date reminder's event is published and flushed before its entry is marked sent: published twice,
it has the same id and its notifications are delivered once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from agents.common import UNAVAILABLE, publish_plan, send_record
from app.core.redis_client import unavailable
from app.planning.planner import refuse_oversized
from topics import life_events
from wiring.faust_app import app, runtime

logger = logging.getLogger(__name__)

T = TypeVar("T")

INTERVAL_SECONDS = 1.0
LEASE_MS = 5000
OWNER = f"{socket.gethostname()}:{os.getpid()}"


@app.timer(interval=INTERVAL_SECONDS)
async def run_journeys() -> None:
    await tick()


async def tick() -> None:
    """One round of the leader's work, if this worker holds the lease."""
    now = time.time()
    if not await _step("take the lease", runtime().planner.journeys.lease(OWNER, LEASE_MS)):
        return
    await _step("send due follow-ups", send_due(now))
    await _step("schedule calendar dates", runtime().planner.dated.schedule_calendar(now))
    await _step("publish due date reminders", send_due_dates(now))
    await _step("tell enterprises of policies", send_due_policies())
    await _step("sweep new policies", start_policy_sweep())


async def _step(what: str, work: Awaitable[T]) -> T | None:
    """One step of a tick: whatever goes wrong in it is said and tried again at the next tick,
    and the other steps still run (an exception out of a timer would stop the worker). Nothing
    is lost: each step's queue in Redis is only moved on after its work was done."""
    try:
        return await work
    except UNAVAILABLE as exc:
        if not unavailable(exc):
            logger.exception("cannot %s; tried again in a second", what)
            return None
        logger.warning("cannot %s: %s", what, type(exc).__name__)
    except Exception:
        logger.exception("cannot %s; tried again in a second", what)
    return None


async def send_due(now: float) -> int:
    """Send the follow-ups due by ``now`` (the caller holds the lease); how many were sent."""
    rt = runtime()
    journeys = rt.planner.journeys
    sent = 0
    for journey in await journeys.due_journeys(now):
        record = await journeys.journey(journey)
        try:
            plan, why = await rt.planner.plan_step(journey, record, now)
        except Exception as exc:  # a stored journey that cannot be planned must not stop the rest
            logger.exception("journey %s could not be planned; it is ended", journey)
            await journeys.end(journey, f"could not be planned: {type(exc).__name__}")
            continue
        if plan is None or plan.follow_up is None:
            if why == "not due":
                await journeys.requeue(journey, float(record.get("due") or now))
            elif why == "over" or not record:
                await journeys.requeue(journey, None)
            else:
                logger.warning("journey %s ended: %s", journey, why)
                await journeys.end(journey, str(why))
            continue
        encoded = refuse_oversized(plan)
        await rt.planner.record([plan])
        await publish_plan(plan, encoded)
        await app.producer.flush()  # on the broker before the journey moves on
        step = plan.follow_up
        await journeys.advance(journey, step.step, step.round, step.after, step.next_due, now)
        sent += len(plan.notifications)
        logger.info("journey %s: follow-up %d.%d, %d notification(s)", journey, step.step + 1,
                    step.round, len(plan.notifications))  # fmt: skip
    return sent


async def send_due_dates(now: float) -> int:
    """Publish the date reminders due by ``now`` as events (the caller holds the lease)."""
    planner = runtime().planner
    published = []
    for rule_id, profile_id, event in await planner.dated.due_events(now):
        if event is None:
            await planner.dated.queue.drop(rule_id, profile_id)
            continue
        value = json.dumps(event, ensure_ascii=False).encode("utf-8")
        key = (event.get("subject") or {}).get("id") or event["id"]  # as Event.key: area-wide by id
        await send_record(life_events, key.encode("utf-8"), value)
        published.append((rule_id, profile_id, event["data"]["date"]))
    if published:
        await app.producer.flush()  # on the broker before the entries are marked sent
        for rule_id, profile_id, day in published:
            await planner.dated.queue.mark_sent(rule_id, profile_id, day)
        logger.info("published %d date reminder(s)", len(published))
    return len(published)


async def send_due_policies() -> int:
    """Tell each enterprise of the policies it came to meet, as events (the caller holds the
    lease): published and flushed before each is marked told, so one is told again only by an
    event of the same id, which is delivered once."""
    planner = runtime().planner
    published = []
    for policy_id, enterprise_id, event in await planner.matcher.due_events():
        if event is None:
            await planner.matcher.matches.drop(policy_id, enterprise_id)
            continue
        value = json.dumps(event, ensure_ascii=False).encode("utf-8")
        await send_record(life_events, enterprise_id.encode("utf-8"), value)
        published.append((policy_id, enterprise_id, event["occurred_at"][:10]))
    if published:
        await app.producer.flush()
        for policy_id, enterprise_id, day in published:
            await planner.matcher.matches.mark_told(policy_id, enterprise_id, day)
        logger.info("told %d enterprise(s) of a policy", len(published))
    return len(published)


_sweep: asyncio.Task[None] | None = None


async def start_policy_sweep() -> None:
    """Match each policy new to this deployment (or at a new version) against the enterprises
    stored before it, in a task of its own: a city's enterprises take minutes, and the timer
    must go on sending follow-ups meanwhile. A leader that dies mid-sweep leaves the policy
    unmarked; the next one sweeps it again, and what was queued or told is not queued twice."""
    global _sweep
    if _sweep is not None and not _sweep.done():
        return
    planner = runtime().planner
    pending = planner.matcher.to_sweep(await planner.matcher.matches.swept())
    if pending:
        _sweep = asyncio.create_task(_sweep_policies(pending))


async def _sweep_policies(pending: list[Any]) -> None:
    rt = runtime()
    try:
        queued = await rt.planner.matcher.sweep(pending, pause=rt.urgency.pause)
        for policy in pending:
            await rt.planner.matcher.matches.mark_swept(policy.id, policy.version)
    except Exception as exc:  # logged, and tried again by a later tick: nothing is queued twice
        names = ", ".join(p.id for p in pending)
        if unavailable(exc):
            logger.warning("cannot sweep policies %s: %s; they are tried again", names,
                           type(exc).__name__)  # fmt: skip
        else:
            logger.exception("sweeping policies %s failed; they are tried again", names)
        return
    logger.info("policies %s swept: %d match(es) newly queued (%d pause(s) for warnings)",
                ", ".join(f"{p.id} v{p.version}" for p in pending), queued, rt.urgency.waited)  # fmt: skip
