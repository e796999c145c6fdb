"""Tencent Cloud SendSms: TC3-HMAC-SHA256 against Tencent's documented example, the request, up to
200 numbers a call with each number's answer mapped back (one bad number fails alone), and its
codes mapped to temporary and permanent failures. A local HTTP server stands in for Tencent,
which these machines cannot reach; it checks every request's signature."""

import json
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp import web

from app.core.errors import ConfigError, PermanentDeliveryError, TemporaryDeliveryError
from app.delivery.deliverer import Deliverer, DeliveryPolicy
from app.delivery.gateways import sms_gateway_from_url
from app.delivery.gateways.tencent import (
    MAX_NUMBERS,
    TencentSmsGateway,
    authorization,
    canonical_request,
    sha256_hex,
    string_to_sign,
)
from app.delivery.preferences import Preferences
from app.notifications import Notification
from app.profiles.store import ProfileStore
from app.state import DeliveryState
from devstack.stack import free_port
from tests.helpers import TEST_SECRET, provider_api

# Tencent's worked example ("Signature v3": CVM DescribeInstances, 2019-02-25 16:44:25 UTC).
EXAMPLE_ID, EXAMPLE_KEY = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE", "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"
EXAMPLE_BODY = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
EXAMPLE_TIME = 1551113065
NOW = 1_780_000_000
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_signature_matches_tencents_documented_example_step_by_step():
    assert (
        sha256_hex(EXAMPLE_BODY)
        == "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    canonical = canonical_request(EXAMPLE_BODY, "cvm.tencentcloudapi.com")
    assert canonical == ("POST\n/\n\ncontent-type:application/json; charset=utf-8\n"
                         "host:cvm.tencentcloudapi.com\n\ncontent-type;host\n"
                         "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064")  # fmt: skip
    assert string_to_sign(canonical, EXAMPLE_TIME, "cvm") == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert authorization(EXAMPLE_ID, EXAMPLE_KEY, EXAMPLE_BODY, "cvm.tencentcloudapi.com",
                         EXAMPLE_TIME, "cvm") == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, "
        "SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168")  # fmt: skip


def sms(
    i: int, *, address: str | None = None, params=("李明", "SZJS1"), provider=True
) -> Notification:
    content = {"text": "【盐田区政务服务】…", "segments": 1, "encoding": "UCS2", "units": 40}
    if provider:
        content["provider"] = {"tencent": {"template_code": "1110",
                                           "params": {str(k + 1): v for k, v in enumerate(params)}}}  # fmt: skip
    return Notification(id=f"n-tc-{i}", rule_id="weather-outdoor-ads-warning", rule_version=1, category="warning",
                        event_id="E1", event_type="weather.warning.issued", channel="sms", profile_id=f"E-{i}",
                        recipient=f"E-{i}/safety_officer/0", recipient_name=None, role="safety_officer",
                        address=address or f"+86139{i:08d}", language="zh-CN",
                        planned_at="2026-07-01T00:00:00+00:00", content=content)  # fmt: skip


@pytest_asyncio.fixture
async def tencent():
    """A local SendSms endpoint: checks each request's signature, records its body, and answers
    each number Ok unless told otherwise (``codes``: number → code; ``replies``: whole answers)."""
    seen, replies, codes = [], [], {}

    async def handle(request):
        payload = await request.read()
        timestamp = int(request.headers["X-TC-Timestamp"])
        assert request.headers["Authorization"] == authorization(
            "SID", "SKEY", payload, request.headers["Host"], timestamp), "bad signature"  # fmt: skip
        assert (request.headers["X-TC-Action"], request.headers["X-TC-Version"]) == (
            "SendSms",
            "2021-01-11",
        )
        body = json.loads(payload)
        seen.append(body)
        if replies:
            status, answer = replies.pop(0)
            if isinstance(answer, bytes):
                return web.Response(body=answer, status=status, content_type="application/json")
            return web.json_response(answer, status=status)
        statuses = [{"SerialNo": f"s-{n}", "PhoneNumber": n, "Fee": 1, "Code": codes.get(n, "Ok"),
                     "Message": "send success" if n not in codes else "refused", "IsoCode": "CN"}
                    for n in body["PhoneNumberSet"]]  # fmt: skip
        return web.json_response({"Response": {"SendStatusSet": statuses, "RequestId": "r"}})

    async with provider_api(handle) as url:
        gateway = TencentSmsGateway(secret_id="SID", secret_key="SKEY", sdk_app_id="1400006666",
                                    sign_name="盐田区政务服务", endpoint=url,
                                    clock=lambda: NOW)  # fmt: skip
        yield gateway, seen, replies, codes
        await gateway.close()


async def test_one_sms_sends_the_approved_template_with_its_parameters_in_order(tencent):
    gateway, seen, _, _ = tencent
    assert await gateway.send(sms(1)) == "tencent:s-+8613900000001"
    [body] = seen
    assert body == {"PhoneNumberSet": ["+8613900000001"], "SmsSdkAppId": "1400006666",
                    "SignName": "盐田区政务服务", "TemplateId": "1110",
                    "TemplateParamSet": ["李明", "SZJS1"], "SessionContext": "n-tc-1"}  # fmt: skip


async def test_a_batch_goes_200_numbers_a_call_and_one_bad_number_fails_alone(tencent):
    gateway, seen, _, codes = tencent
    batch = [sms(i) for i in range(450)]
    codes[batch[7].address] = "InvalidParameterValue.IncorrectPhoneNumber"
    codes[batch[300].address] = "LimitExceeded.PhoneNumberDailyLimit"
    results = await gateway.send_batch(batch)
    assert sorted(len(b["PhoneNumberSet"]) for b in seen) == [50, MAX_NUMBERS, MAX_NUMBERS]
    assert isinstance(results[7], PermanentDeliveryError) and "IncorrectPhoneNumber" in str(
        results[7]
    )
    assert isinstance(results[300], TemporaryDeliveryError)
    sent = [r for r in results if isinstance(r, str)]
    assert len(sent) == 448 and results[0] == f"tencent:s-{batch[0].address}"
    assert sorted(n for b in seen for n in b["PhoneNumberSet"]) == sorted(n.address for n in batch)


async def test_different_texts_and_a_repeated_number_go_in_separate_calls(tencent):
    gateway, seen, _, _ = tencent
    batch = [sms(1), sms(2, params=("王芳", "SZJS2")), sms(3, address="+8613900000001"),
             sms(4, provider=False)]  # fmt: skip
    results = await gateway.send_batch(batch)
    assert [isinstance(r, str) for r in results] == [True, True, True, False]
    assert "no tencent template_code" in str(results[3])
    calls = sorted((b["TemplateParamSet"], b["PhoneNumberSet"]) for b in seen)
    assert calls == [(["李明", "SZJS1"], ["+8613900000001"]), (["李明", "SZJS1"], ["+8613900000001"]),
                     (["王芳", "SZJS2"], ["+8613900000002"])]  # fmt: skip


@pytest.mark.parametrize(("status", "code", "kind"), [
    (200, "RequestLimitExceeded", TemporaryDeliveryError), (200, "InternalError.Timeout", TemporaryDeliveryError),
    (200, "FailedOperation.InsufficientBalanceInSmsPackage", TemporaryDeliveryError),
    (200, "AuthFailure.SignatureFailure", PermanentDeliveryError),
    (200, "FailedOperation.TemplateIncorrectOrUnapproved", PermanentDeliveryError),
    (200, "FailedOperation.PhoneNumberInBlacklist", PermanentDeliveryError),
])  # fmt: skip
async def test_a_refused_call_fails_every_number_in_it_by_its_code(tencent, status, code, kind):
    gateway, _, replies, _ = tencent
    replies.append(
        (status, {"Response": {"Error": {"Code": code, "Message": "…"}, "RequestId": "r"}})
    )
    results = await gateway.send_batch([sms(1), sms(2)])
    assert all(isinstance(r, kind) and code in str(r) for r in results)


async def test_an_answer_without_a_number_or_without_sense_is_temporary(tencent):
    gateway, _, replies, _ = tencent
    replies.append(
        (
            200,
            {
                "Response": {
                    "SendStatusSet": [
                        {"PhoneNumber": "+8613900000001", "Code": "Ok", "SerialNo": "s1"}
                    ],
                    "RequestId": "r",
                }
            },
        )
    )
    replies.append((502, "<html>bad gateway</html>"))
    first = await gateway.send_batch([sms(1), sms(2)])
    assert first[0] == "tencent:s1" and isinstance(first[1], TemporaryDeliveryError)
    with pytest.raises(TemporaryDeliveryError, match="HTTP 502"):
        await gateway.send(sms(3))


async def test_an_unreachable_provider_is_temporary():
    gateway = TencentSmsGateway(secret_id="S", secret_key="K", sdk_app_id="1", sign_name="x",
                                endpoint=f"http://127.0.0.1:{free_port()}/")  # fmt: skip
    try:
        with pytest.raises(TemporaryDeliveryError, match="unreachable"):
            await gateway.send(sms(1))
        assert "unreachable" in (await gateway.check() or "")
    finally:
        await gateway.close()


def test_the_url_configures_the_gateway_and_bad_urls_are_refused():
    gateway = sms_gateway_from_url("tencent://SID:SK%2Fey@sms.tencentcloudapi.com"
                                   "?sdk_app_id=1400006666&sign_name=盐田区政务服务")  # fmt: skip
    assert isinstance(gateway, TencentSmsGateway)
    assert (gateway.secret_key, gateway.endpoint, gateway.region, gateway.host) == (
        "SK/ey", "https://sms.tencentcloudapi.com/", "ap-guangzhou", "sms.tencentcloudapi.com")  # fmt: skip
    with pytest.raises(ConfigError, match="sdk_app_id"):
        sms_gateway_from_url("tencent://SID:SKEY@sms.tencentcloudapi.com?sign_name=x")


async def test_the_deliverer_hands_a_batch_over_in_one_call_and_records_each_number(
    tencent, redis_client, prefix
):
    """A warning's batch of 120 goes in one SendSms call; the refused number is failed, the one
    over its daily limit deferred, the others sent — and a redelivery of the batch sends nothing."""
    gateway, seen, _, codes = tencent
    deliverer = Deliverer(DeliveryState(redis_client, prefix), Preferences(redis_client, prefix, TEST_SECRET),
                          ProfileStore(redis_client, prefix), {"sms": gateway},
                          DeliveryPolicy(SHANGHAI, None), clock=lambda: NOW)  # fmt: skip
    batch = [sms(i) for i in range(120)]
    codes[batch[5].address] = "FailedOperation.PhoneNumberInBlacklist"
    codes[batch[6].address] = "LimitExceeded.PhoneNumberDailyLimit"
    outcomes = await deliverer.deliver_many(batch)
    assert len(seen) == 1 and len(seen[0]["PhoneNumberSet"]) == 120
    final = [o[-1].status for o in outcomes]
    assert final[5] == "failed" and "PhoneNumberInBlacklist" in (outcomes[5][-1].error or "")
    assert final[6] == "deferred"  # over the number's daily limit: not again today
    tomorrow = datetime.combine(datetime.fromtimestamp(NOW, SHANGHAI).date() + timedelta(days=1),
                                datetime.min.time(), tzinfo=SHANGHAI)  # fmt: skip
    due = datetime.fromisoformat(outcomes[6][-1].next_attempt_at)
    assert tomorrow <= due <= tomorrow + timedelta(minutes=10)
    assert final.count("sent") == 118
    assert outcomes[0][-1].provider_ref == f"tencent:s-{batch[0].address}"
    again = await deliverer.deliver_many(batch)
    assert len(seen) == 1 and all(
        o[-1].status == "duplicate" for i, o in enumerate(again) if i != 6
    )


async def test_a_warning_over_its_numbers_daily_limit_waits_for_tomorrow_only_if_still_valid(
    tencent, redis_client, prefix
):
    """A repeated warning refused for the number's daily limit: tomorrow is too late for one
    that expires tonight (failed, dead-lettered, with both reasons), not for one valid for days;
    the other numbers of the call are sent."""
    gateway, seen, _, codes = tencent
    deliverer = Deliverer(DeliveryState(redis_client, prefix), Preferences(redis_client, prefix, TEST_SECRET),
                          ProfileStore(redis_client, prefix), {"sms": gateway},
                          DeliveryPolicy(SHANGHAI, None), clock=lambda: NOW)  # fmt: skip
    tonight = datetime.fromtimestamp(NOW + 3 * 3600, SHANGHAI).isoformat()
    in_three_days = datetime.fromtimestamp(NOW + 3 * 86400, SHANGHAI).isoformat()
    batch = [replace(sms(i), expires_at=tonight if i < 2 else in_three_days) for i in range(4)]
    codes[batch[0].address] = codes[batch[2].address] = "LimitExceeded.PhoneNumberDailyLimit"
    outcomes = await deliverer.deliver_many(batch)
    assert len(seen) == 1
    last = [o[-1] for o in outcomes]
    assert (last[0].status, last[0].retriable, last[0].dead_letter) == ("failed", False, True)
    assert "PhoneNumberDailyLimit" in last[0].error and f"expires at {tonight}" in last[0].error
    assert last[2].status == "deferred"  # valid until after tomorrow: tried again then
    assert datetime.fromisoformat(last[2].next_attempt_at) < datetime.fromisoformat(in_three_days)
    assert (last[1].status, last[3].status) == ("sent", "sent")
    assert (await deliverer.state.record(batch[0].id))["status"] == "failed"


async def test_a_hostile_answer_nested_or_huge_is_a_temporary_failure_not_a_crash(tencent):
    gateway, _, replies, _ = tencent
    replies.append((200, b"[" * 200_000))
    replies.append(
        (200, b'{"Response": {"SendStatusSet": [' + b'{"PhoneNumber": "x"},' * 400_000 + b"{}]}}")
    )
    replies.append((200, {"Response": {"SendStatusSet": "Ok", "Error": "none"}}))
    for _ in range(3):
        [result] = await gateway.send_batch([sms(1)])
        assert isinstance(result, TemporaryDeliveryError)
