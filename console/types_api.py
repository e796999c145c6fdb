"""Event types in the console's API: the catalogue, and new types drafted and approved by an admin.

An author or admin drafts a type (a JSON Schema of its ``data``, a subject, an example); a draft
without errors waits for an admin other than its author; approved, it is live in every process
within the rule book's poll. Event types send nothing, so they are not scoped to districts: the
rules that use them are.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from app.core.errors import BookError
from app.intake.events import EventType, catalogue
from app.intake.typebook import NAME, TypeBook, type_problems
from console.api import routes
from console.auth import Caller, audit, body_json, book_refusal, error, guarded, reason_in, services


def typebook(request: web.Request) -> TypeBook:
    rt = services(request).runtime
    return TypeBook(rt.redis, rt.settings.control_prefix)


def fields_of(schema: dict[str, Any], prefix: str = "data", depth: int = 0) -> list[dict[str, str]]:
    """The fields a condition or template can name (``data.school``…), from a type's schema."""
    found: list[dict[str, str]] = []
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or depth > 4:
        return found
    required = set(schema.get("required") or ())
    for key, sub in properties.items():
        if not isinstance(sub, dict):
            continue
        kind = sub.get("type", "")
        found.append({"field": f"{prefix}.{key}", "type": kind if isinstance(kind, str) else "/".join(kind),
                      "required": "yes" if key in required else "",
                      "description": str(sub.get("description", ""))[:200]})  # fmt: skip
        if kind == "object":
            found += fields_of(sub, f"{prefix}.{key}", depth + 1)
    return found


def type_summary(event_type: EventType) -> dict[str, Any]:
    data = (event_type.schema.get("properties") or {}).get("data") or {}
    return {"name": event_type.name, "subject": event_type.subject,
            "description": event_type.description, "shipped": event_type.shipped,
            "fields": fields_of(data)}  # fmt: skip


async def current_types(request: web.Request) -> dict[str, EventType]:
    await services(request).runtime.reload_rules()  # installs approved types, as workers do
    return catalogue()


@routes.get("/api/event-types")
@guarded()
async def list_types(request: web.Request, caller: Caller) -> web.StreamResponse:
    book = typebook(request)
    listing = [type_summary(t) for t in (await current_types(request)).values()]
    for entry in listing:
        draft = await book.draft(entry["name"])
        entry["draft"] = {"status": draft["status"], "author": draft["author"]} if draft else None
    for name in await book.drafted():
        if name not in catalogue() and (draft := await book.draft(name)):
            listing.append({"name": name, "subject": draft["type"].get("subject"), "shipped": False,
                            "description": draft["type"].get("description", ""), "fields": [],
                            "draft": {"status": draft["status"], "author": draft["author"]}})  # fmt: skip
    return web.json_response({"event_types": listing})


def _name(request: web.Request) -> str | None:
    name = request.match_info["name"]
    return name if NAME.fullmatch(name) else None


@routes.get("/api/event-types/{name}")
@guarded()
async def type_detail(request: web.Request, caller: Caller) -> web.StreamResponse:
    name = _name(request)
    if name is None:
        return error(404, "no such event type")
    live = (await current_types(request)).get(name)
    book = typebook(request)
    draft, versions = await book.draft(name), await book.versions(name)
    if live is None and draft is None:
        return error(404, f"no event type {name}")
    return web.json_response({
        "name": name,
        "live": {**type_summary(live), "schema": live.schema, "examples": list(live.examples)} if live else None,
        "draft": draft,
        "history": [{k: v for k, v in version.items() if k != "type"} for version in versions],
    })  # fmt: skip


@routes.put("/api/event-types/{name}/draft")
@guarded("author", "admin", change=True)
async def save_type(request: web.Request, caller: Caller) -> web.StreamResponse:
    name = request.match_info["name"]
    doc = await body_json(request)
    if not isinstance(doc, dict):
        return error(
            400, 'expected {"subject", "description", "data": {JSON Schema}, "example": {event}}'
        )
    doc = {k: doc.get(k) for k in ("subject", "description", "data", "example")}
    errors = type_problems(name, doc)
    if errors and errors[0]["field"] == "name":
        return error(400, errors[0]["message"])
    try:
        draft = await typebook(request).save_draft(name, doc, caller.login, errors)
    except BookError as exc:
        return error(exc.status, exc.message)
    await audit(request, caller, "event-type-draft", event_type=name, errors=len(errors))
    return web.json_response({"errors": errors, "status": draft["status"]})


async def _decide(request: web.Request, caller: Caller, step: str) -> web.StreamResponse:
    name = _name(request)
    if name is None:
        return error(404, "no such event type")
    book = typebook(request)
    try:
        if step == "approve":
            outcome = await book.approve(name, caller.login)
        else:
            reason = reason_in(await body_json(request))
            if reason is None:
                return error(400, 'a rejection needs {"reason": …}')
            outcome = await book.reject(name, caller.login, reason)
    except BookError as exc:
        return await book_refusal(request, caller, f"event-type-{step}", exc, event_type=name)
    await audit(request, caller, f"event-type-{step}", event_type=name,
                version=outcome.get("version", ""))  # fmt: skip
    if step == "approve":
        await services(request).runtime.reload_rules()
    return web.json_response({"event_type": name, "status": outcome.get("status", "live"),
                              "version": outcome.get("version")})  # fmt: skip


@routes.post("/api/event-types/{name}/approve")
@guarded("admin", change=True)
async def approve_type(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "approve")


@routes.post("/api/event-types/{name}/reject")
@guarded("admin", change=True)
async def reject_type(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _decide(request, caller, "reject")
