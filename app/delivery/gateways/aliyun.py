"""Aliyun SMS (dysmsapi 2017-05-25 SendSms), signed with Aliyun's RPC signature version 1.

``LIFECYCLE_SMS_URL=aliyun://ACCESS_KEY_ID:ACCESS_KEY_SECRET@dysmsapi.aliyuncs.com?sign_name=盐田区政务服务``
(optional ``region=cn-hangzhou``; ``endpoint=http://host:port/`` to point at another server).

Aliyun sends approved templates only: each SMS template folder names its approved
``TemplateCode`` and the parameters in ``provider.yaml``; the local ``sms.txt`` stays the preview
of what the provider will send. SendSms is not idempotent; the claim in ``app.delivery.deliverer`` is what
keeps a retry from sending twice.

Signature (RPC v1): the parameters sorted by name, each name and value percent-encoded
(RFC 3986: only ``A-Z a-z 0-9 - _ . ~`` stay as they are), joined as ``k=v&…``;
StringToSign = ``POST&%2F&`` + percent-encode(that); Signature = Base64(HMAC-SHA1(secret + "&",
StringToSign)). Requests are POSTed as a form, since a thousand numbers do not fit in a URL (the
documented example is a GET; only the method's name differs).

A batch (``send_batch``) goes in as few calls as the API allows: ``SendSms`` with up to 1,000
numbers for one text, ``SendBatchSms`` with up to 100 numbers each with its own parameters. Aliyun
refuses such a call whole for one bad number; it is then made again number by number, so that
number fails alone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, unquote, urlsplit

import aiohttp

from app.core.codec import compact_json
from app.core.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from app.delivery.gateways.batching import distinct_chunks
from app.notifications import Notification

API_VERSION = "2017-05-25"
TIMEOUT_SECONDS = 15
MAX_SAME_TEXT = 1000  # numbers in one SendSms of one text
MAX_PERSONAL = 100  # numbers in one SendBatchSms, each with its own parameters
MAX_ANSWER_BYTES = 1 << 20
# Codes by which Aliyun refuses a whole call for one number's sake: sent again number by number.
NUMBER_CODES = ("isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT", "isv.PARAM_LENGTH_LIMIT",
                "isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL")  # fmt: skip
# Codes that may clear by themselves (limits, throttling, the provider's own trouble, balance).
TEMPORARY_CODES = {
    "isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL",
    "isp.SYSTEM_ERROR", "isv.OUT_OF_SERVICE", "isv.AMOUNT_NOT_ENOUGH", "Throttling",
    "Throttling.User", "Throttling.Api", "ServiceUnavailable", "InternalError",
}  # fmt: skip


def template_of(n: Notification) -> tuple[str, str]:
    """The approved template's code and its parameters as Aliyun takes them (JSON)."""
    provider = (n.content.get("provider") or {}).get("aliyun")
    if not provider:
        raise PermanentDeliveryError(
            f"rule {n.rule_id}: its SMS template has no aliyun template_code (provider.yaml)"
        )
    params = {k: str(v) for k, v in provider.get("params", {}).items()}
    return str(provider["template_code"]), _json(params)


def _json(value: object) -> str:
    return compact_json(value)


def percent_encode(value: str) -> str:
    return quote(value, safe="~")


def string_to_sign(params: dict[str, str], method: str = "GET") -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items())
    )
    return f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(params: dict[str, str], secret: str, method: str = "GET") -> str:
    digest = hmac.new(
        f"{secret}&".encode(), string_to_sign(params, method).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def phone_number(e164: str) -> str:
    """Aliyun wants mainland numbers without +86 and others as country code + number."""
    return e164[3:] if e164.startswith("+86") else e164.lstrip("+")


class AliyunSmsGateway:
    def __init__(self, *, access_key_id: str, access_key_secret: str, sign_name: str, endpoint: str,
                 region: str = "cn-hangzhou") -> None:  # fmt: skip
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.endpoint = endpoint
        self.region = region
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_url(cls, url: str) -> AliyunSmsGateway:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not parts.username or not parts.password or not query.get("sign_name"):
            raise ConfigError(
                "LIFECYCLE_SMS_URL: aliyun://KEY_ID:KEY_SECRET@host?sign_name=… needs all three"
            )
        return cls(access_key_id=unquote(parts.username), access_key_secret=unquote(parts.password),
                   sign_name=query["sign_name"], region=query.get("region", "cn-hangzhou"),
                   endpoint=query.get("endpoint") or f"https://{parts.hostname}/")  # fmt: skip

    def request_params(
        self,
        n: Notification,
        *,
        nonce: str | None = None,
        timestamp: str | None = None,
        numbers: Sequence[Notification] = (),
    ) -> dict[str, str]:
        """``SendSms`` of ``n``; with ``numbers``, the same text to each of their numbers."""
        code, template_param = template_of(n)
        phones = ",".join(phone_number(m.address) for m in numbers) or phone_number(n.address)
        params = self._common("SendSms", nonce, timestamp) | {
            "PhoneNumbers": phones, "SignName": self.sign_name, "TemplateCode": code,
            "OutId": n.id, "TemplateParam": template_param,
        }  # fmt: skip
        params["Signature"] = sign(params, self.access_key_secret, "POST")
        return params

    def batch_params(self, batch: Sequence[Notification], *, nonce: str | None = None,
                     timestamp: str | None = None) -> dict[str, str]:  # fmt: skip
        """``SendBatchSms``: one template, each number with its own parameters (at most 100)."""
        code = template_of(batch[0])[0]
        params = self._common("SendBatchSms", nonce, timestamp) | {
            "PhoneNumberJson": _json([phone_number(n.address) for n in batch]),
            "SignNameJson": _json([self.sign_name] * len(batch)), "TemplateCode": code,
            "TemplateParamJson": "[" + ",".join(template_of(n)[1] for n in batch) + "]",
        }  # fmt: skip
        params["Signature"] = sign(params, self.access_key_secret, "POST")
        return params

    def _common(self, action: str, nonce: str | None, timestamp: str | None) -> dict[str, str]:
        return {
            "AccessKeyId": self.access_key_id, "Action": action, "Format": "JSON",
            "RegionId": self.region, "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or uuid.uuid4().hex, "SignatureVersion": "1.0",
            "Timestamp": timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
        }  # fmt: skip

    async def send(
        self, notification: Notification, on_commit: Callable[[], None] | None = None
    ) -> str:
        return classify(*await self._call(self.request_params(notification)))

    async def send_batch(
        self, batch: Sequence[Notification]
    ) -> list[str | TemporaryDeliveryError | PermanentDeliveryError]:
        """A batch in as few calls as the API allows: one ``SendSms`` for up to 1,000 numbers with
        the same template and parameters, one ``SendBatchSms`` for up to 100 with their own. A
        call refused for a number's sake is made again number by number, so that number fails
        alone (Aliyun refuses such a call whole: it sent nothing)."""
        results: list[str | TemporaryDeliveryError | PermanentDeliveryError] = [
            PermanentDeliveryError("not sent") for _ in batch
        ]
        same: dict[tuple[str, str], list[int]] = {}
        for i, n in enumerate(batch):
            try:
                same.setdefault(template_of(n), []).append(i)
            except PermanentDeliveryError as exc:
                results[i] = exc
        calls: list[tuple[str, list[int]]] = []
        personal: dict[str, list[int]] = {}
        for (code, _), indexes in same.items():
            if len(indexes) == 1:
                personal.setdefault(code, []).append(indexes[0])
                continue
            for chunk in distinct_chunks(
                indexes, [batch[i].address for i in indexes], MAX_SAME_TEXT
            ):
                calls.append(("same", chunk))
        for indexes in personal.values():
            for chunk in distinct_chunks(
                indexes, [batch[i].address for i in indexes], MAX_PERSONAL
            ):
                calls.append(("personal", chunk))
        answers = await asyncio.gather(*(self._group(kind, [batch[i] for i in chunk])
                                         for kind, chunk in calls))  # fmt: skip
        for (_, chunk), answer in zip(calls, answers, strict=True):
            for i, result in zip(chunk, answer, strict=True):
                results[i] = result
        return results

    async def _group(self, kind: str, group: list[Notification]
                     ) -> list[str | TemporaryDeliveryError | PermanentDeliveryError]:  # fmt: skip
        if len(group) == 1:
            params = self.request_params(group[0])
        elif kind == "same":
            params = self.request_params(group[0], numbers=group)
        else:
            params = self.batch_params(group)
        try:
            reference = classify(*await self._call(params))
        except (TemporaryDeliveryError, PermanentDeliveryError) as exc:
            if len(group) > 1 and any(f"Aliyun {code}:" in str(exc) for code in NUMBER_CODES):
                return list(await asyncio.gather(*(self._one(n) for n in group)))
            return [exc for _ in group]
        return [reference for _ in group]

    async def _one(self, n: Notification) -> str | TemporaryDeliveryError | PermanentDeliveryError:
        try:
            return await self.send(n)
        except (TemporaryDeliveryError, PermanentDeliveryError) as exc:
            return exc

    async def _call(self, params: dict[str, str]) -> tuple[int, dict[str, object]]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        try:
            # POST, form-encoded: a thousand numbers do not fit in a URL
            async with self._session.post(self.endpoint, data=params) as response:
                status = response.status
                raw = await response.content.read(MAX_ANSWER_BYTES)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TemporaryDeliveryError(f"Aliyun SMS unreachable: {type(exc).__name__}") from exc
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested to break the parser
            body = {}
        return status, body if isinstance(body, dict) else {}

    async def check(self) -> str | None:
        """The API's host takes a TLS connection (no message, no credentials sent)."""
        parts = urlsplit(self.endpoint)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    parts.hostname, parts.port or 443, ssl=parts.scheme == "https"
                ),
                3.0,
            )
        except (OSError, TimeoutError) as exc:
            return f"SMS API unreachable: {type(exc).__name__}"
        writer.close()
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def classify(status: int, body: dict[str, object]) -> str:
    """The BizId of an accepted message, or the failure class of a refused one."""
    code = str(body.get("Code", ""))
    if status == 200 and code == "OK":
        return f"aliyun:{body.get('BizId', '')}"
    reason = f"Aliyun {code or status}: {body.get('Message', '')}".strip()
    if code == "isv.DAY_LIMIT_CONTROL":  # the number takes no more today
        raise TemporaryDeliveryError(reason, next_day=True)
    if status >= 500 or status == 429 or code in TEMPORARY_CODES:
        raise TemporaryDeliveryError(reason)
    raise PermanentDeliveryError(reason)
