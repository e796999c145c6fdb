"""Dead letters in the console, against a running worker: a notification the SMTP server refused
is replayed from the console once its cause is gone and is sent exactly once; a bad event is
discarded with a reason; both are in the audit log; operators see only their districts."""

from __future__ import annotations

import json
import uuid

from bench.harness import Workers, load_profiles, wait_until
from tests.conftest import LOGS
from tests.helpers import graduate_event, person
from tests.integration.test_console import PASSWORD, sign_in
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from wiring.kafka import publish_raw


async def letters(session, console, **query):
    response = await session.get(f"{console['url']}/api/dlq", params=query)
    assert response.status == 200, await response.text()
    return (await response.json())["dead_letters"]


async def test_a_refused_e_mail_is_replayed_once_and_a_bad_event_discarded_from_the_console(
    console,
):
    settings = console["settings"]
    sink = console["sink"]
    workers = Workers(settings, LOGS / f"dlq-console-{uuid.uuid4().hex[:6]}")
    proc = workers.start()
    operator, csrf = await sign_in(console, "sz-operator")
    await console["svc"].accounts.put("lh-operator", PASSWORD, ["operator"], ["440303"])
    luohu, luohu_csrf = await sign_in(console, "lh-operator")
    try:
        assert await workers.ready(proc), "the worker did not start"
        await load_profiles(settings, [person("P-DLQ1", email="refused@example.cn")])
        sink.replies["refused@example.cn"] = ["550 5.1.1 mailbox unavailable"]  # once
        event = graduate_event("E-DLQ1", "P-DLQ1")
        bad = {
            **graduate_event("E-DLQ2", "P-DLQ1"),
            "data": {"school": "深圳大学"},
        }  # fields missing
        publish_raw(settings.kafka_servers, "life-events", [
            (b"P-DLQ1", json.dumps(event, ensure_ascii=False).encode()),
            (b"P-DLQ1", json.dumps(bad, ensure_ascii=False).encode())])  # fmt: skip

        async def both_dead():
            found = await letters(operator, console)
            return len(found) == 2 and found

        assert await wait_until(both_dead, 60, every=0.5)
        [failed] = await letters(operator, console, topic="notifications-dlq")
        [rejected] = await letters(operator, console, topic="life-events-dlq")
        assert failed["to"] == "r******@example.cn" and "refused@" not in json.dumps(failed)
        assert failed["state"] == rejected["state"] == "waiting" and failed["districts"] == [
            "440308"
        ]
        assert "approval_no" in rejected["reason"]
        assert await letters(luohu, console) == []  # Luohu's operator sees none of Yantian's
        outside = await luohu.post(f"{console['url']}/api/dlq/replay", headers=luohu_csrf,
                                   json={"names": [failed["name"]]})  # fmt: skip
        assert outside.status == 404

        # the cause is gone (the scripted refusal was used up): replay, from the console
        replayed = await operator.post(f"{console['url']}/api/dlq/replay", headers=csrf,
                                       json={"names": [failed["name"]]})  # fmt: skip
        assert (await replayed.json())["replayed"] == {
            failed["name"]: "replayed onto notifications"
        }
        assert await wait_until(
            lambda: (
                [m["To"].addresses[0].addr_spec for m in sink.received()] == ["refused@example.cn"]
            ),
            30,
        )
        again = await operator.post(f"{console['url']}/api/dlq/replay", headers=csrf,
                                    json={"names": [failed["name"]]})  # fmt: skip
        assert (await again.json())["replayed"][failed["name"]].startswith("not replayed")
        await wait_until(lambda: len(sink.received()) > 1, 3)
        assert len(sink.received()) == 1  # exactly once

        assert (await operator.post(f"{console['url']}/api/dlq/discard", headers=csrf,
                                    json={"names": [rejected["name"]]})).status == 400  # no reason  # fmt: skip
        discarded = await operator.post(f"{console['url']}/api/dlq/discard", headers=csrf,
                                        json={"names": [rejected["name"]], "why": "测试数据，来源已修正"})  # fmt: skip
        assert (await discarded.json())["discarded"] == {rejected["name"]: "discarded"}
        states = {d["name"]: d["state"] for d in await letters(operator, console)}
        assert states == {failed["name"]: "replayed", rejected["name"]: "discarded"}
        after = await operator.post(f"{console['url']}/api/dlq/replay", headers=csrf,
                                    json={"names": [rejected["name"]]})  # fmt: skip
        assert (await after.json())["replayed"][rejected["name"]].startswith("not replayed")

        page = await (await operator.get(f"{console['url']}/dlq?state=discarded")).text()
        assert rejected["name"] in page and failed["name"] not in page and "refused@" not in page

        steps = [(e.who, e.action, e.outcome, e.details.get("dead_letter"))
                 for e in await console["svc"].audit.read()]  # fmt: skip
        assert ("sz-operator", "dlq-replay", "ok", failed["name"]) in steps
        assert ("sz-operator", "dlq-replay", "refused", failed["name"]) in steps
        assert ("sz-operator", "dlq-discard", "ok", rejected["name"]) in steps
    finally:
        await operator.close()
        await luohu.close()
        workers.stop_all()
