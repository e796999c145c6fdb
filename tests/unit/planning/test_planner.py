import pytest_asyncio

from app.core.settings import Settings
from app.intake.events import validate_event
from app.planning.planner import Planner
from app.planning.rules import load_rules
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from tests.helpers import business_event, contact, enterprise, graduate_event, person, weather_event
from wiring.runtime import make_renderer


@pytest_asyncio.fixture
async def planner(redis_client, prefix):
    settings = Settings()
    renderer = make_renderer(settings)
    store = ProfileStore(redis_client, prefix)
    return Planner(load_rules(settings.rules_dir, renderer), store, renderer)


async def load(planner, *docs):
    for doc in docs:
        await planner.store.upsert(parse_profile(doc))


def sent_to(plan):
    return sorted((n.channel, n.address) for n in plan.notifications)


async def test_weather_warning_skips_enterprises_without_permit_or_outside_the_area(planner):
    await load(
        planner,
        enterprise("E-IN", permits=("outdoor_advertising",), contacts=[
            contact("safety_officer", "13900000001"), contact("legal_representative", "13900000002")]),
        enterprise("E-FALLBACK", permits=("outdoor_advertising",), contacts=[contact("legal_representative", "13900000003")]),
        enterprise("E-NOPERMIT", contacts=[contact("safety_officer", "13900000004")]),
        enterprise("E-ELSEWHERE", district="440303", permits=("outdoor_advertising",),
                   contacts=[contact("safety_officer", "13900000005")]),
        person("P-1", mobile="13900000006"),
    )  # fmt: skip
    plan = await planner.plan(validate_event(weather_event("W1", ["440308"])))
    assert sent_to(plan) == [("sms", "+8613900000001"), ("sms", "+8613900000003")]
    assert {n.category for n in plan.notifications} == {"warning"}
    assert {n.role for n in plan.notifications} == {"safety_officer", "legal_representative"}


async def test_a_city_wide_warning_covers_every_district_of_the_city(planner):
    await load(
        planner,
        enterprise("E-1", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000001")]),
        enterprise("E-2", district="440303", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000002")]),
        enterprise("E-3", district="440103", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000003")]),
    )  # fmt: skip
    plan = await planner.plan(validate_event(weather_event("W2", ["440300"])))
    assert sent_to(plan) == [("sms", "+8613900000001"), ("sms", "+8613900000002")]


async def test_graduate_gets_sms_and_email_only_where_an_email_is_on_file(planner):
    await load(
        planner,
        person("P-1", mobile="13800138000", email="p1@example.cn"),
        person("P-2", mobile="13800138001"),
    )
    with_email = await planner.plan(validate_event(graduate_event("G1", "P-1")))
    without = await planner.plan(validate_event(graduate_event("G2", "P-2")))
    assert sent_to(with_email) == [("email", "p1@example.cn"), ("sms", "+8613800138000")]
    assert sent_to(without) == [("sms", "+8613800138001")]
    sms = next(n for n in with_email.notifications if n.channel == "sms")
    assert sms.content["text"].startswith("【盐田区政务服务】")
    assert "户籍迁入" in sms.content["text"] and sms.content["segments"] == 2


async def test_business_registration_reaches_every_contact(planner):
    await load(planner, enterprise("E-1", contacts=[
        contact("legal_representative", "13700137000", "boss@example.cn"), contact("finance", "15000150000")]))  # fmt: skip
    plan = await planner.plan(validate_event(business_event("B1", "E-1")))
    assert sent_to(plan) == [
        ("email", "boss@example.cn"),
        ("sms", "+8613700137000"),
        ("sms", "+8615000150000"),
    ]


async def test_event_for_an_unknown_subject_plans_nothing_and_says_why(planner):
    plan = await planner.plan(validate_event(graduate_event("G3", "P-NOBODY")))
    assert plan.notifications == []
    assert plan.skipped == [("graduate-hukou-transfer", "no profile for subject P-NOBODY")]


async def test_the_same_number_twice_in_one_enterprise_gets_one_message(planner):
    await load(
        planner,
        enterprise("E-1", contacts=[contact("a", "13700137000"), contact("b", "13700137000")]),
    )
    plan = await planner.plan(validate_event(business_event("B2", "E-1")))
    assert sent_to(plan) == [("sms", "+8613700137000")]


async def test_notification_ids_are_deterministic(planner):
    await load(planner, person("P-1", mobile="13800138000"))
    first = await planner.plan(validate_event(graduate_event("G4", "P-1")))
    second = await planner.plan(validate_event(graduate_event("G4", "P-1")))
    other = await planner.plan(validate_event(graduate_event("G5", "P-1")))
    assert [n.id for n in first.notifications] == [n.id for n in second.notifications]
    assert first.notifications[0].id != other.notifications[0].id
