"""The hotline's "why didn't she get the warning?": one profile walked through a broadcast's rules
the way planning walks the audience, against real Redis, each reason checked against a plan."""

import time

import pytest_asyncio

from app.core.settings import Settings
from app.intake.events import validate_event
from app.planning.planner import Planner
from app.planning.rules import load_rules
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from tests.helpers import contact, enterprise, person, weather_event
from wiring.runtime import make_renderer

AD = ("outdoor_advertising",)
SQUARE = [[22.50, 114.20], [22.50, 114.30], [22.60, 114.30], [22.60, 114.20], [22.50, 114.20]]


@pytest_asyncio.fixture
async def planner(redis_client, prefix):
    settings = Settings()
    renderer = make_renderer(settings)
    store = ProfileStore(redis_client, prefix)
    return Planner(load_rules(settings.rules_dir, renderer), store, renderer)


async def why(planner, event, doc, rule="weather-outdoor-ads-warning"):
    """Why ``rule`` reached the profile or not (a gale also concerns the construction sites' rule)."""
    profile = parse_profile(doc)
    await planner.store.upsert(profile)
    [finding] = [f for f in await planner.explain(event, profile) if f.rule_id == rule]
    return finding


async def test_each_reason_a_broadcast_missed_a_profile_agrees_with_the_plan(planner):
    event = validate_event(weather_event("W-X1", ["440308"]))
    officer = [contact("safety_officer", "13900000001")]
    reached = await why(planner, event, enterprise("E-IN", permits=AD, contacts=officer))
    elsewhere = await why(planner, event, enterprise("E-LH", district="440303", permits=AD,
                                                     contacts=officer))  # fmt: skip
    no_permit = await why(planner, event, enterprise("E-NP", contacts=officer))
    nobody = await why(planner, event, enterprise("E-NC", permits=AD,
                                                  contacts=[contact("accountant", "13900000002")]))  # fmt: skip
    a_person = await why(planner, event, person("P-1", mobile="13900000003"))

    assert reached.reached and reached.rule_id == "weather-outdoor-ads-warning"
    assert reached.reason == "in the audience: sms to +86139****0001"
    plan = await planner.plan(event)
    assert [n.id for n in plan.notifications] == [n for n, _ in reached.notifications]

    assert not elsewhere.reached
    assert elsewhere.reason == "not in the areas 440308: the profile is in district 440303"
    assert (
        no_permit.reason == "the rule reaches profiles with permit outdoor_advertising; it has none"
    )
    assert nobody.reason == (
        "no contact with the role safety_officer (or legal_representative) on file"
    )
    assert a_person.reason == "the rule reaches profiles with kind enterprise; it has person"


async def test_shapes_a_location_inside_reaches_and_one_outside_or_missing_is_named(planner):
    doc = weather_event("W-X2", []) | {}
    doc["data"] = dict(doc["data"], areas=[], polygons=[SQUARE])
    event = validate_event(doc)
    officer = [contact("safety_officer", "13900000001")]
    inside = enterprise("E-IN", district="440303", permits=AD, contacts=officer)
    inside["location"] = {"lat": 22.55, "lon": 114.25}
    outside = enterprise("E-OUT", permits=AD, contacts=officer)
    outside["location"] = {"lat": 22.70, "lon": 114.25}
    unplaced = enterprise("E-NOWHERE", permits=AD, contacts=officer)

    assert (await why(planner, event, inside)).reached
    assert (await why(planner, event, outside)).reason == (
        "not in the areas (none) or the warning's shapes: the profile is in district 440308"
    )
    assert (await why(planner, event, unplaced)).reason == (
        "not in the areas (none) or the warning's shapes (the profile has no location on file): "
        "the profile is in district 440308"
    )
    plan = await planner.plan(event)
    assert {n.profile_id for n in plan.notifications} == {"E-IN"}


async def test_an_update_explains_already_warned_and_the_all_clear_those_never_warned(planner):
    officer = [contact("safety_officer", "13900000001")]
    issued = validate_event(weather_event("W-X3", ["440308"]))
    warned_one = enterprise("E-W", permits=AD, contacts=officer)
    await planner.store.upsert(parse_profile(warned_one))
    plan = await planner.plan(issued)
    await planner.warned.record("W-W-X3", "W-W-X3", "yellow",
                                {(n.recipient, n.profile_id) for n in plan.notifications})  # fmt: skip
    update = weather_event("W-X4", ["440308"]) | {"type": "weather.warning.updated"}
    update["data"] = dict(update["data"], warning_id="W-W-X4", references=["W-W-X3"])
    finding = await why(planner, validate_event(update), warned_one)
    assert not finding.reached
    assert finding.reason == "already warned under this warning at this level or higher"
    raised = dict(update, data=dict(update["data"], level="red"))
    assert (await why(planner, validate_event(raised), warned_one)).reached

    cancel = weather_event("W-X5", ["440308"]) | {"type": "weather.warning.cancelled"}
    cancel["data"] = dict(cancel["data"], warning_id="W-W-X5", references=["W-W-X3"])
    never = enterprise("E-NEW", permits=AD, contacts=[contact("safety_officer", "13900000009")])
    [clear] = [f for f in await planner.explain(validate_event(cancel), parse_profile(never))]
    assert clear.reason == "not warned earlier under this warning, so not told that it ended"
    [told] = await planner.explain(validate_event(cancel), parse_profile(warned_one))
    assert told.reached


async def test_broadcasts_are_remembered_once_newest_first_within_the_window(planner):
    now = time.time()
    rules = {"weather-outdoor-ads-warning": 2}
    first, second, old = (validate_event(weather_event(i, ["440308"]))
                          for i in ("W-B1", "W-B2", "W-B0"))  # fmt: skip
    await planner.broadcasts.remember(old, rules, now=now - 31 * 86400)
    await planner.broadcasts.remember(first, rules, now=now - 100)
    await planner.broadcasts.remember(second, rules, now=now - 50)
    await planner.broadcasts.remember(first, rules, now=now)  # a redelivery keeps its place
    recent = await planner.broadcasts.recent()
    assert [(b.event["id"], b.rules) for b in recent] == [("W-B2", rules), ("W-B1", rules)]
    assert await planner.broadcasts.recent(limit=1) == recent[:1]
