"""A journey's schedule: when each step is due, which comes next, the ids its steps use."""

from datetime import datetime
from zoneinfo import ZoneInfo

from app.core.settings import Settings
from app.intake.events import validate_event
from app.planning.blast import BlastGuard, BlastPolicy
from app.planning.journeys import (
    FollowUp,
    Step,
    following,
    journey_id,
    next_due,
    parse_duration,
    step_event_id,
)
from app.planning.planner import Planner
from app.planning.rules import load_rules
from app.profiles.store import ProfileStore
from app.profiles.validate import parse_profile
from app.state import DeliveryState
from tests.helpers import ON_BOTH_REDIS, graduate_event, person
from wiring.runtime import make_renderer

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI).timestamp()


def test_durations():
    assert [parse_duration(v) for v in ("45s", "30m", "12h", "3d", " 2d ", 90)] == [
        45, 1800, 43200, 259200, 172800, 90]  # fmt: skip
    assert [parse_duration(v) for v in ("0s", "3w", "-1d", "", None, True, 0, "1.5d")] == [None] * 8


def test_a_step_at_a_time_of_day_waits_for_the_next_one_in_the_zone():
    step = Step(after_seconds=86400, at=(10, 0))
    assert next_due(at("2026-07-01T09:00:00"), step, SHANGHAI) == at("2026-07-02T10:00:00")
    assert next_due(at("2026-07-01T11:00:00"), step, SHANGHAI) == at("2026-07-03T10:00:00")
    assert next_due(at("2026-07-01T10:00:00"), step, SHANGHAI) == at("2026-07-02T10:00:00")
    assert next_due(at("2026-07-01T23:59:00"), Step(after_seconds=60), SHANGHAI) == at(
        "2026-07-02T00:00:00"
    )


def test_rounds_then_steps_then_the_end():
    follow_up = FollowUp(steps=(Step(60, repeat=2), Step(60)))
    assert following(follow_up, 0, 1) == (0, 2)
    assert following(follow_up, 0, 2) == (1, 1)
    assert following(follow_up, 1, 1) is None


def test_ids_are_the_same_every_time_and_differ_between_steps():
    assert journey_id("r", "E1", "P1") == journey_id("r", "E1", "P1")
    assert len({journey_id("r", "E1", "P1"), journey_id("r", "E2", "P1"), journey_id("s", "E1", "P1"),
                journey_id("r", "E1", "P2")}) == 4  # fmt: skip
    assert (
        len({step_event_id("E1", 0, 1), step_event_id("E1", 0, 2), step_event_id("E1", 1, 1)}) == 3
    )


@ON_BOTH_REDIS
async def test_a_completion_in_the_same_batch_as_the_start_ends_the_journey(redis_client, prefix):
    settings = Settings()
    renderer = make_renderer(settings)
    store = ProfileStore(redis_client, prefix)
    planner = Planner(load_rules(settings.rules_dir, renderer), store, renderer,
                      guard=BlastGuard(redis_client, prefix, BlastPolicy(3, 1000, 3, 1000)),
                      state=DeliveryState(redis_client, prefix))  # fmt: skip
    await store.upsert(parse_profile(person("P-1", mobile="13800000001")))
    done = validate_event(graduate_event("E-GR", "P-1") | {"id": "E-HK", "type": "hukou.migration.completed",
                                                           "data": {"approval_no": "A-1"}})  # fmt: skip
    started = (await planner.plan_event(validate_event(graduate_event("E-GR", "P-1")))).plan
    completing = (await planner.plan_event(done)).plan
    assert [j.subject for j in started.journeys] == ["P-1"] and completing.completes
    await planner.record([started, completing])  # one batch, as the agent records it
    [journey] = [j.journey for j in started.journeys]
    record = await planner.journeys.journey(journey)
    assert (record["status"], record["completed_by"]) == ("completed", "E-HK")
    assert await planner.journeys.queued() == 0
    assert await planner.journeys.waiting("hukou.migration.completed", "P-1") == []
    # the graduate event again (a redelivery) starts nothing new and does not reopen it
    await planner.record(
        [(await planner.plan_event(validate_event(graduate_event("E-GR", "P-1")))).plan]
    )
    assert (await planner.journeys.journey(journey))["status"] == "completed"
