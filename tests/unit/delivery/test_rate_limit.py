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
