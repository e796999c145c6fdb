"""Who is calling: the session behind the cookie, its CSRF token, its roles and districts."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from aiohttp import web

from app.access.accounts import (
    Account,
    AccountStore,
    LoginThrottle,
    Session,
    SessionStore,
    csrf_matches,
)
from app.access.audit import AuditEntry
from app.core.errors import BookError
from wiring.audit import AuditLog
from wiring.kafka_async import KafkaWriter
from wiring.runtime import Runtime

logger = logging.getLogger(__name__)

COOKIE = "lc_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16


@dataclass
class Services:
    runtime: Runtime
    accounts: AccountStore
    sessions: SessionStore
    throttle: LoginThrottle
    audit: AuditLog
    kafka: KafkaWriter


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


@dataclass(frozen=True)
class Caller:
    account: Account
    session: Session
    token: str
    client: str

    @property
    def login(self) -> str:
        return self.account.login


Handler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def client_of(request: web.Request) -> str:
    return str(request.remote or "unknown")


def error(status: int, message: str, **headers: str) -> web.Response:
    """``{"error": message}``; header names as keywords, ``_`` for ``-`` (``Retry_After``)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return web.json_response({"error": message}, status=status, headers=named or None)


async def body_json(request: web.Request) -> Any:
    """The request's JSON body (at most MAX_BODY_BYTES, MAX_JSON_DEPTH deep), or
    web.HTTPBadRequest / HTTPRequestEntityTooLarge with the reason."""
    from app.core.codec import decode_json
    from app.core.errors import EventRejected

    too_large = web.HTTPRequestEntityTooLarge(
        max_size=MAX_BODY_BYTES, actual_size=request.content_length or MAX_BODY_BYTES + 1,
        text=json.dumps({"error": f"the body is over {MAX_BODY_BYTES // 1024} KB"}),
        content_type="application/json")  # fmt: skip
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    if not raw.strip():
        return {}
    if request.content_type != "application/json":
        # a cross-site form can post text/plain but not JSON without the browser asking first
        raise web.HTTPUnsupportedMediaType(text=json.dumps({"error": "send application/json"}),
                                           content_type="application/json")  # fmt: skip
    try:
        return decode_json(raw, "request", MAX_JSON_DEPTH)
    except EventRejected as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": exc.reason}),
                                 content_type="application/json") from exc  # fmt: skip


def reason_in(doc: Any, key: str = "reason", limit: int = 1000) -> str | None:
    """The non-empty text ``doc[key]`` (a rejection's reason, a discard's why), cut to ``limit``;
    None when there is none."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return value[:limit] if isinstance(value, str) and value.strip() else None


async def book_refusal(request: web.Request, caller: Caller, action: str, exc: BookError,
                       **details: Any) -> web.Response:  # fmt: skip
    """A workflow step the book refused: a 403 (four eyes) is audited; each answers its status."""
    if exc.status == 403:
        await audit(request, caller, action, outcome="refused", why=exc.message, **details)
    return error(exc.status, exc.message)


async def caller_of(request: web.Request) -> Caller | None:
    """The signed-in caller behind the session cookie; None without a live session and account."""
    svc = services(request)
    token = request.cookies.get(COOKIE, "")
    session = await svc.sessions.get(token)
    account = await svc.accounts.get(session.login) if session else None
    if session is None or account is None:
        return None
    return Caller(account, session, token, client_of(request))


def guarded(
    *roles: str, change: bool = False
) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """A handler for signed-in callers: 401 without a session; for a change (``change=True``)
    403 without its CSRF token; 403 unless the account has one of ``roles`` (any, when none)."""

    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @wraps(handler)
        async def guarded_handler(request: web.Request) -> web.StreamResponse:
            caller = await caller_of(request)
            if caller is None:
                return error(401, "sign in first (POST /api/login)")
            account = caller.account
            session = caller.session
            if change and not csrf_matches(session, request.headers.get(CSRF_HEADER)):
                await audit(request, caller, "csrf-refused", outcome="refused",
                            path=request.path)  # fmt: skip
                return error(403, f"a change needs the {CSRF_HEADER} header given at login")
            if roles and not any(account.has(r) for r in roles):
                if change:
                    await audit(request, caller, "role-refused", outcome="refused",
                                path=request.path)  # fmt: skip
                return error(403, f"this needs the role {' or '.join(roles)}")
            return await handler(request, caller)

        return guarded_handler

    return wrap


async def audit(request: web.Request, caller: Caller | None, action: str, *, outcome: str = "ok",
                districts: tuple[str, ...] = (), who: str | None = None, **details: Any) -> None:  # fmt: skip
    entry = AuditEntry(who=who or (caller.login if caller else "-"), action=action,
                       outcome=outcome, client=client_of(request), districts=districts,
                       details={k: str(v) for k, v in details.items()})  # fmt: skip
    await services(request).audit.write(entry)
    logger.info("audit: %s %s %s", entry.who, action, outcome)
