"""The console's HTML pages: server-rendered (Jinja2), a small script (static/console.js) that
calls the JSON API for each action. A page shows what the account may do; the API decides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from console.api import routes, rule_listing, whoami
from console.auth import Caller, caller_of, services
from console.rules_api import book, live_doc, rule_id_of

HERE = Path(__file__).parent
STATIC = HERE / "static"
_pages = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                     autoescape=select_autoescape(["html"]))  # fmt: skip


def page(template: str, caller: Caller | None, **values: Any) -> web.Response:
    body = _pages.get_template(template).render(me=whoami(caller) if caller else None,
                                            csrf=caller.session.csrf if caller else None, **values)  # fmt: skip
    return web.Response(text=body, content_type="text/html", charset="utf-8")


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/rules" if await caller_of(request) else "/login")


@routes.get("/login")
async def login_page(request: web.Request) -> web.StreamResponse:
    return page("login.html", None, title="登录 Sign in")


@routes.get("/rules")
async def rules_page(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    if caller is None:
        raise web.HTTPFound("/login")
    return page("rules.html", caller, title="规则 Rules", rules=await rule_listing(request))


@routes.get("/rules/{rule_id}")
async def rule_page(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    if caller is None:
        raise web.HTTPFound("/login")
    rule_id = rule_id_of(request)
    live = await live_doc(request, rule_id) if rule_id else None
    if rule_id is None or live is None:
        raise web.HTTPNotFound(text="no such rule")
    draft = await book(request).draft(rule_id)
    current = draft or live
    rule = current["rule"]
    template = (rule.get("channels") or {}).get("sms", "")
    sms_path = f"{template}/zh-CN/sms.txt"
    sms_text = (current.get("templates") or {}).get(sms_path)
    if sms_text is None:
        rt = services(request).runtime
        file = rt.renderer.templates_dir / sms_path
        sms_text = file.read_text(encoding="utf-8") if file.is_file() else ""
    history = [v for v in await book(request).versions(rule_id) if not v.get("placeholder")]
    rt = services(request).runtime
    return page("rule.html", caller, title=rule.get("name") or rule_id, rule_id=rule_id,
                name=rule.get("name") or rule_id, live_version=live["version"], draft=draft,
                rule_json=json.dumps(rule, ensure_ascii=False, indent=2), sms_path=sms_path,
                sms_text=sms_text, signature=rt.settings.sms_signature, history=history,
                can_author=caller.account.has("author"), can_approve=caller.account.has("approver"))  # fmt: skip
