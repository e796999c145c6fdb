"""Preview and test-send of a draft (or the live version): what it would send, to whom, and why
each recipient left out is left out; and the rendered draft sent to the caller alone."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from app.core.errors import DeliveryError, EventRejected, RenderError
from app.core.masking import mask_address
from app.core.quiet_hours import parse_quiet_hours
from app.delivery.gateways import sms_gateway_from_url
from app.delivery.gateways.email import SmtpGateway
from app.delivery.policy import local_day, opted_out
from app.delivery.unsubscribe import UnsubscribeLinks
from app.intake.events import Event, catalogue, validate_event
from app.notifications import Category, Notification
from app.planning.planner import Planner
from app.planning.recipients import Recipient, template_context
from app.planning.rulebook import materialise, read_snapshot
from app.planning.rules import load_rules
from app.planning.samples import sample_profile
from console.api import routes
from console.auth import Caller, audit, body_json, error, guarded, services
from console.rules_api import base_version, book, live_doc, rule_districts, rule_id_of
from wiring.runtime import make_renderer

SAMPLE = 5


async def _version_to_try(request: web.Request, rule_id: str) -> dict[str, Any] | None:
    """The draft if there is one, else the live version: what the caller is looking at."""
    draft = await book(request).draft(rule_id)
    return draft or await live_doc(request, rule_id)


def _planner_with(
    request: web.Request, rule_id: str, version: dict[str, Any], number: int
) -> tuple[Planner, Any]:
    rt = services(request).runtime
    settings = rt.settings
    assert rt.state.sync_redis is not None
    _, live = read_snapshot(rt.state.sync_redis, settings.redis_prefix)
    live = dict(live) | {rule_id: {"version": number, "rule": version["rule"],
                                   "templates": version.get("templates") or {}}}  # fmt: skip
    live_set = materialise(settings.rules_dir, settings.templates_dir, live, -1)
    renderer = make_renderer(settings, live_set.templates_dir)
    return Planner(load_rules(live_set.rules_dir, renderer), rt.profiles, renderer), live_set


async def _event_of(
    request: web.Request, doc: Any, version: dict[str, Any]
) -> Event | web.Response:
    given = doc.get("event") if isinstance(doc, dict) else None
    if given is None:
        on = version["rule"].get("on")
        event_type = on[0] if isinstance(on, list) else on
        examples = catalogue()[event_type].examples if event_type in catalogue() else ()
        if not examples:
            return error(400, 'give {"event": {…}}: the rule\'s event type has no example')
        given = examples[0]
    try:
        return validate_event(given)
    except EventRejected as exc:
        return error(400, f"event: {exc.reason}")


@routes.post("/api/rules/{rule_id}/preview")
@guarded("author", "approver", "operator")
async def preview(request: web.Request, caller: Caller) -> web.StreamResponse:
    rule_id = rule_id_of(request)
    version = await _version_to_try(request, rule_id) if rule_id else None
    if rule_id is None or version is None:
        return error(404, "no such rule")
    event = await _event_of(request, await body_json(request), version)
    if isinstance(event, web.Response):
        return event
    planner, live_set = _planner_with(
        request, rule_id, version, await base_version(request, rule_id) + 1
    )
    try:
        if planner.rules.get(rule_id) is None:
            return error(422, "the draft does not load; save it to see its errors")
        plan = await planner.plan(event, only_rule=rule_id)
    finally:
        shutil.rmtree(live_set.root, ignore_errors=True)
    rt = services(request).runtime
    left_out: list[dict[str, Any]] = [{"rule": r, "why": why} for r, why in plan.skipped]
    sending: list[dict[str, Any]] = []
    deferred: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    default_quiet = parse_quiet_hours(rt.settings.quiet_hours)
    for n in plan.notifications:
        who: dict[str, Any] = {"profile": n.profile_id, "role": n.role, "channel": n.channel,
               "to": mask_address(n.channel, n.address)}  # fmt: skip
        if n.error:
            left_out.append({**who, "why": f"cannot render: {n.error}"})
            continue
        if opted_out(await rt.preferences.opt_outs(n.address), n.category, n.channel):
            left_out.append({**who, "why": f"opted out of {n.category} by {n.channel}"})
            continue
        if n.category != Category.WARNING:
            day = local_day(now, rt.settings.tz)
            if (
                rt.settings.daily_cap
                and await rt.preferences.count_today(n.recipient, day) >= rt.settings.daily_cap
            ):
                left_out.append(
                    {**who, "why": f"daily cap of {rt.settings.daily_cap} reached today"}
                )
                continue
            ends = (
                default_quiet.end_if_quiet(now.astimezone(rt.settings.tz))
                if default_quiet
                else None
            )
            if ends is not None:
                deferred.append(
                    {**who, "until": ends.isoformat(timespec="minutes"), "why": "quiet hours"}
                )
                continue
        sending.append({**who, "content": n.content})
    return web.json_response({
        "event": event.id, "matched": bool(plan.matched), "recipients": len(sending),
        "sample": sending[:SAMPLE], "deferred": deferred, "left_out": left_out,
    })  # fmt: skip


@routes.post("/api/rules/{rule_id}/test-send")
@guarded("author", "approver", change=True)
async def test_send(request: web.Request, caller: Caller) -> web.StreamResponse:
    """The rendered draft to the caller's own mobile and e-mail (from the account), marked as a
    test; never to anyone else, whatever the body says."""
    rule_id = rule_id_of(request)
    version = await _version_to_try(request, rule_id) if rule_id else None
    if rule_id is None or version is None:
        return error(404, "no such rule")
    if not caller.account.covers(rule_districts(version["rule"])):
        return error(403, "the rule's districts are outside your account's")
    account = caller.account
    if not account.mobile and not account.email:
        return error(
            409, "your account has no mobile or e-mail to send a test to (lifecycle users add)"
        )
    event = await _event_of(request, await body_json(request), version)
    if isinstance(event, web.Response):
        return event
    planner, live_set = _planner_with(
        request, rule_id, version, await base_version(request, rule_id) + 1
    )
    rt = services(request).runtime
    settings = rt.settings
    sent: list[dict[str, str]] = []
    try:
        rule = planner.rules.get(rule_id)
        if rule is None:
            return error(422, "the draft does not load; save it to see its errors")
        profile = sample_profile(rule)
        me = Recipient(
            f"test:{account.login}", profile, account.login, None, account.mobile, account.email
        )
        context = template_context(event, profile, me)
        assert settings.secret is not None
        gateways = {"sms": sms_gateway_from_url(settings.sms_url),
                    "email": SmtpGateway(settings.smtp, mail_from=settings.mail_from,
                                         unsubscribe=UnsubscribeLinks(settings.web_url, settings.secret))}  # fmt: skip
        for channel, template in rule.channels.items():
            address = me.address(channel)
            if not address:
                continue
            try:
                content = planner.renderer.render(template, channel, "zh-CN", context).wire()
            except RenderError as exc:
                return error(422, f"{channel}: {exc}")
            if channel == "sms":
                content["text"] = "【测试】" + content["text"]
            else:
                content["subject"] = "[测试] " + content["subject"]
            n = Notification(id=f"test-{uuid.uuid4().hex[:24]}", rule_id=rule_id, rule_version=0,
                             category=rule.category, event_id=event.id, event_type=event.type,
                             channel=channel, profile_id=me.key, recipient=me.key,
                             recipient_name=account.login, role=None, address=address,
                             language="zh-CN", planned_at=datetime.now(UTC).isoformat(),
                             content=content)  # fmt: skip
            try:
                ref = await gateways[channel].send(n)
            except DeliveryError as exc:
                return error(502, f"the {channel} gateway refused the test: {exc}")
            sent.append({"channel": channel, "to": mask_address(channel, address), "ref": str(ref)})
    finally:
        shutil.rmtree(live_set.root, ignore_errors=True)
    await audit(request, caller, "test-send", districts=tuple(rule_districts(version["rule"])),
                rule=rule_id, channels=",".join(s["channel"] for s in sent))  # fmt: skip
    return web.json_response({"sent": sent})
