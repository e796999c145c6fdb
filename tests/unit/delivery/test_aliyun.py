"""Aliyun SendSms: the signature against Aliyun's documented example, the request, and the
mapping of its answers to temporary and permanent failures (a local HTTP server stands in for
Aliyun, which these machines cannot reach; it checks every request's signature)."""

import dataclasses
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp import web

from app.core.errors import ConfigError, PermanentDeliveryError, RenderError, TemporaryDeliveryError
from app.delivery.gateways import sms_gateway_from_url
from app.delivery.gateways.aliyun import (
    AliyunSmsGateway,
    percent_encode,
    phone_number,
    sign,
    string_to_sign,
)
from app.notifications import Notification
from app.rendering.renderer import Renderer
from devstack.stack import free_port
from tests.helpers import provider_api

# Aliyun's worked example (RPC signature, DescribeRegions, AccessKeySecret "testsecret").
DOCUMENTED = {"AccessKeyId": "testid", "Action": "DescribeRegions", "Format": "XML", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureVersion": "1.0",
              "Timestamp": "2016-02-23T12:46:24Z", "Version": "2014-05-26"}  # fmt: skip


def test_string_to_sign_matches_the_documented_example():
    assert string_to_sign(DOCUMENTED) == (
        "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
        "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26")  # fmt: skip


def test_signature_matches_the_documented_example():
    assert sign(DOCUMENTED, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


@pytest.mark.parametrize(("raw", "encoded"), [("a b*c~d", "a%20b%2Ac~d"), ("2016-02-23T12:46:24Z", "2016-02-23T12%3A46%3A24Z"),
                                              ("盐田", "%E7%9B%90%E7%94%B0"), ('{"a":"1"}', "%7B%22a%22%3A%221%22%7D")])  # fmt: skip
def test_percent_encoding_follows_rfc3986(raw, encoded):
    assert percent_encode(raw) == encoded


def test_mainland_numbers_lose_the_country_code_others_keep_it():
    assert (phone_number("+8613800138000"), phone_number("+85291234567")) == (
        "13800138000",
        "85291234567",
    )


def test_the_url_configures_the_gateway_and_bad_urls_are_refused():
    gateway = sms_gateway_from_url(
        "aliyun://KEY:SEC%2Fret@dysmsapi.aliyuncs.com?sign_name=盐田区政务服务"
    )
    assert isinstance(gateway, AliyunSmsGateway)
    assert (gateway.access_key_secret, gateway.endpoint) == (
        "SEC/ret",
        "https://dysmsapi.aliyuncs.com/",
    )
    with pytest.raises(ConfigError, match="sign_name"):
        sms_gateway_from_url("aliyun://KEY:SECRET@dysmsapi.aliyuncs.com")
    with pytest.raises(ConfigError, match="no SMS gateway for scheme 'twilio'"):
        sms_gateway_from_url("twilio://x")


def sms(provider=True) -> Notification:
    content = {
        "text": "【盐田区政务服务】李明同学…",
        "segments": 2,
        "encoding": "UCS2",
        "units": 80,
    }
    if provider:
        content["provider"] = {
            "aliyun": {"template_code": "SMS_123456789", "params": {"name": "李明", "no": "SZJS1"}}
        }
    return Notification(id="n-ali-1", rule_id="graduate-hukou-transfer", rule_version=1, category="reminder",
                        event_id="E1", event_type="graduate.reception.approved", channel="sms", profile_id="P-1",
                        recipient="P-1", recipient_name="李明", role=None, address="+8613800138000", language="zh-CN",
                        planned_at="2026-07-01T00:00:00+00:00", content=content)  # fmt: skip


def aliyun_at(url):
    return AliyunSmsGateway(access_key_id="KEY", access_key_secret="SECRET", sign_name="盐田区政务服务",
                            endpoint=url)  # fmt: skip


@pytest_asyncio.fixture
async def aliyun():
    """A local SendSms endpoint that checks signatures and answers with the queued replies."""
    seen, replies = [], []

    async def handle(request):
        params = dict(await request.post())
        signature = params.pop("Signature")
        assert signature == sign(params, "SECRET", "POST"), "bad signature"
        seen.append(params)
        status, body = (
            replies.pop(0) if replies else (200, {"Code": "OK", "BizId": "900^0", "RequestId": "r"})
        )
        if isinstance(body, bytes):
            return web.Response(body=body, status=status, content_type="application/json")
        return web.json_response(body, status=status)

    async with provider_api(handle) as url:
        gateway = aliyun_at(url)
        yield gateway, seen, replies
        await gateway.close()


async def test_an_accepted_sms_returns_the_biz_id_and_sends_the_approved_template(aliyun):
    gateway, seen, _ = aliyun
    assert await gateway.send(sms()) == "aliyun:900^0"
    [params] = seen
    assert (params["Action"], params["Version"], params["PhoneNumbers"], params["SignName"], params["TemplateCode"],
            params["OutId"]) == ("SendSms", "2017-05-25", "13800138000", "盐田区政务服务", "SMS_123456789", "n-ali-1")  # fmt: skip
    assert json.loads(params["TemplateParam"]) == {"name": "李明", "no": "SZJS1"}


@pytest.mark.parametrize(("status", "code", "kind"), [
    (200, "isv.BUSINESS_LIMIT_CONTROL", TemporaryDeliveryError), (200, "isp.SYSTEM_ERROR", TemporaryDeliveryError),
    (503, "ServiceUnavailable", TemporaryDeliveryError), (200, "isv.MOBILE_NUMBER_ILLEGAL", PermanentDeliveryError),
    (200, "isv.TEMPLATE_MISSING_PARAMETERS", PermanentDeliveryError), (400, "SignatureDoesNotMatch", PermanentDeliveryError),
])  # fmt: skip
async def test_provider_codes_map_to_temporary_or_permanent_failures(aliyun, status, code, kind):
    gateway, _, replies = aliyun
    replies.append((status, {"Code": code, "Message": "…", "RequestId": "r"}))
    with pytest.raises(kind, match=code):
        await gateway.send(sms())


async def test_an_unreachable_provider_is_temporary():
    gateway = AliyunSmsGateway(
        access_key_id="K",
        access_key_secret="S",
        sign_name="X",
        endpoint=f"http://127.0.0.1:{free_port()}/",
    )
    with pytest.raises(TemporaryDeliveryError, match="unreachable"):
        await gateway.send(sms())
    await gateway.close()


async def test_a_template_without_an_approved_code_is_a_permanent_failure(aliyun):
    with pytest.raises(PermanentDeliveryError, match="no aliyun template_code"):
        await aliyun[0].send(sms(provider=False))


def write_template(folder: Path, provider_yaml: str) -> Renderer:
    lang = folder / "t" / "zh-CN"
    lang.mkdir(parents=True)
    (lang / "sms.txt").write_text("{{ recipient.name }}同学，批准号{{ data.no }}", encoding="utf-8")
    (lang / "provider.yaml").write_text(provider_yaml, encoding="utf-8")
    return Renderer(folder, signature="【盐田区政务服务】", tz=ZoneInfo("Asia/Shanghai"))


def test_provider_parameters_are_rendered_with_the_same_data(tmp_path):
    renderer = write_template(
        tmp_path,
        "aliyun:\n  template_code: SMS_1\n  params:\n    name: '{{ recipient.name }}'\n    no: '{{ data.no }}'\n",
    )
    content = renderer.render(
        "t", "sms", "zh-CN", {"recipient": {"name": "李明"}, "data": {"no": "A1"}}
    )
    assert (
        content.text == "【盐田区政务服务】李明同学，批准号A1"
    )  # the preview of what the provider sends
    assert content.provider == {
        "aliyun": {"template_code": "SMS_1", "params": {"name": "李明", "no": "A1"}}
    }


def test_a_provider_parameter_using_a_missing_field_is_an_error(tmp_path):
    renderer = write_template(
        tmp_path, "aliyun:\n  template_code: SMS_1\n  params:\n    x: '{{ data.nope }}'\n"
    )
    with pytest.raises(RenderError, match="provider.yaml: aliyun.params"):
        renderer.render("t", "sms", "zh-CN", {"recipient": {"name": "李明"}, "data": {"no": "A1"}})


def numbered(i: int, *, params: dict | None = None) -> Notification:
    n = sms()
    provider = {"aliyun": {"template_code": "SMS_9", "params": params or {"level": "红色"}}}
    return dataclasses.replace(n, id=f"n-ali-b{i}", address=f"+86139{i:08d}",
                               content=dict(n.content, provider=provider))  # fmt: skip


@pytest_asyncio.fixture
async def aliyun_batch():
    """A local Aliyun taking SendSms for many numbers and SendBatchSms, checking signatures; a
    call including a number in ``bad`` is refused whole, as Aliyun does."""
    calls, bad = [], set()

    async def handle(request):
        params = dict(await request.post())
        assert params.pop("Signature") == sign(params, "SECRET", "POST"), "bad signature"
        calls.append(params)
        if params["Action"] == "SendBatchSms":
            numbers = json.loads(params["PhoneNumberJson"])
            assert len(json.loads(params["TemplateParamJson"])) == len(numbers)
            assert json.loads(params["SignNameJson"]) == ["盐田区政务服务"] * len(numbers)
        else:
            numbers = params["PhoneNumbers"].split(",")
        if bad & set(numbers):
            return web.json_response({"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号"})
        return web.json_response({"Code": "OK", "BizId": f"biz-{len(calls)}", "RequestId": "r"})

    async with provider_api(handle) as url:
        gateway = aliyun_at(url)
        yield gateway, calls, bad
        await gateway.close()


async def test_one_text_goes_to_a_thousand_numbers_a_call(aliyun_batch):
    gateway, calls, _ = aliyun_batch
    batch = [numbered(i) for i in range(2500)]
    results = await gateway.send_batch(batch)
    assert sorted(len(c["PhoneNumbers"].split(",")) for c in calls) == [500, 1000, 1000]
    assert {c["Action"] for c in calls} == {"SendSms"} and all(isinstance(r, str) for r in results)
    assert sorted(n for c in calls for n in c["PhoneNumbers"].split(",")) == sorted(
        n.address.removeprefix("+86") for n in batch
    )


async def test_a_call_refused_for_one_number_is_sent_again_number_by_number(aliyun_batch):
    gateway, calls, bad = aliyun_batch
    batch = [numbered(i) for i in range(30)]
    bad.add("13900000007")
    results = await gateway.send_batch(batch)
    assert isinstance(results[7], PermanentDeliveryError) and "MOBILE_NUMBER_ILLEGAL" in str(
        results[7]
    )
    assert sum(isinstance(r, str) for r in results) == 29
    assert len(calls) == 1 + 30  # the refused call sent nothing; then each number alone


async def test_personal_texts_go_a_hundred_a_call_by_send_batch_sms(aliyun_batch):
    gateway, calls, _ = aliyun_batch
    batch = [numbered(i, params={"name": f"联系人{i}"}) for i in range(150)]
    results = await gateway.send_batch(batch)
    assert all(isinstance(r, str) for r in results)
    assert sorted(len(json.loads(c["PhoneNumberJson"])) for c in calls) == [50, 100]
    first = next(c for c in calls if len(json.loads(c["PhoneNumberJson"])) == 100)
    pairs = zip(
        json.loads(first["PhoneNumberJson"]), json.loads(first["TemplateParamJson"]), strict=True
    )
    assert all(p == {"name": f"联系人{int(number[-8:])}"} for number, p in pairs)


async def test_a_daily_limit_waits_for_tomorrow(aliyun):
    gateway, _, replies = aliyun
    replies.append((200, {"Code": "isv.DAY_LIMIT_CONTROL", "Message": "触发日发送限额"}))
    with pytest.raises(TemporaryDeliveryError) as caught:
        await gateway.send(sms())
    assert caught.value.next_day


async def test_a_hostile_answer_is_a_temporary_failure_not_a_crash(aliyun):
    gateway, _, replies = aliyun
    replies += [
        (200, b"[" * 200_000),
        (200, b"[1, 2]"),
        (200, b'{"Code": "OK"' + b" " * 2_000_000 + b"}"),
    ]
    for _ in range(3):
        with pytest.raises((TemporaryDeliveryError, PermanentDeliveryError)):
            await gateway.send(sms())
