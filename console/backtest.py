"""Backtest: what a draft would have sent over past events, next to what the live version sent
(would have sent: both are planned again now, against today's profiles). Nothing is sent or
recorded."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from app.planning.planner import Planner
from console.api import routes
from console.auth import Caller, audit, body_json, error, guarded, services
from console.preview import planner_with, rule_to_try
from console.rules_api import rule_districts
from wiring.history import past_events

MAX_DAYS = 400
MAX_PLANNED = 20_000  # events planned per backtest (each side)


async def _tally(planner: Planner, rule_id: str, events: list[Any], tz: Any) -> dict[str, Any]:
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    recipients: set[str] = set()
    matched = 0
    for event in events:
        plan = await planner.plan(event, only_rule=rule_id)
        rendered = [n for n in plan.notifications if not n.error]
        matched += bool(rendered)
        for n in rendered:
            by_day[event.occurred_at.astimezone(tz).date().isoformat()][n.channel] += 1
            recipients.add(n.recipient)
    return {"events_with_messages": matched, "messages": sum(sum(c.values()) for c in by_day.values()),
            "recipients": len(recipients),
            "by_day": {day: dict(sorted(c.items())) for day, c in sorted(by_day.items())}}  # fmt: skip


@routes.post("/api/rules/{rule_id}/backtest")
@guarded("author", "approver", "operator")
async def backtest(request: web.Request, caller: Caller) -> web.StreamResponse:
    found = await rule_to_try(request)
    if isinstance(found, web.Response):
        return found
    rule_id, version = found
    doc = await body_json(request)
    try:
        since = datetime.fromisoformat(str(doc["from"]))
        until = datetime.fromisoformat(str(doc["to"]))
    except (KeyError, TypeError, ValueError):
        return error(400, 'a backtest needs {"from": ISO time, "to": ISO time} with their zones')
    if since.tzinfo is None or until.tzinfo is None:
        return error(400, "from and to need their time zones, such as +08:00")
    if not since < until or until - since > timedelta(days=MAX_DAYS):
        return error(400, f"from must be before to, at most {MAX_DAYS} days apart")
    rt = services(request).runtime
    on = version["rule"].get("on")
    types = frozenset(on if isinstance(on, list) else [on]) | frozenset(
        t for r in [rt.rules.get(rule_id)] if r for t in r.event_types
    )
    events, read, stopped = await past_events(rt.settings.kafka_servers, since, until, types)
    truncated = stopped or len(events) > MAX_PLANNED
    events = events[:MAX_PLANNED]
    draft_planner, root = await planner_with(request, rule_id, version)
    try:
        if draft_planner.rules.get(rule_id) is None:
            return error(422, "the draft does not load; save it to see its errors")
        draft = await _tally(draft_planner, rule_id, events, rt.settings.tz)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    await rt.reload_rules()
    live = (
        await _tally(rt.planner, rule_id, events, rt.settings.tz) if rt.rules.get(rule_id) else None
    )
    await audit(request, caller, "backtest", districts=tuple(rule_districts(version["rule"])),
                rule=rule_id, events=len(events))  # fmt: skip
    return web.json_response({
        "from": since.isoformat(), "to": until.isoformat(), "records_read": read,
        "events": len(events), "truncated": truncated, "draft": draft, "live": live,
        "difference": {"messages": draft["messages"] - (live["messages"] if live else 0),
                       "recipients": draft["recipients"] - (live["recipients"] if live else 0)},
    })  # fmt: skip
