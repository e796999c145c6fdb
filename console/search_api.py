"""Message search for the hotline: ``GET /api/messages?to=MOBILE|EMAIL|PROFILE_ID``.

Every notification to that person within the retention window (30 days), newest first, with its
rule and version, the event that caused it, its status and every step it went through, so "why did
I get this?" and "why didn't I?" (opted out, quiet hours, daily cap, the gateway refused) are
answered from what was recorded. The lookup goes through keyed hashes of the address and the
profile id (``who:{hash}``, written by the deliverer): no phone number, e-mail or id is a key.
Operators and approvers, and only for recipients inside their districts.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app.core.codec import text
from app.core.errors import InvalidInput, ProfileRejected
from app.profiles.phones import normalise_mobile
from app.profiles.validate import normalise_email
from app.state.records import decode_record
from console.api import routes
from console.auth import Caller, audit, error, guarded, services

MAX_RESULTS = 200
STEP_FIELDS = ("at", "step", "outcome", "attempt", "reason", "error", "until", "dead_letter", "by")


def lookups(given: str) -> tuple[str, list[str]] | None:
    """What ``given`` is (mobile, email or profile) and the index values to look it up by."""
    given = given.strip()
    if not given or len(given) > 320:
        return None
    if "@" in given:
        try:
            address = normalise_email(given)
        except (ProfileRejected, InvalidInput, ValueError):
            return None
        # the local part is case-sensitive in law, rarely in fact: a caller's spelling may differ
        return "email", list(dict.fromkeys([address, address.lower()]))
    digits = given.replace(" ", "").replace("-", "")
    if digits.lstrip("+").isdigit():
        try:
            return "mobile", [normalise_mobile(digits)]
        except (InvalidInput, ValueError):
            pass
    return "profile", [f"profile:{given}"]


@routes.get("/api/messages")
@guarded("operator", "approver")
async def messages(request: web.Request, caller: Caller) -> web.StreamResponse:
    found = lookups(request.query.get("to", ""))
    if found is None:
        return error(400, "to: a mobile number, an e-mail address or a profile id")
    kind, values = found
    rt = services(request).runtime
    members: list[tuple[str, float]] = []
    for value in values:
        raw: list[Any] = await rt.redis.zrevrange(
            rt.preferences.who_key(value), 0, MAX_RESULTS * 5, withscores=True
        )
        members += [(text(m), float(score)) for m, score in raw]
    outside = 0
    shown: list[tuple[str, float]] = []
    seen: set[str] = set()
    for member, score in sorted(members, key=lambda m: -m[1]):
        if member in seen:
            continue
        seen.add(member)
        district, _, notification_id = member.partition("|")
        if caller.account.covers([district or "*"]):
            shown.append((notification_id, score))
        else:
            outside += 1
    shown = shown[:MAX_RESULTS]
    async with rt.redis.pipeline(transaction=False) as pipe:
        for notification_id, _ in shown:
            rt.state.queue_record(pipe, notification_id)
            pipe.lrange(rt.state.key("tr", notification_id), 0, -1)
        replies = await pipe.execute()
    results = []
    for i, (notification_id, score) in enumerate(shown):
        record = decode_record(replies[2 * i])
        steps = [json.loads(s) for s in replies[2 * i + 1]]
        results.append({
            "notification": notification_id, "status": record.get("status", "unknown"),
            "rule": record.get("rule_id"), "event": record.get("event_id"),
            "channel": record.get("channel"), "category": record.get("category"),
            "to": record.get("recipient"), "first_seen": score,
            "why": why(record, steps),
            "steps": [{k: v for k, v in s.items() if k in STEP_FIELDS} for s in steps],
        })  # fmt: skip
    await audit(request, caller, "message-search", kind=kind, found=len(results))
    return web.json_response({"kind": kind, "notifications": results,
                              "outside_your_districts": outside})  # fmt: skip


def why(record: dict[str, str], steps: list[dict[str, Any]]) -> str:
    """The answer in a sentence, from what was recorded."""
    status = record.get("status", "unknown")
    last: dict[str, Any] = next(
        (
            s
            for s in reversed(steps)
            if s.get("step") in ("suppressed", "failed", "deferred", "sent")
        ),
        {},
    )
    if status == "sent":
        return f"sent by {record.get('channel')} at {last.get('at', '?')}"
    if status == "suppressed":
        return f"not sent: {last.get('reason') or 'suppressed'}"
    if status == "deferred":
        return f"waiting: {last.get('reason') or 'deferred'} (until {record.get('next_attempt_at', '?')})"
    if status == "failed":
        return f"failed: {last.get('error') or last.get('reason') or 'the gateway refused it'}"
    return f"{status}: planned, not yet handed over"
