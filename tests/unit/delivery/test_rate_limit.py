from app.delivery.rate_limit import RateLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


async def test_the_bucket_paces_to_the_rate_without_dropping(redis_client, prefix):
    time = FakeTime()
    limiter = RateLimiter(redis_client, prefix, {"sms": 50}, clock=time.clock, sleep=time.sleep)
    for _ in range(150):  # a burst of three seconds' worth
        await limiter.acquire("sms")
    # the first 50 come from the full bucket, the other 100 at 50 a second
    assert 1.9 < time.slept < 2.1


async def test_every_worker_draws_from_the_same_bucket(redis_client, prefix):
    time = FakeTime()
    one = RateLimiter(redis_client, prefix, {"email": 10}, clock=time.clock, sleep=time.sleep)
    two = RateLimiter(redis_client, prefix, {"email": 10}, clock=time.clock, sleep=time.sleep)
    for _ in range(10):
        await one.acquire("email")
    assert await two.acquire("email") > 0  # the bucket the first emptied is the second's too


async def test_an_unlimited_channel_never_waits(redis_client, prefix):
    limiter = RateLimiter(redis_client, prefix, {"sms": 0})
    assert [await limiter.acquire("sms") for _ in range(100)] == [0.0] * 100


async def test_a_batch_takes_its_tokens_in_one_round_trip_and_waits_as_one_at_a_time_would(
    redis_client, prefix
):
    batched, single = FakeTime(), FakeTime()
    one = RateLimiter(redis_client, prefix + "a:", {"sms": 50}, clock=batched.clock,
                      sleep=batched.sleep)  # fmt: skip
    two = RateLimiter(redis_client, prefix + "b:", {"sms": 50}, clock=single.clock,
                      sleep=single.sleep)  # fmt: skip
    await one.acquire("sms", 150)  # more than the bucket holds: what is there, then the rest
    for _ in range(150):
        await two.acquire("sms")
    assert 1.9 < batched.slept < 2.1 and 1.9 < single.slept < 2.1
    assert await one.take_now("sms", 1) == 0 and await two.take_now("sms", 1) == 0


async def test_take_now_takes_what_the_bucket_holds_and_never_waits(redis_client, prefix):
    time = FakeTime()
    limiter = RateLimiter(redis_client, prefix, {"sms": 10}, clock=time.clock, sleep=time.sleep)
    assert await limiter.take_now("sms", 4) == 4
    assert await limiter.take_now("sms", 100) == 6  # the rest of the full bucket
    assert await limiter.take_now("sms", 1) == 0
    time.now += 0.35  # three and a half tokens later
    assert await limiter.take_now("sms", 100) == 3
    assert time.slept == 0
    assert await limiter.take_now("email", 7) == 7  # unlimited
    assert limiter.paced("sms") and not limiter.paced("email")
    assert await limiter.take_now("sms", 0) == 0


async def test_a_slow_rate_below_one_a_second_still_paces(redis_client, prefix):
    time = FakeTime()
    limiter = RateLimiter(redis_client, prefix, {"email": 0.5}, clock=time.clock, sleep=time.sleep)
    await limiter.acquire("email", 3)  # one from the bucket, then one every two seconds
    assert 3.9 < time.slept < 4.1
