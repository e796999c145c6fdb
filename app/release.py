"""Releasing a send held by the blast-radius guard: its audience is selected again (it may have
changed while it waited) and fanned out in chunks."""

from __future__ import annotations

from typing import Any

from app.events import validate_event
from app.fanout import chunk_commands
from app.runtime import Runtime


async def release_held(
    rt: Runtime, hold_id: str, *, by: str
) -> tuple[dict[str, Any], list[tuple[bytes, bytes]]] | None:
    """The held record and the chunk commands to publish on `fanout`; None if nothing is held so."""
    record = await rt.guard.take(hold_id)
    if record is None:
        return None
    event = validate_event(record["event"])
    rule = rt.rules.get(record["rule_id"])
    if rule is None:
        return record, []
    warning = await rt.planner.warning_context(event)
    ids = await rt.planner.audience(rule, event, warning)
    await rt.guard.approve(rule.id, rule.version, by)
    await rt.guard.record_run(rule.id, record.get("audience", len(ids)))
    await rt.state.trace(event.id, "released", rule=rule.id, hold=hold_id, recipients=len(ids),
                         by=by)  # fmt: skip
    return record, chunk_commands(event, rule.id, ids, rt.settings.fanout_chunk)
