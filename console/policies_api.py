"""Support policies in the console's API: the catalogue, drafts, four-eyes approval, and why an
enterprise meets a policy or not.

An author drafts a policy (saved with no problem, it waits for approval); an approver who did
not draft it, and whose districts cover the policy's, approves it, and it is live in every worker
within the rule book's poll. Every step is in the audit log.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from app.core.errors import BookError, RenderError
from app.intake.events import validate_event
from app.planning.policies import POLICY_ID, Policy, parse_policy, policy_event
from app.planning.policybook import PolicyBook
from app.planning.recipients import template_context
from app.planning.samples import SAMPLE_ENTERPRISE
from console.api import routes
from console.auth import Caller, audit, body_json, book_refusal, error, guarded, reason_in, services


def policybook(request: web.Request) -> PolicyBook:
    rt = services(request).runtime
    return PolicyBook(rt.redis, rt.settings.control_prefix)


def policy_id_of(request: web.Request) -> str | None:
    found = request.match_info["policy_id"]
    return found if POLICY_ID.fullmatch(found) else None


def policy_doc(policy: Policy) -> dict[str, Any]:
    """A policy as the editor and the API show it (the shape of ``policies/*.yaml``)."""
    criteria: dict[str, Any] = {}
    for name in ("industries", "sizes", "qualifications", "permits"):
        if getattr(policy, name):
            criteria[name] = list(getattr(policy, name))
    for name in ("registered_capital", "age_months"):
        bounds = getattr(policy, name)
        if bounds is not None:
            criteria[name] = {
                k: v for k, v in (("min", bounds.min), ("max", bounds.max)) if v is not None
            }
    return {"id": policy.id, "version": policy.version, "name": policy.name,
            "summary": policy.summary, "confirm": policy.confirm, "where": policy.where,
            "valid_from": policy.valid_from.isoformat() if policy.valid_from else None,
            "valid_until": policy.valid_until.isoformat() if policy.valid_until else None,
            "districts": list(policy.districts), "enabled": policy.enabled, "criteria": criteria}  # fmt: skip


async def live_policies(request: web.Request) -> dict[str, Policy]:
    rt = services(request).runtime
    await rt.reload_rules()  # an approval elsewhere is seen here as in the workers
    return {p.id: p for p in rt.planner.matcher.policies}


@routes.get("/api/policies")
@guarded()
async def list_policies(request: web.Request, caller: Caller) -> web.StreamResponse:
    book, live = policybook(request), await live_policies(request)
    listing = []
    for policy_id in sorted({*live, *await book.drafted()}):
        draft = await book.draft(policy_id)
        entry: dict[str, Any] = (
            policy_doc(live[policy_id]) if policy_id in live else {"id": policy_id}
        )
        entry["draft"] = (
            {k: draft.get(k) for k in ("status", "author", "reason")} if draft else None
        )
        listing.append(entry)
    return web.json_response({"policies": listing})


@routes.get("/api/policies/{policy_id}")
@guarded()
async def policy_detail(request: web.Request, caller: Caller) -> web.StreamResponse:
    policy_id = policy_id_of(request)
    live = (await live_policies(request)).get(policy_id or "")
    book = policybook(request)
    draft = await book.draft(policy_id) if policy_id else None
    if policy_id is None or (live is None and draft is None):
        return error(404, "no such policy")
    history = [{k: v for k, v in version.items() if k != "policy"}
               for version in await book.versions(policy_id)]  # fmt: skip
    return web.json_response({"id": policy_id, "live": policy_doc(live) if live else None,
                              "draft": draft, "history": history})  # fmt: skip


@routes.put("/api/policies/{policy_id}/draft")
@guarded("author", change=True)
async def save_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
    policy_id = policy_id_of(request)
    if policy_id is None:
        return error(400, "a policy id: lower-case letters, digits and -, at most 64")
    body = await body_json(request)
    doc = body.get("policy") if isinstance(body, dict) else None
    if not isinstance(doc, dict):
        return error(
            400, 'expected {"policy": {"name", "summary", "confirm", "where", "criteria", …}}'
        )
    doc = {**doc, "id": policy_id}
    districts = doc.get("districts") or ["*"]
    districts = [districts] if isinstance(districts, str) else districts
    if not isinstance(districts, list) or not caller.account.covers(map(str, districts)):
        return error(403, "the policy's districts are outside your account's")
    current = (await live_policies(request)).get(policy_id)
    if current is not None and not caller.account.covers(current.districts):
        return error(403, "the live policy's districts are outside your account's")
    policy, errors = parse_policy(doc)
    if policy is not None:
        errors = message_problems(request, policy)
    try:
        draft = await policybook(request).save_draft(policy_id, doc, caller.login, errors)
    except BookError as exc:
        return error(exc.status, exc.message)
    await audit(request, caller, "policy-draft", policy=policy_id, errors=len(errors),
                districts=tuple(map(str, districts)))  # fmt: skip
    return web.json_response({"errors": errors, "status": draft["status"]})


def message_problems(request: web.Request, policy: Policy) -> list[dict[str, str]]:
    """What the message telling an enterprise of ``policy`` would break, rendered as it will be
    sent (the live rules on ``enterprise.policy.matched``, each language): an SMS over the
    gateways' limit is said of the policy's texts."""
    rt = services(request).runtime
    event = validate_event(policy_event(policy, SAMPLE_ENTERPRISE, time.time(), rt.settings.tz))
    problems = []
    for rule in rt.rules.for_event(event.type):
        for channel, template in rule.channels.items():
            for language in rt.renderer.languages(template):
                try:
                    rt.renderer.render(template, channel, language,
                                       template_context(event, SAMPLE_ENTERPRISE, None))  # fmt: skip
                except RenderError as exc:
                    problems.append({"field": "summary", "message": f"the message of rule {rule.id} "
                                     f"({language}) does not fit: {exc}; shorten what it offers, "
                                     "what to confirm or where"})  # fmt: skip
    return problems[:5]


async def _decide(request: web.Request, caller: Caller, step: str) -> web.StreamResponse:
    policy_id = policy_id_of(request)
    book = policybook(request)
    draft = await book.draft(policy_id) if policy_id else None
    if policy_id is None or draft is None:
        return error(404, "no draft of that policy")
    districts = draft["policy"].get("districts") or ["*"]
    districts = [districts] if isinstance(districts, str) else districts
    if not caller.account.covers(map(str, districts)):
        return error(403, "the policy's districts are outside your account's")
    live = (await live_policies(request)).get(policy_id)
    try:
        if step == "approve":
            outcome = await book.approve(policy_id, caller.login, live.version if live else 0)
        else:
            reason = reason_in(await body_json(request))
            if reason is None:
                return error(400, 'a rejection needs {"reason": …}')
            outcome = await book.reject(policy_id, caller.login, reason)
    except BookError as exc:
        return await book_refusal(request, caller, f"policy-{step}", exc, policy=policy_id)
    await audit(request, caller, f"policy-{step}", policy=policy_id,
                version=outcome.get("version", ""))  # fmt: skip
    if step == "approve":
        await services(request).runtime.reload_rules()
    return web.json_response({"policy": policy_id, "status": outcome.get("status", "live"),
                              "version": outcome.get("version")})  # fmt: skip


@routes.post("/api/policies/{policy_id}/preview")
@guarded("author", "approver")
async def preview_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
    """How many enterprises the policy's draft (else its live version) reaches now, how many were
    told already, a few names: what approving it would set off (nothing is sent)."""
    policy_id = policy_id_of(request)
    draft = await policybook(request).draft(policy_id) if policy_id else None
    live = (await live_policies(request)).get(policy_id or "")
    doc = {**draft["policy"], "id": policy_id} if draft else None
    policy = parse_policy(doc)[0] if doc else live
    if policy_id is None or policy is None:
        return error(404, "no such policy, or its draft does not pass yet")
    if not caller.account.covers(policy.districts):
        return error(403, "the policy's districts are outside your account's")
    found = await services(request).runtime.planner.matcher.preview(policy)
    return web.json_response({"policy": policy_id, **found})


@routes.post("/api/policies/{policy_id}/approve")
@guarded("approver", change=True)
async def approve_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "approve")


@routes.post("/api/policies/{policy_id}/reject")
@guarded("approver", change=True)
async def reject_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "reject")


@routes.get("/api/enterprises/{enterprise_id}/policies")
@guarded("author", "approver", "operator")
async def enterprise_policies(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Which live policies an enterprise of the caller's districts meets, criterion by criterion,
    and whether it was told (the console's ``lifecycle policies match``)."""
    rt = services(request).runtime
    enterprise_id = request.match_info["enterprise_id"][:64]
    profile = await rt.profiles.get(enterprise_id)
    if (
        profile is None
        or profile.get("kind") != "enterprise"
        or not caller.account.covers([profile.get("district", "")])
    ):
        return error(404, "no enterprise with that id in your districts")
    await live_policies(request)
    matches = rt.planner.matcher.explain(profile)
    told = await rt.planner.matcher.matches.told([(m.policy.id, enterprise_id) for m in matches])
    await audit(request, caller, "policy-match", enterprise=enterprise_id,
                districts=(profile.get("district", ""),))  # fmt: skip
    return web.json_response({"enterprise": enterprise_id, "name": profile.get("name"),
                              "policies": [{"id": m.policy.id, "name": m.policy.name, "met": m.met,
                                            "told_on": day,
                                            "criteria": [c.as_dict() for c in m.criteria]}
                                           for m, day in zip(matches, told, strict=True)]})  # fmt: skip
