"""The message search's index, written by the deliverer for a whole batch in one script call:
each notification under the keyed hashes of its address and its profile, the window trimmed."""

import time

from app.delivery.preferences import WHO_TTL_SECONDS, Preferences


async def test_a_batch_is_indexed_by_address_and_profile_and_old_entries_leave(
    redis_client, prefix
):
    prefs = Preferences(redis_client, prefix, "a-test-secret-of-enough-length-0123456789")
    now = time.time()
    async with redis_client.pipeline(transaction=False) as pipe:
        await prefs.queue_index(pipe, [("+8613800000001", "P-1", "440308|old")],
                                now - WHO_TTL_SECONDS - 10)  # fmt: skip
        await prefs.queue_index(pipe, [("+8613800000001", "P-1", "440308|n1"),
                                       ("+8613800000002", "P-2", "440303|n2"),
                                       ("p1@example.cn", "P-1", "440308|n3")], now)  # fmt: skip
        await prefs.queue_index(pipe, [("+8613800000001", "P-1", "440308|n1")], now + 5)
        await pipe.execute()
    by_number = await redis_client.zrange(prefs.who_key("+8613800000001"), 0, -1, withscores=True)
    assert by_number == [(b"440308|n1", now)]  # the old one trimmed; the repeat kept its time
    profile = await redis_client.zrange(prefs.who_key("profile:P-1"), 0, -1)
    assert profile == [b"440308|n1", b"440308|n3"]
    assert await redis_client.zrange(prefs.who_key("profile:P-2"), 0, -1) == [b"440303|n2"]
    assert 0 < await redis_client.ttl(prefs.who_key("p1@example.cn")) <= WHO_TTL_SECONDS
    keys = [k.decode() async for k in redis_client.scan_iter(f"{prefix}who:*")]
    assert len(keys) == 5 and not any("138" in k or "P-1" in k or "@" in k for k in keys)
