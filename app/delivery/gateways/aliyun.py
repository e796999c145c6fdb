"""Aliyun SMS (dysmsapi 2017-05-25 SendSms), signed with Aliyun's RPC signature version 1.

``LIFECYCLE_SMS_URL=aliyun://ACCESS_KEY_ID:ACCESS_KEY_SECRET@dysmsapi.aliyuncs.com?sign_name=盐田区政务服务``
(optional ``region=cn-hangzhou``; ``endpoint=http://host:port/`` to point at another server).

Aliyun sends approved templates only: each SMS template folder names its approved
``TemplateCode`` and the parameters in ``provider.yaml``; the local ``sms.txt`` stays the preview
of what the provider will send. SendSms is not idempotent; the claim in ``app.delivery.deliverer`` is what
keeps a retry from sending twice.

Signature (RPC v1): the parameters sorted by name, each name and value percent-encoded
(RFC 3986: only ``A-Z a-z 0-9 - _ . ~`` stay as they are), joined as ``k=v&…``;
StringToSign = ``GET&%2F&`` + percent-encode(that); Signature = Base64(HMAC-SHA1(secret + "&",
StringToSign)).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, unquote, urlsplit

import aiohttp

from app.core.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from app.notifications import Notification

API_VERSION = "2017-05-25"
TIMEOUT_SECONDS = 15
# Codes that may clear by themselves (limits, throttling, the provider's own trouble, balance).
TEMPORARY_CODES = {
    "isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL",
    "isp.SYSTEM_ERROR", "isv.OUT_OF_SERVICE", "isv.AMOUNT_NOT_ENOUGH", "Throttling",
    "Throttling.User", "Throttling.Api", "ServiceUnavailable", "InternalError",
}  # fmt: skip


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
        self, n: Notification, *, nonce: str | None = None, timestamp: str | None = None
    ) -> dict[str, str]:
        provider = (n.content.get("provider") or {}).get("aliyun")
        if not provider:
            raise PermanentDeliveryError(
                f"rule {n.rule_id}: its SMS template has no aliyun template_code (provider.yaml)"
            )
        params = {
            "AccessKeyId": self.access_key_id, "Action": "SendSms", "Format": "JSON",
            "RegionId": self.region, "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": nonce or uuid.uuid4().hex, "SignatureVersion": "1.0",
            "Timestamp": timestamp or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION, "PhoneNumbers": phone_number(n.address), "SignName": self.sign_name,
            "TemplateCode": provider["template_code"], "OutId": n.id,
            "TemplateParam": json.dumps({k: str(v) for k, v in provider.get("params", {}).items()},
                                        ensure_ascii=False, separators=(",", ":")),
        }  # fmt: skip
        params["Signature"] = sign(params, self.access_key_secret)
        return params

    async def send(
        self, notification: Notification, on_commit: Callable[[], None] | None = None
    ) -> str:
        params = self.request_params(notification)
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        try:
            async with self._session.get(self.endpoint, params=params) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TemporaryDeliveryError(f"Aliyun SMS unreachable: {type(exc).__name__}") from exc
        return classify(status, body)

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
    if status >= 500 or status == 429 or code in TEMPORARY_CODES:
        raise TemporaryDeliveryError(reason)
    raise PermanentDeliveryError(reason)
