"""The worker's web server (Faust's, on LIFECYCLE_WEB_BIND:LIFECYCLE_WEB_PORT, loopback by default).

Public — what recipients and anyone may reach:

GET  /health/         200 when the worker can deliver (Redis, Kafka and every gateway answer), 503
                      otherwise; with a metrics:read token, each component's state too
                      (``wiring.health``)
GET  /unsubscribe/    ?t=TOKEN: a confirmation page (a GET never unsubscribes: mail scanners
                      follow links)
POST /unsubscribe/    ?t=TOKEN: records the opt-out (RFC 8058 one-click, or the page's button);
                      the signed, expiring token is the authority

Provider callbacks — signed by the provider:

POST /sms/inbound/    the SMS gateway's inbound hook: {"from": "+86…", "text": "TD"}; a reply
                      of TD (退订, T, N, STOP) opts the number out of every non-warning SMS.
                      Signed with LIFECYCLE_SMS_INBOUND_SECRET (see ``inbound_signature``);
                      anything unsigned, stale, replayed or forged is refused (401)

Bearer token (``Authorization: Bearer lct_…``, made with ``lifecycle tokens add``) with a scope:

POST /cap/                 cap:publish: a CAP 1.2 document from one of the token's CAP senders
GET  /held/                held:read
POST /held/{id}/release/   held:release
GET  /stats/               stats:read
GET  /metrics              metrics:read: Prometheus text format (``wiring.metrics``)

A browser cannot be made to send any of the token-guarded calls: a cross-site page cannot set an
Authorization header without a CORS preflight, which this server never grants. Every POST is rate
limited per client address (and per token), and bodies are read only up to a bound.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import time
from collections import deque
from typing import Any

from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST

from app.access.tokens import Caller
from app.core.errors import InvalidInput
from app.core.redis_client import REDIS_DOWN
from app.delivery.unsubscribe import UnsubscribeLinks
from app.intake.cap import MAX_BYTES as MAX_CAP_BYTES
from app.intake.cap import CapRejected, alert_events
from app.intake.events import districts_of
from app.profiles.phones import normalise_mobile
from topics import fanout, life_events
from wiring.faust_app import app, runtime
from wiring.health import probe_for
from wiring.metrics import exposition, update_gauges, update_outcomes, update_where_planned

logger = logging.getLogger(__name__)

STOP_WORDS = {"TD", "T", "N", "STOP", "退订", "UNSUBSCRIBE"}
CATEGORY_NAMES = {"warning": "安全预警", "reminder": "办事提醒", "notice": "通知"}
MAX_SMALL_BODY = 16 * 1024  # an inbound SMS, an unsubscribe form
SIGNATURE_WINDOW_SECONDS = 300


class TooMany:
    """At most ``limit`` calls per ``per`` seconds for each client, in this process."""

    def __init__(self, limit: int, per: float) -> None:
        self.limit, self.per = limit, per
        self._calls: dict[str, deque[float]] = {}

    def full(self, client: str) -> bool:
        """Whether ``client`` has used up its calls (without counting this as one)."""
        calls = self._calls.get(client)
        now = time.monotonic()
        while calls and calls[0] <= now - self.per:
            calls.popleft()
        return bool(calls) and len(calls) >= self.limit  # type: ignore[arg-type]

    def allow(self, client: str) -> bool:
        if self.full(client):
            return False
        now = time.monotonic()
        self._calls.setdefault(client, deque()).append(now)
        if len(self._calls) > 10_000:  # forget idle clients rather than grow without bound
            for name in [n for n, c in self._calls.items() if not c or c[-1] <= now - self.per]:
                del self._calls[name]
        return True


LIMITS = {
    "unsubscribe": TooMany(20, 60.0),
    "sms-inbound": TooMany(600, 60.0),
    "token": TooMany(120, 60.0),
    "bad-token": TooMany(10, 60.0),
}


def _client(request: Any) -> str:
    return str(getattr(request, "remote", None) or "unknown")


def _links() -> UnsubscribeLinks:
    settings = runtime().settings
    assert settings.secret, "the worker refuses to start without LIFECYCLE_SECRET"
    return UnsubscribeLinks(settings.web_url, settings.secret)


async def read_body(request: Any, limit: int) -> bytes | None:
    """The whole body, or None when it is larger than ``limit`` (a single ``read(n)`` may return
    only the first chunk of a large body)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


def _json_error(view: Any, status: int, message: str, **headers: str) -> Any:
    response = view.json({"error": message}, status=status)
    for name, value in headers.items():
        response.headers[name.replace("_", "-")] = value
    return response


async def authorise(
    view: Any, request: Any, scope: str, *, every_district: bool = False
) -> Caller | Any:
    """The caller of a valid token with ``scope``, or the response refusing the call (401 without
    a valid token, 403 without the scope, or without every district when what it reads is the
    whole deployment's, 429 when throttled). Districts are checked here at each call, not only
    when the token was made: a token narrowed later is refused."""
    client = _client(request)
    if LIMITS["bad-token"].full(client):  # a client guessing tokens is slowed to 10 a minute
        return _json_error(view, 429, "too many refused calls; wait a minute", Retry_After="60")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    caller = None
    if scheme.lower() == "bearer" and token.strip():
        caller = await runtime().tokens.caller(token.strip())
    if caller is None:
        LIMITS["bad-token"].allow(client)
        logger.warning(
            "refused %s %s from %s: no valid token", request.method, request.path, client
        )
        return _json_error(view, 401, "a bearer token is required (lifecycle tokens add)",
                           WWW_Authenticate='Bearer realm="lifecycle"')  # fmt: skip
    if not caller.may(scope):
        logger.warning("refused %s %s to token %s: no scope %s", request.method, request.path,
                       caller.name, scope)  # fmt: skip
        return _json_error(view, 403, f"this token lacks the scope {scope}")
    if every_district and "*" not in caller.districts:
        return _json_error(view, 403, "this covers every district; this token does not")
    if request.method != "GET" and not LIMITS["token"].allow(caller.name):
        return _json_error(view, 429, "too many calls for this token; wait a minute",
                           Retry_After="60")  # fmt: skip
    return caller


@app.page("/stats/")
class Stats(View):
    async def get(self, request: Any) -> Any:
        caller = await authorise(self, request, "stats:read", every_district=True)
        if not isinstance(caller, Caller):
            return caller
        state = runtime().state
        rules: dict[str, dict[str, int]] = {}
        for key, value in (await state.counters("rules")).items():
            rule, _, outcome = key.rpartition(":")
            rules.setdefault(rule, {})[outcome] = value
        return self.json({"events": await state.counters("events"), "rules": rules,
                          "deferred": await state.deferred_count()})  # fmt: skip


@app.page("/health/")
async def health(self: Any, request: Any) -> Any:
    """Anyone (a load balancer, compose) gets the verdict; each component's state is operational
    data, for a token with ``metrics:read`` only."""
    detailed = "Authorization" in request.headers
    if detailed:
        caller = await authorise(self, request, "metrics:read", every_district=True)
        if not isinstance(caller, Caller):
            return caller
    report = await probe_for(runtime().settings).check(runtime())
    body = report.as_dict() if detailed else {"status": report.as_dict()["status"]}
    return self.json(body, status=200 if report.can_deliver else 503)


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Any) -> Any:
        caller = await authorise(self, request, "metrics:read", every_district=True)
        if not isinstance(caller, Caller):
            return caller
        report = await probe_for(runtime().settings).check(runtime())
        update_gauges(report)
        update_where_planned(runtime())
        try:
            update_outcomes(await runtime().planner.outcomes.figures(None, time.time()))
        except REDIS_DOWN as exc:  # the rest is still worth reporting; health says Redis is down
            logger.warning("outcomes not read for /metrics: %s", type(exc).__name__)
        response = self.bytes(exposition(), content_type="text/plain")
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST  # with its version and charset
        return response


@app.page("/unsubscribe/")
class Unsubscribe(View):
    async def get(self, request: Any) -> Any:
        target = _links().verify(request.query.get("t", ""))
        if target is None:
            return self.html(_page("链接无效", "这个退订链接无效、已损坏或已过期。"), status=400)
        token = html.escape(request.query["t"], quote=True)
        kind = "邮件" if target.channel == "email" else "短信"
        body = (f"<p>不再向 {html.escape(target.masked)} 发送"
                f"“{html.escape(CATEGORY_NAMES.get(target.category, target.category))}”类{kind}？</p>"
                f'<form method="post" action="?t={token}"><button type="submit">确认退订</button></form>')  # fmt: skip
        return self.html(_page("退订确认", body))

    async def post(self, request: Any) -> Any:
        if not LIMITS["unsubscribe"].allow(_client(request)):
            return self.html(_page("请稍后再试", "请求过于频繁。"), status=429)
        if await read_body(request, MAX_SMALL_BODY) is None:
            return self.html(_page("请求过大", "请求过大。"), status=413)
        target = _links().verify(request.query.get("t", ""))
        if target is None:
            return self.html(_page("链接无效", "这个退订链接无效、已损坏或已过期。"), status=400)
        await runtime().preferences.opt_out_key(target.address_key, target.category, target.channel)
        await runtime().state.count("optouts", f"{target.category}:{target.channel}")
        logger.info("opt-out of %s by %s for %s", target.category, target.channel, target.masked)
        name = html.escape(CATEGORY_NAMES.get(target.category, target.category))
        return self.html(_page("已退订", f"已退订“{name}”类消息。"))


@app.page("/cap/")
class CapIngest(View):
    """POST a CAP 1.2 document: 202 with the events published, or 400 with the reason."""

    async def post(self, request: Any) -> Any:
        caller = await authorise(self, request, "cap:publish")
        if not isinstance(caller, Caller):
            return caller
        raw = await read_body(request, MAX_CAP_BYTES)
        if raw is None:
            return _json_error(self, 413, f"a CAP document is at most {MAX_CAP_BYTES} bytes")
        try:
            events = alert_events(raw, senders=caller.cap_senders)
        except CapRejected as exc:
            logger.warning("CAP document from token %s refused: %s", caller.name, exc.reason)
            return self.json({"refused": exc.reason}, status=400)
        outside = [e.id for e in events if not caller.covers(districts_of(e.as_dict()))]
        if outside:
            logger.warning("CAP document from token %s refused: areas outside its districts",
                           caller.name)  # fmt: skip
            return _json_error(self, 403, "the alert's areas are outside this token's districts")
        for event in events:
            key, value = event.record()
            await life_events.send(key=key, value=value)
        logger.info("CAP document from token %s: %d event(s)", caller.name, len(events))
        return self.json({"published": [e.id for e in events]}, status=202)


@app.page("/held/")
class Held(View):
    async def get(self, request: Any) -> Any:
        caller = await authorise(self, request, "held:read")
        if not isinstance(caller, Caller):
            return caller
        held = [h for h in await runtime().guard.held() if caller.covers(districts_of(h["event"]))]
        return self.json({"held": held})


@app.page("/held/{hold_id}/release/")
class ReleaseHeld(View):
    async def post(self, request: Any, hold_id: str) -> Any:
        caller = await authorise(self, request, "held:release")
        if not isinstance(caller, Caller):
            return caller
        record = next((h for h in await runtime().guard.held() if h["id"] == hold_id), None)
        if record is None or not caller.covers(districts_of(record["event"])):
            # outside its districts looks the same as absent: a token learns nothing of others'
            return _json_error(
                self, 404, f"nothing is held as {hold_id[:80]} in this token's districts"
            )
        released = await runtime().planner.release(hold_id, by=f"token:{caller.name}")
        if released is None:
            return _json_error(self, 404, f"nothing is held as {hold_id[:80]}")
        try:
            pending = [await fanout.send(key=key, value=value) for key, value in released.commands]
            for acknowledged in pending:
                await acknowledged  # the broker's acknowledgement, or it raises
        except Exception as exc:  # noqa: BLE001 - the hold must not be lost: give it back
            await runtime().guard.restore(released.held)
            logger.error(
                "release of %s not published (%s); held again", hold_id, type(exc).__name__
            )
            return _json_error(self, 503, "the release could not be published; it is held again")
        logger.warning("released %s (%d chunk(s)) by token %s", released.held["id"],
                       len(released.commands), caller.name)  # fmt: skip
        return self.json({"released": released.held["id"], "chunks": len(released.commands)})


def inbound_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The outbox gateway's inbound-hook signature: ``v1=`` + hex HMAC-SHA256 over
    ``timestamp + "." + body`` under LIFECYCLE_SMS_INBOUND_SECRET, sent as
    ``X-Lifecycle-Signature`` with the Unix ``X-Lifecycle-Timestamp`` it covers."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


@app.page("/sms/inbound/")
class SmsInbound(View):
    async def post(self, request: Any) -> Any:
        if not LIMITS["sms-inbound"].allow(_client(request)):
            return _json_error(self, 429, "too many calls; wait a minute", Retry_After="60")
        body = await read_body(request, MAX_SMALL_BODY)
        if body is None:
            return _json_error(self, 413, f"an inbound SMS is at most {MAX_SMALL_BODY} bytes")
        refused = await self._verify(request, body)
        if refused:
            logger.warning("inbound SMS from %s refused: %s", _client(request), refused)
            return _json_error(self, 401, refused)
        try:
            doc = _decode_form(request.content_type, body)
            sender, text = normalise_mobile(doc["from"]), doc.get("text", "")
        except (KeyError, ValueError, TypeError, RecursionError, InvalidInput):
            return _json_error(self, 400, "expected {'from': a mobile number, 'text': the reply}")
        if text.strip().upper() not in STOP_WORDS:
            return self.json({"action": "none"})
        await runtime().preferences.opt_out(sender, "*", "sms")
        await runtime().state.count("optouts", "*:sms")
        logger.info("SMS opt-out (TD) from a number ending %s", sender[-4:])
        return self.json({"action": "opted_out", "scope": "all non-warning SMS"})

    async def _verify(self, request: Any, body: bytes) -> str | None:
        secret = runtime().settings.sms_inbound_secret
        if not secret:
            return "inbound SMS is off: LIFECYCLE_SMS_INBOUND_SECRET is not set"
        timestamp = request.headers.get("X-Lifecycle-Timestamp", "")
        signature = request.headers.get("X-Lifecycle-Signature", "")
        if not timestamp.isascii() or not timestamp.isdigit() or not signature:
            return "unsigned (X-Lifecycle-Timestamp and X-Lifecycle-Signature are required)"
        if abs(time.time() - int(timestamp[:12])) > SIGNATURE_WINDOW_SECONDS:
            return "stale signature timestamp"
        if not hmac.compare_digest(
            signature.encode(), inbound_signature(secret, timestamp, body).encode()
        ):
            return "bad signature"
        key = f"{runtime().settings.redis_prefix}sms-inbound:{signature[3:35]}"
        if not await runtime().redis.set(key, b"1", nx=True, ex=2 * SIGNATURE_WINDOW_SECONDS):
            return "replayed"
        return None


def _decode_form(content_type: str, body: bytes) -> dict[str, str]:
    """``{"from": str, "text": str}`` from JSON or a form; ValueError/TypeError otherwise."""
    from urllib.parse import parse_qs

    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if content_type == "application/json":
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise TypeError("not an object")
    else:
        doc = {k: v[0] for k, v in parse_qs(text, max_num_fields=10).items()}
    out = {k: doc[k] for k in ("from", "text") if k in doc}
    if not all(isinstance(v, str) for v in out.values()):
        raise TypeError("from and text are strings")
    return out


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>{title}</title>'
            f'<body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1>{title}</h1>{body}</body></html>')  # fmt: skip
