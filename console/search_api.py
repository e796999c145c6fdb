"""Message search for the hotline: ``GET /api/messages?to=MOBILE|EMAIL|PROFILE_ID``.

Every notification to that person within the retention window (30 days), newest first, with its
rule and version, the event that caused it, its status and every step it went through, so "why did
I get this?" and "why didn't I?" (opted out, quiet hours, daily cap, the gateway refused) are
answered from what was recorded. The lookup goes through keyed hashes of the address and the
profile id (``who:{hash}``, written by the deliverer): no phone number, e-mail or id is a key.
Operators and approvers, and only for recipients inside their districts.

"Why didn't she get the warning?" is answered under ``not_reached``: for the profile searched
(by id, or the profiles the notifications found belong to), each broadcast of the retention window
that did not reach it, with the reason — not in the warning's areas, not an enterprise with that
permit, the rule's condition false, no contact with the role on file, no mobile number — from the
planner's own steps (``app.planning.explain``), and a broadcast it was in the audience of but
nothing was recorded for (the profile changed afterwards, or the send is held). A broadcast that
reached the profile under one of its rules (a typhoon: the signs' rule) is not listed for the
others it missed (the construction sites' rule): the person was told of it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.core.codec import text
from app.core.errors import EventRejected, InvalidInput, ProfileRejected
from app.intake.events import validate_event
from app.profiles.phones import normalise_mobile
from app.profiles.validate import normalise_email
from app.state.records import decode_record
from app.state.writes import read_step, with_sent_step
from console.api import routes
from console.auth import Caller, audit, error, guarded, services
from wiring.runtime import Runtime

MAX_RESULTS = 200
PROFILES_EXPLAINED = 3  # the profiles walked through the recent broadcasts
BROADCASTS_EXPLAINED = 50
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
    body = await find_messages(request, caller, request.query.get("to", ""))
    if body is None:
        return error(400, "to: a mobile number, an e-mail address or a profile id")
    return web.json_response(body)


async def find_messages(request: web.Request, caller: Caller,
                        given: str) -> dict[str, Any] | None:  # fmt: skip
    """What the API answers and the page shows (None: ``given`` is none of the three); the
    search is audited, without what was searched for."""
    found = lookups(given)
    if found is None:
        return None
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
    profile_ids = [values[0].removeprefix("profile:")] if kind == "profile" else []
    for i, (notification_id, score) in enumerate(shown):
        record = decode_record(replies[2 * i])
        if record.get("profile") and record["profile"] not in profile_ids:
            profile_ids.append(record["profile"])
        steps = with_sent_step([read_step(s) for s in replies[2 * i + 1]], record)
        results.append({
            "notification": notification_id, "status": record.get("status", "unknown"),
            "rule": record.get("rule_id"), "event": record.get("event_id"),
            "channel": record.get("channel"), "category": record.get("category"),
            "to": record.get("recipient"), "first_seen": score,
            "why": why(record, steps),
            "steps": [{k: v for k, v in s.items() if k in STEP_FIELDS} for s in steps],
        })  # fmt: skip
    missed, hidden = await not_reached(rt, caller, profile_ids[:PROFILES_EXPLAINED],
                                       {n for n, _ in shown})  # fmt: skip
    await audit(request, caller, "message-search", kind=kind, found=len(results),
                not_reached=len(missed))  # fmt: skip
    return {"kind": kind, "notifications": results, "not_reached": missed,
            "outside_your_districts": outside, "profiles_outside_your_districts": hidden}  # fmt: skip


async def not_reached(rt: Runtime, caller: Caller, profile_ids: list[str],
                      listed: set[str]) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """The recent broadcasts that did not reach these profiles, each with why; and how many
    profiles were outside the caller's districts (not explained)."""
    profiles = await rt.profiles.get_many(profile_ids)
    broadcasts = await rt.planner.broadcasts.recent(BROADCASTS_EXPLAINED) if profiles else []
    out: list[dict[str, Any]] = []
    hidden = 0
    for profile in profiles:
        if not caller.account.covers([profile.get("district") or "*"]):
            hidden += 1
            continue
        for broadcast in broadcasts:
            try:
                event = validate_event(broadcast.event)
            except EventRejected:  # a type since withdrawn: nothing to walk it through
                continue
            findings = await rt.planner.explain(event, profile)
            told = [f for f in findings if f.reached and await _told(rt, f, listed)]
            for finding in findings:
                if (
                    told
                ):  # reached by this broadcast (one rule of it): other rules' misses are noise
                    continue
                entry: dict[str, Any] = {
                    "event": event.id, "type": event.type, "planned_at": broadcast.at,
                    "profile": profile["id"], "rule": finding.rule_id,
                    "version": finding.rule_version, "why": finding.reason,
                }  # fmt: skip
                then = broadcast.rules.get(finding.rule_id)
                if then is not None and then != finding.rule_version:
                    entry["why"] += (f" (explained with version {finding.rule_version}; "
                                     f"version {then} planned it)")  # fmt: skip
                if finding.reached:
                    if await rt.guard.is_held(f"{event.id}~{finding.rule_id}"):
                        entry["why"] = "held for an operator: the send waits to be released"
                    else:
                        entry["why"] = ("in the audience as the profile is now, but nothing was "
                                        "planned for it then: the profile was changed after the "
                                        "broadcast, or it was an update at a level already sent")  # fmt: skip
                out.append(entry)
    return out, hidden


async def _told(rt: Runtime, finding: Any, listed: set[str]) -> bool:
    """Whether a notification of a finding that reached the profile exists: it is listed (or
    will be) among the notifications found."""
    ids = [n for n, _ in finding.notifications]
    return any(n in listed for n in ids) or await _recorded(rt, ids)


async def _recorded(rt: Runtime, notification_ids: list[str]) -> bool:
    async with rt.redis.pipeline(transaction=False) as pipe:
        for notification_id in notification_ids:
            pipe.exists(rt.state.key("n", notification_id))
        return any(await pipe.execute())


def why(record: dict[str, str], steps: list[dict[str, Any]]) -> str:
    """The answer in a sentence, from what was recorded."""
    status = record.get("status", "unknown")
    last: dict[str, Any] = next(
        (
            s
            for s in reversed(steps)
            if s.get("step") in ("suppressed", "failed", "deferred") or s.get("outcome") == "sent"
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
