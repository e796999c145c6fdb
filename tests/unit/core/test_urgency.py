"""A worker's chores give way to warnings: app.core.urgency, on a clock of the test's own."""

from __future__ import annotations

import pytest

from app.core.urgency import Urgency


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self.on_sleep: list = []  # called once each, in order, at the next sleeps

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep.pop(0)()


async def test_a_chore_with_nothing_urgent_keeps_to_its_share_of_the_loop() -> None:
    clock = Clock()
    urgency = Urgency(share=0.25, clock=clock, sleep=clock.sleep)
    await urgency.pause(0.0)
    assert clock.slept == []  # nothing worked, nothing urgent: straight on
    await urgency.pause(0.2)
    assert clock.slept == [pytest.approx(0.6)]  # 0.2 s of 0.8 s: a quarter
    assert urgency.waited == 0


async def test_a_chore_waits_while_a_warning_is_worked_on_and_a_quiet_spell_after_it() -> None:
    clock = Clock()
    urgency = Urgency(quiet=1.0, share=1.0, poll=0.1, clock=clock, sleep=clock.sleep)
    with urgency.running():
        assert urgency.busy()
        # the warning ends after the chore has polled five times
        ending = urgency.running()
        ending.__enter__()
    clock.on_sleep = [lambda: None] * 4 + [lambda: ending.__exit__(None, None, None)]
    await urgency.pause(0.5)  # share 1: no rest of its own, only the wait
    assert not urgency.busy() and urgency.waited == 1
    waited = sum(clock.slept)
    assert waited == pytest.approx(0.5 + 1.0)  # five polls until the end, then the quiet second
    assert clock.now - urgency.ended >= urgency.quiet


async def test_the_mark_is_lifted_when_the_urgent_work_fails() -> None:
    clock = Clock()
    urgency = Urgency(quiet=0.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(RuntimeError), urgency.running():
        raise RuntimeError("a warning's batch failed")
    assert urgency.active == 0
    clock.now += 0.001
    assert not urgency.busy()


def test_a_share_outside_zero_to_one_is_refused() -> None:
    for share in (0.0, -1.0, 1.5):
        with pytest.raises(ValueError, match="share"):
            Urgency(share=share)
