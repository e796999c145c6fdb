"""The rules part of the console's API: drafts, four-eyes approval, history, rollback.

A draft is checked as the workers will load it: the whole live set is written with the draft in
place (``rulebook.materialise``) and loaded by ``load_rules``, so its errors are those of
``lifecycle rules check``, with the field they concern.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from app.core.errors import BookError
from app.planning.model import RuleSet
from app.planning.rulebook import RuleBook, read_snapshot, seed_rule, template_problems, with_diffs
from app.rendering.renderer import Renderer
from app.state.outcomes import outcome_report
from console.api import routes
from console.auth import Caller, audit, body_json, book_refusal, error, guarded, reason_in, services
from wiring.runtime import load_live_set

_RULE_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


def book(request: web.Request) -> RuleBook:
    rt = services(request).runtime
    return RuleBook(rt.redis, rt.settings.control_prefix)


def rule_id_of(request: web.Request) -> str | None:
    rule_id = request.match_info["rule_id"]
    return rule_id if 0 < len(rule_id) <= 64 and set(rule_id) <= _RULE_ID_CHARS else None


async def base_version(request: web.Request, rule_id: str) -> int:
    """The live version's number: the book's, else the shipped file's (0: a new rule)."""
    live = await book(request).live_number(rule_id)
    if live is not None:
        return live
    seed = seed_rule(services(request).runtime.settings.rules_dir, rule_id)
    return int(seed.get("version", 1)) if seed else 0


async def live_doc(request: web.Request, rule_id: str) -> dict[str, Any] | None:
    number = await book(request).live_number(rule_id)
    if number is not None:
        [version] = [v for v in await book(request).versions(rule_id) if v["version"] == number]
        return version
    seed = seed_rule(services(request).runtime.settings.rules_dir, rule_id)
    if seed is None:
        return None
    return {
        "version": int(seed.get("version", 1)),
        "rule": seed,
        "templates": {},
        "note": "shipped",
    }


def seed_version(request: web.Request, rule_id: str) -> dict[str, Any] | None:
    seed = seed_rule(services(request).runtime.settings.rules_dir, rule_id)
    return {"version": int(seed.get("version", 1)), "rule": seed, "templates": {}} if seed else None


def rule_districts(rule: dict[str, Any]) -> list[str]:
    districts = rule.get("districts", ["*"])
    return [districts] if isinstance(districts, str) else [str(d) for d in districts or ["*"]]


def with_version(request: web.Request, rule_id: str, version: Mapping[str, Any],
                 number: int) -> tuple[RuleSet, Renderer, Path]:  # fmt: skip
    """The live set with ``version`` of ``rule_id`` in place (as number ``number``), loaded; the
    caller removes the folder returned."""
    rt = services(request).runtime
    assert rt.state.sync_redis is not None
    _, live = read_snapshot(rt.state.sync_redis, rt.settings.control_prefix)
    trial = {
        "version": number,
        "rule": version["rule"],
        "templates": version.get("templates") or {},
    }
    return load_live_set(rt.settings, dict(live) | {rule_id: trial}, -1)


def check_draft(request: web.Request, rule_id: str, rule: dict[str, Any],
                templates: dict[str, str], version: int) -> list[dict[str, str]]:  # fmt: skip
    """The draft's errors, as ``lifecycle rules check`` finds them in the live set."""
    result, _, root = with_version(
        request, rule_id, {"rule": rule, "templates": templates}, version
    )
    shutil.rmtree(root, ignore_errors=True)
    return [{"field": e.field, "message": e.message} for e in result.errors
            if e.rule_id == rule_id or e.file.endswith(f"console/{rule_id}.yaml")]  # fmt: skip


AUDIENCE_TERMS = ("permit", "industry", "tag")


async def audience_problems(request: web.Request, rule: dict[str, Any]) -> list[dict[str, str]]:
    """An audience term no stored profile has (``permit: outdoor_advertsing`` reaches nobody),
    with the closest terms the profile store does hold."""
    import difflib

    rt = services(request).runtime
    recipients = rule.get("recipients")
    problems = await _role_and_district_problems(request, rule)
    audience = recipients.get("audience") if isinstance(recipients, dict) else None
    if not isinstance(audience, dict):
        return problems
    for term in AUDIENCE_TERMS:
        value = audience.get(term)
        if not isinstance(value, str) or await rt.profiles.term_exists(term, value):
            continue
        known = await rt.profiles.terms(term)
        close = difflib.get_close_matches(value, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else (
            f"; profiles hold: {', '.join(known[:10])}" if known else "")  # fmt: skip
        problems.append({"field": f"recipients.audience.{term}",
                         "message": f"no profile has {term} {value!r}, so the rule would reach nobody{hint}"})  # fmt: skip
    return problems


async def _role_and_district_problems(
    request: web.Request, rule: dict[str, Any]
) -> list[dict[str, str]]:
    """Contact roles no stored enterprise has (``contacts: [saftey_officer]`` would send every
    warning to the fallback role) and districts no profile is in, with the closest there are."""
    import difflib

    rt = services(request).runtime
    problems = []
    recipients = rule.get("recipients")
    roles = await rt.profiles.roles()
    for key in ("contacts", "fallback_contacts"):
        named = recipients.get(key) if isinstance(recipients, dict) else None
        for role in [named] if isinstance(named, str) else named if isinstance(named, list) else []:
            if not isinstance(role, str) or not roles or role in roles:
                continue
            close = difflib.get_close_matches(role, roles, n=3, cutoff=0.6)
            hint = (
                f"; did you mean {', '.join(close)}?"
                if close
                else f"; profiles have: {', '.join(roles[:10])}"
            )
            problems.append({"field": f"recipients.{key}", "message": f"no enterprise has a contact with the role {role!r}{hint}"})  # fmt: skip
    for district in rule_districts(rule):
        if (
            district == "*"
            or not isinstance(district, str)
            or await rt.profiles.term_exists("area", district)
        ):
            continue
        known = [d for d in await rt.profiles.terms("area") if not d.endswith("00")]
        if not known:  # an empty store: nothing to check against yet
            continue
        close = difflib.get_close_matches(district, known, n=3, cutoff=0.6)
        hint = f"; profiles are in: {', '.join(close or known[:10])}"
        problems.append({"field": "districts", "message": f"no profile is in district {district}{hint}"})  # fmt: skip
    return problems


@routes.get("/api/rules/{rule_id}")
@guarded()
async def rule_detail(request: web.Request, caller: Caller) -> web.StreamResponse:
    rule_id = rule_id_of(request)
    if rule_id is None:
        return error(404, "no such rule")
    live, draft = await live_doc(request, rule_id), await book(request).draft(rule_id)
    if live is None and draft is None:
        return error(404, f"no rule {rule_id}")
    history = with_diffs(await book(request).versions(rule_id), seed_version(request, rule_id))
    return web.json_response({"id": rule_id, "live": live, "draft": draft, "history": history})


@routes.get("/api/rules/{rule_id}/outcomes")
@guarded()
async def rule_outcomes(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Of the journeys each version started: completed within the window, how fast; the
    reminded and the holdout apart (``app.state.outcomes`` defines each figure)."""
    rule_id = rule_id_of(request)
    live = await live_doc(request, rule_id) if rule_id else None
    if rule_id is None or live is None:
        return error(404, "no such rule")
    if not caller.account.covers(rule_districts(live["rule"])):
        return error(403, "the rule's districts are outside your account's")
    planner = services(request).runtime.planner
    return web.json_response(
        outcome_report(rule_id, await planner.outcomes.figures(rule_id, time.time()))
    )


@routes.put("/api/rules/{rule_id}/draft")
@guarded("author", change=True)
async def save_draft(request: web.Request, caller: Caller) -> web.StreamResponse:
    rule_id = rule_id_of(request)
    if rule_id is None:
        return error(400, "a rule id: lower-case letters, digits and -, at most 64")
    doc = await body_json(request)
    rule = doc.get("rule") if isinstance(doc, dict) else None
    templates = doc.get("templates", {}) if isinstance(doc, dict) else None
    if not isinstance(rule, dict):
        return error(400, 'expected {"rule": {…}, "templates": {"NAME/LANG/FILE": "text"}}')
    if rule.get("id", rule_id) != rule_id:
        return error(400, f"the rule's id is {rule_id}, as in the address")
    rule = {**rule, "id": rule_id}
    districts = rule_districts(rule)
    if not caller.account.covers(districts):
        return error(403, "the rule's districts are outside your account's")
    errors = template_problems(templates)
    version = await base_version(request, rule_id) + 1
    if not errors:
        errors = check_draft(request, rule_id, rule, templates or {}, version)
    if not errors:
        errors = await audience_problems(request, rule)
    try:
        draft = await book(request).save_draft(rule_id, rule, templates or {}, caller.login, errors)
    except BookError as exc:
        return error(exc.status, exc.message)
    await audit(request, caller, "rule-draft", districts=tuple(districts), rule=rule_id,
                errors=len(errors))  # fmt: skip
    return web.json_response({"errors": errors, "status": draft["status"], "version": version})


async def _decide(request: web.Request, caller: Caller, step: str) -> web.StreamResponse:
    rule_id = rule_id_of(request)
    if rule_id is None:
        return error(404, "no such rule")
    rulebook = book(request)
    draft = await rulebook.draft(rule_id)
    target = draft["rule"] if draft else ((await live_doc(request, rule_id)) or {}).get("rule", {})
    districts = rule_districts(target)
    if not caller.account.covers(districts):
        return error(403, "the rule's districts are outside your account's")
    doc = await body_json(request) if step in ("reject", "rollback") else {}
    try:
        if step == "submit":
            outcome = await rulebook.submit(rule_id, caller.login)
        elif step == "approve":
            outcome = await rulebook.approve(
                rule_id, caller.login, await base_version(request, rule_id)
            )
        elif step == "reject":
            reason = reason_in(doc)
            if reason is None:
                return error(400, 'a rejection needs {"reason": …}')
            outcome = await rulebook.reject(rule_id, caller.login, reason)
        else:
            to = doc.get("version") if isinstance(doc, dict) else None
            if not isinstance(to, int) or isinstance(to, bool):
                return error(400, 'a rollback needs {"version": N}')
            first = seed_version(request, rule_id)
            outcome = await rulebook.rollback(rule_id, to, caller.login,
                                              await base_version(request, rule_id), first)  # fmt: skip
    except BookError as exc:
        return await book_refusal(request, caller, f"rule-{step}", exc, districts=tuple(districts),
                                  rule=rule_id)  # fmt: skip
    await audit(request, caller, f"rule-{step}", districts=tuple(districts), rule=rule_id,
                version=outcome.get("version", ""))  # fmt: skip
    return web.json_response({"rule": rule_id, "status": outcome.get("status", "live"),
                              "version": outcome.get("version")})  # fmt: skip


@routes.post("/api/rules/{rule_id}/submit")
@guarded("author", change=True)
async def submit(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "submit")


@routes.post("/api/rules/{rule_id}/approve")
@guarded("approver", change=True)
async def approve(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "approve")


@routes.post("/api/rules/{rule_id}/reject")
@guarded("approver", change=True)
async def reject(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "reject")


@routes.post("/api/rules/{rule_id}/rollback")
@guarded("approver", change=True)
async def rollback(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "rollback")
