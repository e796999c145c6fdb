"""New event types through the console: drafted with a JSON Schema and an example, checked by
field, approved by an admin who did not draft them, then known to every process (a rule on the new
type loads). A type's schema is staff's writing: hostile ones are refused or run bounded."""

from __future__ import annotations

import json

import pytest

from app.core.errors import EventRejected
from app.intake.events import catalogue, validate_event
from tests.helpers import RETIREMENT, retirement_event, retirement_type
from tests.integration.test_console import console as console  # noqa: F401 - a fixture
from tests.integration.test_console import sign_in

TYPES = "/api/event-types"


async def put_type(session, csrf, console, doc, name=RETIREMENT):
    response = await session.put(f"{console['url']}{TYPES}/{name}/draft",
                                 headers={**csrf, "Content-Type": "application/json"},
                                 data=json.dumps(doc, ensure_ascii=False).encode("utf-8"))  # fmt: skip
    return response.status, await response.json()


async def test_an_author_drafts_a_type_an_admin_approves_it_and_rules_on_it_load(console):
    author, author_csrf = await sign_in(console, "yt-author")
    admin, admin_csrf = await sign_in(console, "admin")
    try:
        wrong = retirement_type()
        wrong["data"]["properties"]["retire_on"]["type"] = "strnig"
        wrong["example"] = {**wrong["example"], "data": {"approval_no": "X"}}
        status, body = await put_type(author, author_csrf, console, wrong)
        assert status == 200 and body["status"] == "draft"
        assert [e["field"] for e in body["errors"]] == ["data.properties.retire_on.type"]

        doc = retirement_type()
        doc["example"] = {**doc["example"], "data": {"approval_no": "X"}}
        _, body = await put_type(author, author_csrf, console, doc)
        assert (
            body["errors"][0]["field"] == "example" and "retire_on" in body["errors"][0]["message"]
        )

        status, body = await put_type(author, author_csrf, console, retirement_type())
        assert (status, body) == (200, {"errors": [], "status": "submitted"})
        assert RETIREMENT not in catalogue()  # not before an admin approves it

        # an admin cannot approve a type she drafted herself
        pension = retirement_type()
        pension["example"] = {**pension["example"], "type": "pension.started"}
        status, body = await put_type(admin, admin_csrf, console, pension, name="pension.started")
        assert (status, body["status"]) == (200, "submitted")
        own = await admin.post(
            f"{console['url']}{TYPES}/pension.started/approve", headers=admin_csrf
        )
        assert own.status == 403

        approved = await admin.post(
            f"{console['url']}{TYPES}/{RETIREMENT}/approve", headers=admin_csrf
        )
        assert approved.status == 200, await approved.text()
        assert (await approved.json())["version"] == 1

        listing = (await (await author.get(f"{console['url']}{TYPES}")).json())["event_types"]
        [entry] = [t for t in listing if t["name"] == RETIREMENT]
        assert entry["shipped"] is False and entry["subject"] == "person"
        assert {f["field"] for f in entry["fields"]} == {"data.approval_no", "data.retire_on",
                                                        "data.pension_scheme"}  # fmt: skip
        assert {t["name"] for t in listing} >= {"graduate.reception.approved", "pension.started"}

        assert validate_event(retirement_event("E-RT1", "P-1")).type == RETIREMENT
        with pytest.raises(EventRejected, match="pension_scheme"):
            validate_event(retirement_event("E-RT2", "P-1", pension="商业保险"))

        # a rule on the new type is checked clean (before the approval it names an unknown type)
        rule = {"name": "退休审批通过 → 养老金与医保下一步", "on": RETIREMENT, "category": "reminder",
                "districts": ["440308"], "recipients": {"subject": True},
                "channels": {"sms": "retirement_next_steps"}}  # fmt: skip
        templates = {"retirement_next_steps/zh-CN/sms.txt":
                     "{{ recipient.name }}您好：退休审批已通过（{{ data.approval_no }}），请办理养老金领取。"}  # fmt: skip
        drafted = await author.put(f"{console['url']}/api/rules/retirement-next-steps/draft",
                                   headers=author_csrf, json={"rule": rule, "templates": templates})  # fmt: skip
        assert drafted.status == 200
        assert (await drafted.json())["errors"] == []

        detail = await (await author.get(f"{console['url']}{TYPES}/{RETIREMENT}")).json()
        assert detail["history"][0]["author"] == "yt-author"
        assert detail["history"][0]["approved_by"] == "admin"

        steps = [(e.who, e.action) for e in await console["svc"].audit.read()]
        assert ("yt-author", "event-type-draft") in steps and (
            "admin",
            "event-type-approve",
        ) in steps
    finally:
        await author.close()
        await admin.close()


def nested(depth):
    node: dict = {}
    for _ in range(depth):
        node = {"not": node}
    return node


HOSTILE = [
    ("name", "graduate.reception.approved", {}),  # a shipped type is not replaced
    (
        "data.properties.x.$ref",
        RETIREMENT,
        {
            "data": {
                "type": "object",
                "properties": {"x": {"$ref": "http://169.254.169.254/latest"}},
            }
        },
    ),
    ("body", RETIREMENT, {"data": {"type": "object", "properties": {"x": nested(40)}}}),
    ("data", RETIREMENT, {"data": {"type": "object", "description": "长" * 12_000}}),  # 36 KB
    ("too large", RETIREMENT, {"data": {"type": "object", "description": "长" * 25_000}}),
    (
        "data.properties.x.pattern",
        RETIREMENT,
        {"data": {"type": "object", "properties": {"x": {"type": "string", "pattern": "a" * 400}}}},
    ),
    ("data", RETIREMENT, {"data": "not a schema"}),
    ("subject", RETIREMENT, {"subject": "dog"}),
]


@pytest.mark.parametrize(("field", "name", "change"), HOSTILE)
async def test_a_hostile_type_is_refused_by_field(console, field, name, change):
    author, csrf = await sign_in(console, "yt-author")
    try:
        status, body = await put_type(author, csrf, console, {**retirement_type(), **change}, name)
        if field == "name":
            assert status == 400 and "shipped" in body["error"]
        elif field == "body":  # refused before it is parsed
            assert status == 400 and "nested 44 deep" in body["error"]
        elif field == "too large":  # JSON, as every other refusal
            assert status == 413 and "64 KB" in body["error"]
        else:
            assert status == 200 and body["status"] == "draft", body
            assert body["errors"][0]["field"] == field, body
    finally:
        await author.close()


async def test_a_backtracking_pattern_is_checked_in_bounded_time(console):
    author, author_csrf = await sign_in(console, "yt-author")
    admin, admin_csrf = await sign_in(console, "admin")
    try:
        doc = retirement_type()
        doc["data"]["properties"]["approval_no"] = {"type": "string", "pattern": "^(a+)+$"}
        doc["example"] = {
            **doc["example"],
            "data": {**doc["example"]["data"], "approval_no": "aaa"},
        }
        assert (await put_type(author, author_csrf, console, doc))[1]["errors"] == []
        assert (await admin.post(f"{console['url']}{TYPES}/{RETIREMENT}/approve",
                                 headers=admin_csrf)).status == 200  # fmt: skip
        await (await author.get(f"{console['url']}{TYPES}")).json()  # installed in this process
        evil = retirement_event("E-RT3", "P-1")
        evil["data"]["approval_no"] = "a" * 60 + "!"  # Python's re would take ~2^60 steps
        with pytest.raises(EventRejected, match="approval_no"):  # returns: no backtracking
            validate_event(evil)
    finally:
        await author.close()
        await admin.close()


async def test_an_approver_or_author_cannot_approve_a_type_and_a_rejection_needs_a_reason(console):
    author, author_csrf = await sign_in(console, "yt-author")
    admin, admin_csrf = await sign_in(console, "admin")
    try:
        await put_type(author, author_csrf, console, retirement_type())
        no_reason = await admin.post(f"{console['url']}{TYPES}/{RETIREMENT}/reject",
                                     headers=admin_csrf, json={})  # fmt: skip
        assert no_reason.status == 400
        rejected = await admin.post(f"{console['url']}{TYPES}/{RETIREMENT}/reject",
                                    headers=admin_csrf, json={"reason": "请补充字段说明"})  # fmt: skip
        assert rejected.status == 200 and (await rejected.json())["status"] == "rejected"
        again = await admin.post(
            f"{console['url']}{TYPES}/{RETIREMENT}/approve", headers=admin_csrf
        )
        assert again.status == 409  # nothing waits now
        assert RETIREMENT not in catalogue()
    finally:
        await author.close()
        await admin.close()


async def test_a_description_written_to_break_out_of_the_page_stays_text(console):
    """A type's description and fields end up in the editor's embedded catalogue and the types
    page: neither may become markup or script."""
    author, author_csrf = await sign_in(console, "yt-author")
    admin, admin_csrf = await sign_in(console, "admin")
    try:
        doc = retirement_type()
        doc["description"] = '</script><script>alert("x")</script><img src=x onerror=alert(1)>'
        doc["data"]["properties"]["approval_no"]["description"] = "</script><b>bold</b>"
        assert (await put_type(author, author_csrf, console, doc))[1]["errors"] == []
        assert (await admin.post(f"{console['url']}{TYPES}/{RETIREMENT}/approve",
                                 headers=admin_csrf)).status == 200  # fmt: skip
        for path in ("/event-types", "/rules/retirement-next-steps"):
            page = await (await author.get(console["url"] + path)).text()
            assert "<script>alert" not in page and "<img src=x" not in page, path
            assert "<b>bold</b>" not in page, path
    finally:
        await author.close()
        await admin.close()
