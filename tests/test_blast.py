from app.blast import BlastGuard, BlastPolicy


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
        reason
        == "1000 recipients is 87× the median of 11.5 over the rule's last 4 runs (limit 10×)"
    )


async def test_over_the_ceiling_is_held_whatever_the_history(redis_client, prefix):
    assert (
        await guard(redis_client, prefix).reason_to_hold("r", 10_001)
        == "10001 recipients is over the ceiling of 10000"
    )


async def test_a_hold_is_listed_and_taken_once(redis_client, prefix):
    g = guard(redis_client, prefix)
    hold_id = await g.hold({"id": "E1", "type": "weather.warning.issued"}, "r", 900, "why")
    assert [(h["id"], h["audience"], h["reason"]) for h in await g.held()] == [
        (hold_id, 900, "why")
    ]
    assert (await g.take(hold_id))["rule_id"] == "r"
    assert await g.take(hold_id) is None and await g.held() == []
