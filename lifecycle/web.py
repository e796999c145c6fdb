"""The worker's web pages (Faust's web server, LIFECYCLE_WEB_PORT).

GET  /stats/          counters: events received, rejected, planned; per rule and outcome;
                      notifications waiting in the deferred queue
GET  /health/         200 while Redis answers, 503 otherwise
GET  /unsubscribe/    ?t=TOKEN: a confirmation page (a GET never unsubscribes: mail scanners
                      follow links)
POST /unsubscribe/    ?t=TOKEN: records the opt-out (RFC 8058 one-click, or the page's button)
POST /sms/inbound/    the SMS gateway's inbound hook: {"from": "+86…", "text": "TD"}; a reply
                      of TD (退订, T, N, STOP) opts the number out of every non-warning SMS
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any

from faust.web import View
from redis.exceptions import RedisError

from app.cap import CapRejected
from app.masking import mask_address
from app.phones import normalise_mobile
from app.unsubscribe import UnsubscribeLinks
from lifecycle.cap_ingest import MAX_BYTES as MAX_CAP_BYTES
from lifecycle.cap_ingest import cap_events
from lifecycle.faust_app import app, runtime

logger = logging.getLogger(__name__)

STOP_WORDS = {"TD", "T", "N", "STOP", "退订", "UNSUBSCRIBE"}
CATEGORY_NAMES = {"warning": "安全预警", "reminder": "办事提醒", "notice": "通知"}


def _links() -> UnsubscribeLinks:
    settings = runtime().settings
    return UnsubscribeLinks(settings.web_url, settings.secret)


@app.page("/stats/")
async def stats(self: Any, request: Any) -> Any:
    state = runtime().state
    rules: dict[str, dict[str, int]] = {}
    for key, value in (await state.counters("rules")).items():
        rule, _, outcome = key.rpartition(":")
        rules.setdefault(rule, {})[outcome] = value
    return self.json({"events": await state.counters("events"), "rules": rules,
                      "deferred": await state.deferred_count()})  # fmt: skip


@app.page("/health/")
async def health(self: Any, request: Any) -> Any:
    try:
        await runtime().redis.ping()
    except (RedisError, OSError) as exc:
        return self.json({"redis": f"unavailable: {type(exc).__name__}"}, status=503)
    return self.json({"redis": "ok"})


@app.page("/unsubscribe/")
class Unsubscribe(View):
    async def get(self, request: Any) -> Any:
        target = _links().verify(request.query.get("t", ""))
        if target is None:
            return self.html(_page("链接无效", "这个退订链接无效或已损坏。"), status=400)
        address, category, channel = target
        token = html.escape(request.query["t"], quote=True)
        body = (f"<p>不再向 {html.escape(mask_address(channel, address))} 发送"
                f"“{CATEGORY_NAMES.get(category, category)}”类{'邮件' if channel == 'email' else '短信'}？</p>"
                f'<form method="post" action="?t={token}"><button type="submit">确认退订</button></form>')  # fmt: skip
        return self.html(_page("退订确认", body))

    async def post(self, request: Any) -> Any:
        target = _links().verify(request.query.get("t", ""))
        if target is None:
            return self.html(_page("链接无效", "这个退订链接无效或已损坏。"), status=400)
        address, category, channel = target
        await runtime().preferences.opt_out(address, category, channel)
        await runtime().state.count("optouts", f"{category}:{channel}")
        logger.info("opt-out of %s by %s for %s", category, channel, mask_address(channel, address))
        return self.html(
            _page("已退订", f"已退订“{CATEGORY_NAMES.get(category, category)}”类消息。")
        )


@app.page("/cap/")
class CapIngest(View):
    """POST a CAP 1.2 document: 202 with the events published, or 400 with the reason."""

    async def post(self, request: Any) -> Any:
        from topics import life_events

        raw = await request.content.read(MAX_CAP_BYTES + 1)
        try:
            events = cap_events(raw)
        except CapRejected as exc:
            logger.warning("CAP document refused: %s", exc.reason)
            return self.json({"refused": exc.reason}, status=400)
        for event in events:
            value = json.dumps(event.as_dict(), ensure_ascii=False).encode("utf-8")
            await life_events.send(key=event.key.encode(), value=value)
        return self.json({"published": [e.id for e in events]}, status=202)


@app.page("/held/")
async def held(self: Any, request: Any) -> Any:
    return self.json({"held": await runtime().guard.held()})


@app.page("/held/{hold_id}/release/")
class ReleaseHeld(View):
    async def post(self, request: Any, hold_id: str) -> Any:
        from app.release import release_held
        from topics import fanout

        released = await release_held(runtime(), hold_id)
        if released is None:
            return self.json({"error": f"nothing is held as {hold_id}"}, status=404)
        record, commands = released
        for key, value in commands:
            await fanout.send(key=key, value=value)
        logger.warning("released %s (%d chunk(s))", record["id"], len(commands))
        return self.json({"released": record["id"], "chunks": len(commands)})


@app.page("/sms/inbound/")
class SmsInbound(View):
    async def post(self, request: Any) -> Any:
        try:
            body = (
                await request.json()
                if request.content_type == "application/json"
                else dict(await request.post())
            )
            sender, text = normalise_mobile(str(body["from"])), str(body.get("text", ""))
        except (KeyError, ValueError, json.JSONDecodeError) as exc:
            return self.json(
                {"error": f"expected {{'from': number, 'text': reply}}: {exc}"}, status=400
            )
        if text.strip().upper() not in STOP_WORDS:
            return self.json({"action": "none"})
        await runtime().preferences.opt_out(sender, "*", "sms")
        await runtime().state.count("optouts", "*:sms")
        logger.info("SMS opt-out (TD) from %s", mask_address("sms", sender))
        return self.json({"action": "opted_out", "scope": "all non-warning SMS"})


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{title}</title>'
            f'<body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1>{title}</h1>{body}</body></html>')  # fmt: skip
