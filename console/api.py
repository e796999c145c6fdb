"""The console's JSON API (``../shared/CONTRACT.md``, "The console's JSON API").

Each handler checks role and district itself; nothing is left to what a page hides.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from aiohttp import web

from app.intake.events import districts_of
from app.planning.blast import HeldSend
from console.auth import (
    COOKIE,
    Caller,
    audit,
    body_json,
    client_of,
    error,
    guarded,
    reason_in,
    services,
)

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


def whoami(caller: Caller) -> dict[str, Any]:
    return {"login": caller.login, "roles": sorted(caller.account.roles),
            "districts": sorted(caller.account.districts)}  # fmt: skip


@routes.post("/api/login")
async def login(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    doc = await body_json(request)
    name, password = (
        (doc.get("login"), doc.get("password")) if isinstance(doc, dict) else (None, None)
    )
    if not isinstance(name, str) or not isinstance(password, str):
        return error(400, 'expected {"login": …, "password": …}')
    client = client_of(request)
    wait = await svc.throttle.blocked(name, client)
    if wait:
        await audit(request, None, "login-throttled", outcome="refused", who=name[:64])
        return error(429, f"too many failed logins; try again in {wait} s", Retry_After=str(wait))
    account = await svc.accounts.verify(name, password)
    if account is None:
        await svc.throttle.failed(name, client)
        await audit(request, None, "login-failed", outcome="refused", who=name[:64])
        return error(401, "wrong login or password")
    await svc.throttle.succeeded(name)
    token, session = await svc.sessions.open(account, client)
    await audit(request, None, "login", who=account.login)
    response = web.json_response({"csrf_token": session.csrf, "login": account.login,
                                  "roles": sorted(account.roles),
                                  "districts": sorted(account.districts)})  # fmt: skip
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                        secure=request.secure, max_age=svc.sessions.max_seconds)  # fmt: skip
    return response


@routes.post("/api/logout")
@guarded(change=True)
async def logout(request: web.Request, caller: Caller) -> web.StreamResponse:
    await services(request).sessions.close(caller.token)
    await audit(request, caller, "logout")
    response = web.json_response({"signed_out": caller.login})
    response.del_cookie(COOKIE, path="/")
    return response


@routes.get("/api/me")
@guarded()
async def me(request: web.Request, caller: Caller) -> web.StreamResponse:
    return web.json_response(whoami(caller))


@routes.get("/api/rules")
@guarded()
async def rules(request: web.Request, caller: Caller) -> web.StreamResponse:
    return web.json_response({"rules": await rule_listing(request)})


async def rule_listing(request: web.Request) -> list[dict[str, Any]]:
    """Every rule: live version, status, pending draft (what is live now, reloaded if changed)."""
    from app.planning.rulebook import RuleBook

    rt = services(request).runtime
    await rt.reload_rules()  # what is live now, should someone have approved a version
    rulebook = RuleBook(rt.redis, rt.settings.control_prefix)
    listing = []
    for r in rt.rules.rules:
        draft = await rulebook.draft(r.id)
        live = await rulebook.live_number(r.id)
        listing.append({"id": r.id, "name": r.name, "live_version": live or r.version,
                        "status": "live" if r.enabled else "disabled", "category": r.category,
                        "on": list(r.event_types), "channels": sorted(r.channels),
                        "districts": list(r.districts),
                        "pending_draft": {"status": draft["status"], "author": draft["author"]} if draft else None})  # fmt: skip
    listed = {r["id"] for r in listing}
    for rule_id in await rulebook.drafted():  # new items, not live yet
        draft = await rulebook.draft(rule_id)
        if rule_id in listed or draft is None:
            continue
        rule = draft["rule"]
        on = rule.get("on")
        listing.append({"id": rule_id, "name": str(rule.get("name") or ""), "live_version": None,
                        "status": "new", "category": rule.get("category"),
                        "on": [str(t) for t in on] if isinstance(on, list) else [str(on)],
                        "channels": sorted(map(str, rule["channels"])) if isinstance(rule.get("channels"), dict) else [],
                        "districts": [str(d) for d in rule.get("districts") or ["*"]] if isinstance(rule.get("districts"), list) else ["*"],
                        "pending_draft": {"status": draft["status"], "author": draft["author"]}})  # fmt: skip
    return listing


def visible(caller: Caller, held: HeldSend) -> bool:
    return caller.account.covers(districts_of(held["event"]))


@routes.get("/api/held")
@guarded("approver", "operator")
async def held_list(request: web.Request, caller: Caller) -> web.StreamResponse:
    held = [h for h in await services(request).runtime.guard.held() if visible(caller, h)]
    return web.json_response({"held": [
        {"id": h["id"], "rule_id": h["rule_id"], "audience": h["audience"], "reason": h["reason"],
         "held_at": h["held_at"], "event_id": h["event"].get("id"),
         "event_type": h["event"].get("type"), "districts": districts_of(h["event"]),
         "rule_version": h.get("rule_version"), "sample": h.get("sample", []),
         "caused_by": await caused_by(request, h)}
        for h in held
    ]})  # fmt: skip


async def caused_by(request: web.Request, held: HeldSend) -> list[str]:
    """Who made the change that would send it: the author and submitter of the rule version
    (none for a shipped version). They may not release or reject it: four eyes."""
    from app.planning.rulebook import RuleBook

    rt = services(request).runtime
    number = held.get("rule_version")
    if number is None:
        return []
    versions = await RuleBook(rt.redis, rt.settings.control_prefix).versions(held["rule_id"])
    version = next(
        (v for v in versions if v["version"] == number and not v.get("placeholder")), None
    )
    if version is None:
        return []
    return sorted({str(v) for v in (version.get("author"), version.get("submitted_by")) if v})


async def _held_for(request: web.Request, caller: Caller) -> HeldSend | web.Response:
    hold_id = request.match_info["hold_id"]
    found = next(
        (h for h in await services(request).runtime.guard.held() if h["id"] == hold_id), None
    )
    if found is None:
        return error(404, f"nothing is held as {hold_id[:80]}")
    if not visible(caller, found):
        return error(403, "this held send concerns districts outside your account's")
    if caller.login in await caused_by(request, found):
        await audit(request, caller, f"held-{request.path.rsplit('/', 1)[-1]}", outcome="refused",
                    districts=tuple(districts_of(found["event"])), hold=found["id"],
                    why="caused by the caller's change")  # fmt: skip
        return error(403, "you made the change that caused this hold; a colleague decides on it")
    return found


@routes.post("/api/held/{hold_id}/release")
@guarded("approver", "operator", change=True)
async def held_release(request: web.Request, caller: Caller) -> web.StreamResponse:
    found = await _held_for(request, caller)
    if isinstance(found, web.Response):
        return found
    svc = services(request)
    districts = tuple(districts_of(found["event"]))
    released = await svc.runtime.planner.release(found["id"], by=f"console:{caller.login}")
    if released is None:
        return error(404, f"nothing is held as {found['id'][:80]}")
    try:
        await svc.kafka.send("fanout", released.commands)
    except Exception as exc:  # noqa: BLE001 - whatever failed, the hold must not be lost
        await svc.runtime.guard.restore(released.held)
        logger.error(
            "release of %s not published (%s); held again", found["id"], type(exc).__name__
        )
        return error(
            503, "the release could not be published to Kafka; it is held again, try later"
        )
    await audit(request, caller, "held-release", districts=districts, hold=found["id"],
                rule=found["rule_id"], chunks=len(released.commands))  # fmt: skip
    return web.json_response({"released": found["id"], "chunks": len(released.commands)})


@routes.post("/api/held/{hold_id}/reject")
@guarded("approver", "operator", change=True)
async def held_reject(request: web.Request, caller: Caller) -> web.StreamResponse:
    reason = reason_in(await body_json(request), limit=500)
    if reason is None:
        return error(400, 'a rejection needs {"reason": …}')
    found = await _held_for(request, caller)
    if isinstance(found, web.Response):
        return found
    svc = services(request)
    if await svc.runtime.guard.take(found["id"]) is None:
        return error(404, f"nothing is held as {found['id'][:80]}")
    await svc.runtime.state.trace(found["event"].get("id", "?"), "held send rejected",
                                  hold=found["id"], by=f"console:{caller.login}",
                                  reason=reason[:500])  # fmt: skip
    await audit(request, caller, "held-reject", districts=tuple(districts_of(found["event"])),
                hold=found["id"], rule=found["rule_id"], reason=reason)  # fmt: skip
    return web.json_response({"rejected": found["id"]})


@routes.get("/api/audit")
@guarded("admin", "approver", "operator")
async def audit_log(request: web.Request, caller: Caller) -> web.StreamResponse:
    since = None
    if request.query.get("since"):
        try:
            since = datetime.fromisoformat(request.query["since"])
        except ValueError:
            return error(400, "since: an ISO 8601 time, such as 2026-12-01T00:00:00+08:00")
        if since.tzinfo is None:
            return error(400, "since: give the time zone, such as +08:00")
    entries = await services(request).audit.read(since)
    account = caller.account
    shown = [e for e in entries
             if (account.covers(e.districts) if e.districts else (account.has("admin") or e.who == caller.login))]  # fmt: skip
    return web.json_response({"entries": [
        {"at": e.at, "who": e.who, "action": e.action, "outcome": e.outcome, "from": e.client,
         "districts": list(e.districts), "details": e.details}
        for e in shown
    ]})  # fmt: skip
