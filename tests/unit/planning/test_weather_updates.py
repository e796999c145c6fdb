"""Updates, cancels and shapes of weather warnings, planned against real Redis."""

from zoneinfo import ZoneInfo

import pytest_asyncio

from app.core.settings import Settings
from app.delivery.deliverer import Deliverer, DeliveryPolicy
from app.delivery.gateways.outbox import OutboxSmsGateway
from app.delivery.preferences import Preferences
from app.intake.events import validate_event
from app.planning.planner import Planner
from app.planning.rules import load_rules
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from tests.helpers import TEST_SECRET, acting_planner, contact, enterprise, weather_event
from wiring.runtime import make_renderer

ROOT = "W-ROOT"


@pytest_asyncio.fixture
async def planner(redis_client, prefix):
    settings = Settings()
    renderer = make_renderer(settings)
    planner = Planner(
        load_rules(settings.rules_dir, renderer), ProfileStore(redis_client, prefix), renderer
    )
    for doc in (
        enterprise("E-A", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000001")]),
        enterprise("E-B", permits=("outdoor_advertising",), contacts=[contact("legal_representative", "13900000002")]),
        enterprise("E-LUOHU", district="440303", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000003")]),
    ):  # fmt: skip
        await planner.store.upsert(parse_profile(doc))
    return planner


def warning(event_id, *, kind="issued", areas=("440308",), level="yellow", references=()):
    doc = weather_event(event_id, list(areas), level=level) | {"type": f"weather.warning.{kind}"}
    doc["data"] = dict(doc["data"], warning_id=event_id, references=list(references))
    return validate_event(doc)


async def plan_and_record(planner, event):
    """What the plan agent does: plan, then remember who was warned."""
    plan = await planner.plan(event)
    if event.type != "weather.warning.cancelled":
        warned = {
            (n.recipient, n.profile_id) for n in plan.notifications if n.category == "warning"
        }
        await planner.warned.record(
            plan.warning_root, event.data["warning_id"], event.data["level"], warned
        )
    return plan


def to(plan):
    return sorted(n.address for n in plan.notifications)


async def test_an_update_at_the_same_level_reaches_only_those_newly_in_the_area(planner):
    first = await plan_and_record(planner, warning(ROOT))
    assert to(first) == ["+8613900000001", "+8613900000002"]
    wider = await plan_and_record(
        planner, warning("W-UPD1", kind="updated", areas=("440308", "440303"), references=[ROOT])
    )
    assert to(wider) == ["+8613900000003"]
    assert wider.warning_root == ROOT


async def test_an_update_that_raises_the_level_reaches_everyone_again(planner):
    await plan_and_record(planner, warning(ROOT))
    await plan_and_record(planner, warning("W-UPD1", kind="updated", references=[ROOT]))
    raised = await plan_and_record(
        planner, warning("W-UPD2", kind="updated", level="orange", references=["W-UPD1"])
    )
    assert to(raised) == ["+8613900000001", "+8613900000002"]
    assert raised.warning_root == ROOT  # found through the chain of updates


async def test_a_cancel_sends_an_all_clear_to_exactly_those_warned(planner):
    await plan_and_record(planner, warning(ROOT))
    await plan_and_record(
        planner, warning("W-UPD1", kind="updated", areas=("440308", "440303"), references=[ROOT])
    )
    cancel = await planner.plan(warning("W-CANCEL", kind="cancelled", references=["W-UPD1"]))
    assert {n.rule_id for n in cancel.notifications} == {"weather-outdoor-ads-all-clear"}
    assert to(cancel) == ["+8613900000001", "+8613900000002", "+8613900000003"]
    assert {n.category for n in cancel.notifications} == {"notice"}
    assert all("已解除" in n.content["text"] for n in cancel.notifications)


async def test_a_warnings_messages_carry_its_expiry_and_the_all_clear_does_not(planner):
    """What lets delivery refuse to send a warning late (``Deliverer``): its expires_at."""
    issued = warning(ROOT)
    plan = await plan_and_record(planner, issued)
    assert plan.notifications
    assert {n.expires_at for n in plan.notifications} == {issued.data["expires_at"]}
    cancel = await planner.plan(warning("W-CANCEL", kind="cancelled", references=[ROOT]))
    assert cancel.notifications and {n.expires_at for n in cancel.notifications} == {None}


async def test_a_recorded_cancel_stops_the_warnings_messages_not_yet_sent(redis_client, prefix,
                                                                         tmp_path):  # fmt: skip
    """Planned and recorded as a worker does: the warning's messages carry its chain's root (an
    update's is the first warning's); once the cancel is recorded, what of the chain is not yet
    sent is suppressed, and the all-clear (a notice) goes."""
    planner = acting_planner(redis_client, prefix, Settings().rules_dir)
    for doc in (
        enterprise("E-A", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000001")]),
        enterprise("E-B", permits=("outdoor_advertising",), contacts=[contact("safety_officer", "13900000002")]),
    ):  # fmt: skip
        await planner.store.upsert(parse_profile(doc))
    deliverer = Deliverer(planner.state, Preferences(redis_client, prefix, TEST_SECRET),
                          planner.store, {"sms": OutboxSmsGateway(tmp_path / "sms.jsonl")},
                          DeliveryPolicy(ZoneInfo("Asia/Shanghai"), None))  # fmt: skip

    async def act(event):
        outcome = await planner.plan_event(event)
        await planner.record([outcome.plan])
        return outcome.plan

    issued = await act(warning(ROOT))
    raised = await act(warning("W-UPD1", kind="updated", level="orange", references=[ROOT]))
    assert {n.warning_root for n in issued.notifications + raised.notifications} == {ROOT}
    first, rest = issued.notifications[0], issued.notifications[1:] + raised.notifications
    assert [o[-1].status for o in await deliverer.deliver_many([first])] == ["sent"]
    cancel = await act(warning("W-CANCEL", kind="cancelled", references=["W-UPD1"]))
    assert await planner.state.cancelled_by(ROOT) == "W-CANCEL"
    outcomes = await deliverer.deliver_many(rest + cancel.notifications)
    assert [o[-1].status for o in outcomes[: len(rest)]] == ["suppressed"] * len(rest)
    assert all("cancelled (event W-CANCEL)" in (o[-1].error or "") for o in outcomes[: len(rest)])
    assert {o[-1].status for o in outcomes[len(rest) :]} == {"sent"}  # the all-clear
    assert {n.warning_root for n in cancel.notifications} == {None}


async def test_a_cancel_of_an_unknown_warning_sends_nothing(planner):
    assert (
        await planner.plan(warning("W-CANCEL-X", kind="cancelled", references=["NEVER-ISSUED"]))
    ).notifications == []


async def test_polygon_and_circle_warnings_select_located_enterprises_inside(planner):
    inside = enterprise(
        "E-IN",
        district="440303",
        permits=("outdoor_advertising",),
        contacts=[contact("safety_officer", "13900000011")],
    ) | {"location": {"lat": 22.58, "lon": 114.25}}
    outside = enterprise(
        "E-OUT",
        district="440303",
        permits=("outdoor_advertising",),
        contacts=[contact("safety_officer", "13900000012")],
    ) | {"location": {"lat": 22.70, "lon": 114.25}}
    no_permit = enterprise(
        "E-NP", district="440303", contacts=[contact("safety_officer", "13900000013")]
    ) | {"location": {"lat": 22.58, "lon": 114.26}}
    circled = enterprise(
        "E-CIRCLE",
        district="440303",
        permits=("outdoor_advertising",),
        contacts=[contact("safety_officer", "13900000014")],
    ) | {"location": {"lat": 22.80, "lon": 114.50}}
    for doc in (inside, outside, no_permit, circled):
        await planner.store.upsert(parse_profile(doc))
    doc = weather_event("W-POLY", ["440308"])
    doc["data"] |= {"areas": [], "polygons": [[[22.55, 114.22], [22.62, 114.22], [22.62, 114.30], [22.55, 114.30], [22.55, 114.22]]],
                    "circles": [{"lat": 22.80, "lon": 114.51, "radius_km": 3}]}  # fmt: skip
    plan = await planner.plan(validate_event(doc))
    assert to(plan) == ["+8613900000011", "+8613900000014"]


async def test_chunks_of_an_update_and_a_cancel_plan_as_the_whole_event_does(planner):
    """A chunk reads only its own recipients' entries of the warned registry; it must decide as
    the whole event would, with other entries (many of them) in the registry."""
    from app.planning.fanout import chunk_commands

    await planner.warned.record(ROOT, ROOT, "yellow",
                                [(f"E-OTHER{i}/safety_officer/0", f"E-OTHER{i}") for i in range(2000)])  # fmt: skip
    await plan_and_record(planner, warning(ROOT))

    async def by_chunks(event, rule_id):
        found = []
        for _, value in chunk_commands(event, rule_id, ["E-A", "E-B", "E-LUOHU", "E-NONE"], 2):
            command, event_, rule = planner.read_chunk(value)
            found += (await planner.plan_chunk_command(command, event_, rule)).notifications
        return sorted(n.address for n in found)

    wider = warning("W-UPD1", kind="updated", areas=("440308", "440303"), references=[ROOT])
    assert await by_chunks(wider, "weather-outdoor-ads-warning") == ["+8613900000003"]
    raised = warning("W-UPD2", kind="updated", level="orange", areas=("440308", "440303"),
                     references=[ROOT])  # fmt: skip
    assert await by_chunks(raised, "weather-outdoor-ads-warning") == [
        "+8613900000001",
        "+8613900000002",
        "+8613900000003",
    ]
    cancel = warning("W-CANCEL", kind="cancelled", references=[ROOT])
    assert await by_chunks(cancel, "weather-outdoor-ads-all-clear") == [
        "+8613900000001",
        "+8613900000002",
    ]
