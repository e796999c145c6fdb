"""Preview and test-send of a draft (or the live version): what it would send, to whom, and why
each recipient left out is left out; and the rendered draft sent to the caller alone."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
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
from app.planning.samples import SAMPLE_ENTERPRISE, SAMPLE_PERSON, sample_profile
from console.api import routes
from console.auth import Caller, audit, body_json, error, guarded, services
from console.rules_api import base_version, book, live_doc, rule_districts, rule_id_of, with_version

SAMPLE = 5


async def rule_to_try(request: web.Request) -> tuple[str, dict[str, Any]] | web.Response:
    """The rule id of the address and the version the caller is looking at: the draft if there is
    one, else the live version; a 404 response when there is neither."""
    rule_id = rule_id_of(request)
    version = None
    if rule_id is not None:
        version = await book(request).draft(rule_id) or await live_doc(request, rule_id)
    if rule_id is None or version is None:
        return error(404, "no such rule")
    return rule_id, version


async def planner_with(
    request: web.Request, rule_id: str, version: dict[str, Any]
) -> tuple[Planner, Path]:
    """A planner over the live set with ``version`` in place (nothing it plans is recorded), and
    the folder to remove after."""
    rules, renderer, root = with_version(
        request, rule_id, version, await base_version(request, rule_id) + 1
    )
    return Planner(rules, services(request).runtime.profiles, renderer), root


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
    found = await rule_to_try(request)
    if isinstance(found, web.Response):
        return found
    rule_id, version = found
    event = await _event_of(request, await body_json(request), version)
    if isinstance(event, web.Response):
        return event
    planner, root = await planner_with(request, rule_id, version)
    try:
        if planner.rules.get(rule_id) is None:
            return error(422, "the draft does not load; save it to see its errors")
        plan = await planner.plan(event, only_rule=rule_id)
    finally:
        shutil.rmtree(root, ignore_errors=True)
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
    found = await rule_to_try(request)
    if isinstance(found, web.Response):
        return found
    rule_id, version = found
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
    planner, root = await planner_with(request, rule_id, version)
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
        for channel, template in rule.templates():  # the first message and every follow-up's
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
            sent.append({"channel": channel, "template": template,
                         "to": mask_address(channel, address), "ref": str(ref)})  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    await audit(request, caller, "test-send", districts=tuple(rule_districts(version["rule"])),
                rule=rule_id, channels=",".join(s["channel"] for s in sent))  # fmt: skip
    return web.json_response({"sent": sent})


@routes.post("/api/render-sms")
@guarded("author", "approver")
async def render_sms(request: web.Request, caller: Caller) -> web.StreamResponse:
    """The editor's SMS meter: ``{"text": template, "event_type": name}`` rendered with the type's
    example and a sample recipient, as it will be sent: characters with the signature, encoding,
    segments, and whether it is over the gateways' 500. Nothing is sent or stored."""
    from app.rendering.renderer import MAX_SMS_CHARS
    from app.rendering.sms import sms_length

    doc = await body_json(request)
    source = doc.get("text") if isinstance(doc, dict) else None
    type_name = doc.get("event_type") if isinstance(doc, dict) else None
    if not isinstance(source, str) or len(source) > 16_000:
        return error(
            400, 'expected {"text": the SMS template (at most 16,000 characters), "event_type"}'
        )
    await services(request).runtime.reload_rules()
    event_type = catalogue().get(type_name) if isinstance(type_name, str) else None
    if event_type is None or not event_type.examples:
        return error(400, "event_type: a known event type with an example")
    event = validate_event(event_type.examples[0])
    profile = SAMPLE_ENTERPRISE if event_type.subject == "enterprise" else SAMPLE_PERSON
    try:
        text = services(request).runtime.renderer.render_sms_text(
            source, template_context(event, profile, None)
        )
    except RenderError as exc:
        return web.json_response({"error": str(exc)})
    length = sms_length(text)
    return web.json_response({"text": text, "chars": len(text), "encoding": length.encoding,
                              "segments": length.segments, "over_limit": len(text) > MAX_SMS_CHARS})  # fmt: skip
