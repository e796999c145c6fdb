"""Tencent Cloud SMS (sms 2021-01-11 ``SendSms``), signed with TC3-HMAC-SHA256.

``LIFECYCLE_SMS_URL=tencent://SECRET_ID:SECRET_KEY@sms.tencentcloudapi.com?sdk_app_id=1400006666&sign_name=盐田区政务服务``
(optional ``region=ap-guangzhou``; ``endpoint=http://host:port/`` to point at another server).

Like Aliyun, Tencent sends approved templates only: each SMS template folder names the approved
template's id and its parameters in ``provider.yaml``, in the order of its ``{1}``, ``{2}`` …::

    tencent:
      template_code: "1110"
      params: {"1": "{{ recipient.name }}", "2": "{{ data.approval_no }}"}

One call takes up to 200 numbers (all mainland or all abroad) with the same template and the same
parameters; ``send_batch`` groups a batch so, and maps each number's ``SendStatus`` back to its
notification: one bad number fails alone, the others are sent. ``SessionContext`` carries the
notification ids, which Tencent returns as given. SendSms is not idempotent; the claim in
``app.delivery.deliverer`` is what keeps a retry from sending twice.

TC3-HMAC-SHA256 (Tencent's "Signature v3"): CanonicalRequest = method, ``/``, the query (empty for
POST), the headers ``content-type`` and ``host`` as ``name:value`` lines, their names, and the
SHA-256 of the body; StringToSign = ``TC3-HMAC-SHA256``, the timestamp, the scope
``{UTC date}/{service}/tc3_request`` and the SHA-256 of the CanonicalRequest; the key is derived by
HMAC-SHA256 of the date with ``"TC3" + SecretKey``, then of the service, then of ``tc3_request``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote, urlsplit

import aiohttp

from app.core.codec import json_bytes
from app.core.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from app.delivery.gateways.batching import distinct_chunks
from app.notifications import Notification

API_VERSION = "2021-01-11"
SERVICE = "sms"
MAX_NUMBERS = 200  # per SendSms call
TIMEOUT_SECONDS = 15
MAX_ANSWER_BYTES = 1 << 20  # 200 statuses are some 40 KB; more is read no further
CONTENT_TYPE = "application/json; charset=utf-8"

# Request-level and per-number codes that may clear by themselves: limits per number and per
# period, throttling, the provider's own trouble, an exhausted package (it can be topped up).
TEMPORARY_CODES = {
    "LimitExceeded.PhoneNumberDailyLimit", "LimitExceeded.PhoneNumberOneHourLimit",
    "LimitExceeded.PhoneNumberThirtySecondLimit", "LimitExceeded.PhoneNumberSameContentDailyLimit",
    "LimitExceeded.DeliveryFrequencyLimit", "LimitExceeded.DailyLimit",
    "FailedOperation.InsufficientBalanceInSmsPackage", "InternalError", "InternalError.Timeout",
    "InternalError.OtherError", "InternalError.RequestTimeException", "InternalError.SendAndRecvFail",
    "InternalError.TimeoutError", "RequestLimitExceeded", "RequestLimitExceeded.IPLimitExceeded",
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded", "RequestLimitExceeded.UinLimitExceeded",
    "ResourceUnavailable", "ServiceUnavailable", "AuthFailure.SignatureExpire",
}  # fmt: skip
# The number takes no more today: the retry waits for tomorrow (the limits are the provider's
# guard against bombing; a district that repeats warnings raises them in Tencent's console).
DAILY_LIMIT_CODES = {"LimitExceeded.PhoneNumberDailyLimit",
                     "LimitExceeded.PhoneNumberSameContentDailyLimit"}  # fmt: skip


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def canonical_request(payload: bytes, host: str, content_type: str = CONTENT_TYPE) -> str:
    headers = f"content-type:{content_type}\nhost:{host}\n"
    return f"POST\n/\n\n{headers}\ncontent-type;host\n{sha256_hex(payload)}"


def string_to_sign(canonical: str, timestamp: int, service: str = SERVICE) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    scope = f"{date}/{service}/tc3_request"
    return f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{sha256_hex(canonical.encode('utf-8'))}"


def signature(secret_key: str, canonical: str, timestamp: int, service: str = SERVICE) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, string_to_sign(canonical, timestamp, service).encode("utf-8"),
                    hashlib.sha256).hexdigest()  # fmt: skip


def authorization(secret_id: str, secret_key: str, payload: bytes, host: str, timestamp: int,
                  service: str = SERVICE) -> str:  # fmt: skip
    canonical = canonical_request(payload, host)
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    return (f"TC3-HMAC-SHA256 Credential={secret_id}/{date}/{service}/tc3_request, "
            f"SignedHeaders=content-type;host, "
            f"Signature={signature(secret_key, canonical, timestamp, service)}")  # fmt: skip


def _provider(n: Notification) -> tuple[str, list[str]]:
    spec = (n.content.get("provider") or {}).get("tencent")
    if not spec:
        raise PermanentDeliveryError(
            f"rule {n.rule_id}: its SMS template has no tencent template_code (provider.yaml)"
        )
    return str(spec["template_code"]), [str(v) for v in spec.get("params", {}).values()]


def failure(code: str, message: str) -> TemporaryDeliveryError | PermanentDeliveryError:
    reason = f"Tencent {code}: {message}".strip()
    if code in DAILY_LIMIT_CODES:  # retrying today only spends attempts
        return TemporaryDeliveryError(reason, next_day=True)
    if code in TEMPORARY_CODES or code.startswith("InternalError"):
        return TemporaryDeliveryError(reason)
    return PermanentDeliveryError(reason)


class TencentSmsGateway:
    def __init__(self, *, secret_id: str, secret_key: str, sdk_app_id: str, sign_name: str,
                 endpoint: str, region: str = "ap-guangzhou",
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.sdk_app_id = sdk_app_id
        self.sign_name = sign_name
        self.endpoint = endpoint
        self.region = region
        self.clock = clock
        self.host = urlsplit(endpoint).netloc
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_url(cls, url: str) -> TencentSmsGateway:
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if not (parts.username and parts.password and query.get("sdk_app_id")
                and query.get("sign_name")):  # fmt: skip
            raise ConfigError("LIFECYCLE_SMS_URL: tencent://SECRET_ID:SECRET_KEY@host"
                              "?sdk_app_id=…&sign_name=… needs all four")  # fmt: skip
        return cls(secret_id=unquote(parts.username), secret_key=unquote(parts.password),
                   sdk_app_id=query["sdk_app_id"], sign_name=query["sign_name"],
                   region=query.get("region", "ap-guangzhou"),
                   endpoint=query.get("endpoint") or f"https://{parts.hostname}/")  # fmt: skip

    def request(
        self, batch: Sequence[Notification], timestamp: int
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one SendSms call for notifications with one template and the
        same parameters (``send_batch`` groups them so)."""
        template_id, params = _provider(batch[0])
        body = {"PhoneNumberSet": [n.address for n in batch], "SmsSdkAppId": self.sdk_app_id,
                "SignName": self.sign_name, "TemplateId": template_id,
                "TemplateParamSet": params,
                "SessionContext": ",".join(n.id for n in batch)[:500]}  # fmt: skip
        payload = json_bytes(body)
        headers = {
            "Authorization": authorization(self.secret_id, self.secret_key, payload, self.host,
                                           timestamp),
            "Content-Type": CONTENT_TYPE, "Host": self.host, "X-TC-Action": "SendSms",
            "X-TC-Version": API_VERSION, "X-TC-Region": self.region,
            "X-TC-Timestamp": str(timestamp),
        }  # fmt: skip
        return payload, headers

    async def send(
        self, notification: Notification, on_commit: Callable[[], None] | None = None
    ) -> str:
        [result] = await self.send_batch([notification])
        if isinstance(result, Exception):
            raise result
        return result

    async def send_batch(
        self, batch: Sequence[Notification]
    ) -> list[str | TemporaryDeliveryError | PermanentDeliveryError]:
        """Each notification's provider reference, or its failure: grouped by template and
        parameters, at most 200 numbers a call, the calls made concurrently."""
        results: list[str | TemporaryDeliveryError | PermanentDeliveryError] = [
            PermanentDeliveryError("not sent") for _ in batch
        ]
        groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
        for i, n in enumerate(batch):
            try:
                template_id, params = _provider(n)
            except PermanentDeliveryError as exc:
                results[i] = exc
                continue
            groups.setdefault((template_id, tuple(params)), []).append(i)
        calls = [chunk for indexes in groups.values()
                 for chunk in distinct_chunks(indexes, [batch[i].address for i in indexes],
                                              MAX_NUMBERS)]  # fmt: skip
        answers = await asyncio.gather(*(self._call([batch[i] for i in c]) for c in calls))
        for indexes, answer in zip(calls, answers, strict=True):
            for i, result in zip(indexes, answer, strict=True):
                results[i] = result
        return results

    async def _call(
        self, batch: list[Notification]
    ) -> list[str | TemporaryDeliveryError | PermanentDeliveryError]:
        payload, headers = self.request(batch, int(self.clock()))
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
            )
        try:
            async with self._session.post(self.endpoint, data=payload, headers=headers) as response:
                status = response.status
                raw = await response.content.read(MAX_ANSWER_BYTES)
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, or nested to break the parser
                body = {}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = TemporaryDeliveryError(f"Tencent SMS unreachable: {type(exc).__name__}")
            return [error for _ in batch]
        return per_number(status, body, batch)

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


def per_number(status: int, body: object, batch: Sequence[Notification]
               ) -> list[str | TemporaryDeliveryError | PermanentDeliveryError]:  # fmt: skip
    """Each notification's result from one SendSms answer: the call's error for all of them, or
    each number's own ``SendStatus`` (a number the answer does not mention is a temporary
    failure: it may or may not have been sent, and the claim keeps a retry from doubling it only
    while it holds; the provider's daily limits are the last guard)."""
    response = body.get("Response") if isinstance(body, dict) else None
    if not isinstance(response, dict):
        error: TemporaryDeliveryError | PermanentDeliveryError = (
            TemporaryDeliveryError(f"Tencent HTTP {status}: no answer")
            if status >= 500 or status == 429 or status == 200
            else PermanentDeliveryError(f"Tencent HTTP {status}")
        )
        return [error for _ in batch]
    if isinstance(response.get("Error"), dict):
        fault = response["Error"]
        error = failure(str(fault.get("Code", status)), str(fault.get("Message", "")))
        return [error for _ in batch]
    statuses: dict[str, dict[str, object]] = {}
    for entry in response.get("SendStatusSet") or []:
        if isinstance(entry, dict) and isinstance(entry.get("PhoneNumber"), str):
            statuses.setdefault(entry["PhoneNumber"], entry)
    out: list[str | TemporaryDeliveryError | PermanentDeliveryError] = []
    for n in batch:
        entry = statuses.get(n.address)
        if entry is None:
            out.append(TemporaryDeliveryError("Tencent: the answer did not mention this number"))
        elif entry.get("Code") == "Ok":
            out.append(f"tencent:{entry.get('SerialNo', '')}")
        else:
            out.append(failure(str(entry.get("Code")), str(entry.get("Message", ""))))
    return out
