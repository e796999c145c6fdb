"""The console's HTML pages: server-rendered (Jinja2), a small script (static/console.js) that
calls the JSON API for each action. A page shows what the account may do; the API decides."""

from __future__ import annotations

import difflib
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.intake.events import catalogue, districts_of
from app.intake.typebook import TypeBook
from app.planning.fields import PROFILE
from app.planning.rulebook import version_text, with_diffs
from app.rendering.renderer import CHANNEL_FILES
from app.state.outcomes import outcome_report
from console.api import caused_by, routes, rule_listing, visible, whoami
from console.auth import Caller, caller_of, services
from console.dashboard import dashboard_data, spark
from console.dlq_api import visible_letters
from console.journey_view import FORM_KEYS as JOURNEY_KEYS
from console.journey_view import editor_values
from console.rules_api import book, live_doc, rule_districts, rule_id_of, seed_version
from console.search_api import find_messages
from console.types_api import type_summary
from wiring.dlq import TOPICS, states

HERE = Path(__file__).parent
STATIC = HERE / "static"
_pages = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                     autoescape=select_autoescape(["html"]))  # fmt: skip


def page(template: str, caller: Caller | None, **values: Any) -> web.Response:
    body = _pages.get_template(template).render(me=whoami(caller) if caller else None,
                                            csrf=caller.session.csrf if caller else None, **values)  # fmt: skip
    return web.Response(text=body, content_type="text/html", charset="utf-8")


async def signed_in(request: web.Request, *roles: str) -> Caller:
    """The page's caller: to the sign-in page without a session; 403 without one of ``roles``
    (any role, when none are named). The API checks each call again."""
    caller = await caller_of(request)
    if caller is None:
        raise web.HTTPFound("/login")
    if roles and not any(caller.account.has(r) for r in roles):
        raise web.HTTPForbidden(text=f"this page is for the role {' or '.join(roles)}")
    return caller


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/rules" if await caller_of(request) else "/login")


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return page("login.html", None, title="登录 Sign in")


@routes.get("/rules")
async def rules_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request)
    return page("rules.html", caller, title="规则 Rules", rules=await rule_listing(request))


TEMPLATE_LANGUAGE = "zh-CN"  # the editor's; other languages are files under templates/
_FORM_KEYS = ("id", "version", "name", "on", "category", "districts", "when", "channels")


@routes.get("/rules/{rule_id}")
async def rule_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request)
    rule_id = rule_id_of(request)
    if rule_id is None:
        raise web.HTTPNotFound(text="no such rule")
    rt = services(request).runtime
    await rt.reload_rules()  # the event types and rules live now
    live = await live_doc(request, rule_id)
    draft = await book(request).draft(rule_id)
    if live is None and draft is None and not caller.account.has("author"):
        raise web.HTTPNotFound(text="no such rule")
    current = draft or live or {"rule": new_rule(rule_id, caller), "templates": {}}
    rule = current["rule"]
    channels = rule.get("channels") or {}
    default_template = rule_id.replace("-", "_")
    templates: dict[str, dict[str, str]] = {}
    for channel, files in CHANNEL_FILES.items():
        name = channels.get(channel) or default_template
        templates[channel] = {"name": name}
        for file in files:
            path = f"{name}/{TEMPLATE_LANGUAGE}/{file}"
            body = (current.get("templates") or {}).get(path)
            if body is None:
                on_disk = rt.renderer.templates_dir / path
                body = on_disk.read_text(encoding="utf-8") if on_disk.is_file() else ""
            templates[channel][file] = body
    on = rule.get("on")
    rest = {k: v for k, v in rule.items() if k not in _FORM_KEYS and k not in JOURNEY_KEYS}

    def text_of(template: str) -> str:
        path = f"{template}/{TEMPLATE_LANGUAGE}/sms.txt"
        body = (current.get("templates") or {}).get(path)
        on_disk = rt.renderer.templates_dir / path
        return (
            body
            if body is not None
            else on_disk.read_text(encoding="utf-8")
            if on_disk.is_file()
            else ""
        )

    journey = editor_values(rule, templates["sms"]["name"], text_of)
    outcomes = None
    if live is not None and caller.account.covers(rule_districts(live["rule"])):
        outcomes = outcome_report(rule_id, await rt.planner.outcomes.figures(rule_id, time.time()))
    districts = rule.get("districts") or ["*"]
    history = with_diffs(await book(request).versions(rule_id), seed_version(request, rule_id))
    pending = "\n".join(difflib.unified_diff(version_text(live), version_text(draft),
                                             "live", "draft", lineterm="", n=1)) if draft else ""  # fmt: skip
    types = [type_summary(t) for t in catalogue().values()]
    return page("rule.html", caller, title=rule.get("name") or rule_id, rule_id=rule_id,
                name=rule.get("name") or "", live_version=live["version"] if live else None,
                draft=draft, on=on[0] if isinstance(on, list) and len(on) == 1 else on,
                on_many=isinstance(on, list) and len(on) > 1, on_json=json.dumps(on, ensure_ascii=False),
                category=rule.get("category", "reminder"), when=rule.get("when") or "",
                districts=" ".join([districts] if isinstance(districts, str) else map(str, districts)),
                channels=channels, templates=templates, language=TEMPLATE_LANGUAGE,
                rest_json=json.dumps(rest, ensure_ascii=False, indent=2),
                types=types, catalogue_json=script_json({t["name"]: t for t in types}),
                profile_fields=[f"profile.{k}" for k in PROFILE], recipient_fields=["recipient.name", "recipient.role"],
                signature=rt.settings.sms_signature, history=history, pending=pending,
                journey=journey, outcomes=outcomes,
                can_author=caller.account.has("author"), can_approve=caller.account.has("approver"))  # fmt: skip


def script_json(value: Any) -> str:
    """JSON to put inside <script type="application/json">: no "</script>" can end it early."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e")


def new_rule(rule_id: str, caller: Caller) -> dict[str, Any]:
    """What the editor starts a new lifecycle item with: the caller's district, a reminder to the
    event's subject by SMS."""
    districts = sorted(caller.account.districts)
    return {"id": rule_id, "name": "", "on": next(iter(catalogue())), "category": "reminder",
            "districts": districts if "*" not in districts else ["*"],
            "recipients": {"subject": True}, "channels": {"sms": rule_id.replace("-", "_")}}  # fmt: skip


@routes.get("/held")
async def held_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request, "approver", "operator")
    held = [h for h in await services(request).runtime.guard.held() if visible(caller, h)]
    listing = [{**h, "event_type": h["event"].get("type"), "districts": districts_of(h["event"]),
                "caused_by": await caused_by(request, h)} for h in held]  # fmt: skip
    return page("held.html", caller, title="暂停的发送 Held sends", held=listing, can_decide=True)


@routes.get("/dlq")
async def dlq_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request, "operator")
    shown = await visible_letters(request, caller)
    marks = await states(services(request).runtime, [d for d, _ in shown])
    reason = request.query.get("reason", "")
    state = request.query.get("state", "")
    letters = [{**d.summary(), "state": marks[d.name]} for d, _ in reversed(shown)
               if (not reason or reason.lower() in d.reason.lower()) and (not state or marks[d.name] == state)]  # fmt: skip
    return page("dlq.html", caller, title="死信 Dead letters", letters=letters[:500], total=len(letters),
                topics=TOPICS, topic=request.query.get("topic", ""), reason=reason, state=state)  # fmt: skip


@routes.get("/messages")
async def messages_page(request: web.Request) -> web.StreamResponse:
    """The hotline's search: a person's messages, and the broadcasts that did not reach them."""
    caller = await signed_in(request, "operator", "approver")
    given = request.query.get("to", "").strip()
    found = await find_messages(request, caller, given) if given else None
    return page("messages.html", caller, title="消息查询 Message search", given=given,
                found=found, invalid=bool(given) and found is None)  # fmt: skip


@routes.get("/dashboard")
async def dashboard_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request, "operator")
    data = await dashboard_data(request, caller)
    return page("dashboard.html", caller, title="运行看板 Dashboard", d=data, spark=spark)


@routes.get("/event-types")
async def types_page(request: web.Request) -> web.StreamResponse:
    caller = await signed_in(request)
    await services(request).runtime.reload_rules()
    book = TypeBook(
        services(request).runtime.redis, services(request).runtime.settings.control_prefix
    )
    types = [type_summary(t) | {"draft": await book.draft(t.name)} for t in catalogue().values()]
    drafts = [
        {"name": n, "draft": await book.draft(n)}
        for n in await book.drafted()
        if n not in catalogue()
    ]
    return page("types.html", caller, title="事件类型 Event types", types=types, drafts=drafts,
                can_draft=caller.account.has("author") or caller.account.has("admin"),
                can_admin=caller.account.has("admin"),
                skeleton=json.dumps(SKELETON, ensure_ascii=False, indent=2))  # fmt: skip


SKELETON = {"type": "object", "required": ["approval_no"],
            "properties": {"approval_no": {"type": "string", "minLength": 1, "description": "审批编号"}}}  # fmt: skip
