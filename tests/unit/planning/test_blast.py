from app.planning.blast import BlastGuard, BlastPolicy


def guard(redis_client, prefix, **policy):
    return BlastGuard(
        redis_client,
        prefix,
        BlastPolicy(**({"factor": 10, "ceiling": 10_000, "min_runs": 3} | policy)),
    )


async def test_nothing_is_held_before_the_rule_has_a_history(redis_client, prefix):
    g = guard(redis_client, prefix)
    assert await g.reason_to_hold("r", 5_000) is None
    await g.record_run("r", 10)
    await g.record_run("r", 12)
    assert await g.reason_to_hold("r", 5_000) is None  # two runs: no median yet


async def test_far_above_the_median_is_held_with_the_reason(redis_client, prefix):
    g = guard(redis_client, prefix)
    for size in (10, 12, 11, 300):
        await g.record_run("r", size)
    assert await g.reason_to_hold("r", 115) is None  # 10× the median of 11.5
    reason = await g.reason_to_hold("r", 1_000)
    assert (
        reason == "1000 messages is 87× the median of 11.5 over the rule's last 4 runs (limit 10×)"
    )


async def test_over_the_ceiling_is_held_whatever_the_history(redis_client, prefix):
    assert (
        await guard(redis_client, prefix).reason_to_hold("r", 10_001)
        == "10001 messages is over the ceiling of 10000"
    )


async def test_a_hold_is_listed_and_taken_once(redis_client, prefix):
    g = guard(redis_client, prefix)
    hold_id = await g.hold({"id": "E1", "type": "weather.warning.issued"}, "r", 900, "why")
    assert [(h["id"], h["audience"], h["reason"]) for h in await g.held()] == [
        (hold_id, 900, "why")
    ]
    assert (await g.take(hold_id))["rule_id"] == "r"
    assert await g.take(hold_id) is None and await g.held() == []


async def test_a_new_rule_version_is_held_above_the_first_run_limit_until_a_run_is_released(
    redis_client, prefix
):
    g = guard(redis_client, prefix, first_run=100)
    assert await g.reason_to_hold("r", 100, version=1) is None
    reason = await g.reason_to_hold("r", 101, version=1)
    assert reason == ("101 messages is over 100 for version 1 of the rule, "
                      "whose first large run nobody has released yet")  # fmt: skip
    await g.approve("r", 1, by="token:ops")
    assert await g.reason_to_hold("r", 5_000, version=1) is None
    assert await g.reason_to_hold("r", 101, version=2) is not None  # a changed rule starts again


async def test_runs_that_reached_nobody_cannot_drag_the_median_down(redis_client, prefix):
    g = guard(redis_client, prefix)
    for size in (400, 420, 410):
        await g.record_run("r", size)
    for _ in range(20):  # e.g. alerts for an area where nobody holds the permit
        await g.record_run("r", 0)
    assert await g.reason_to_hold("r", 3_000) is None  # 7× the median of 410
