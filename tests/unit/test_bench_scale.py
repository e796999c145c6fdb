"""The city-wide sizing's simulation: bound by the workers' CPU or by the gateway, as a direct
computation says, and the fewest workers that keep the gateway busy really are the fewest."""

import pytest

from bench.scale import simulate, summary, workers_to_saturate


def test_without_a_gateway_cap_the_workers_cpu_sets_the_pace():
    handed = simulate(1_000_000, 4, cpu_us=100, core_share=1.0, gateway=1e12)
    first, last, done = summary(handed, 1e12, horizon=10)
    assert last == pytest.approx(1_000_000 / (4 * 10_000), rel=0.01)
    assert first == pytest.approx(500 / 10_000, rel=0.01)
    assert done == pytest.approx(10 * 40_000, rel=0.01)  # 10 s of the 25 s needed


def test_the_gateway_caps_and_the_fewest_workers_keep_it_busy():
    workers = workers_to_saturate(2_000_000, cpu_us=300, core_share=0.8, gateway=8_000)
    _, last, done = summary(simulate(2_000_000, workers, 300, 0.8, 8_000), 8_000, horizon=60)
    assert last <= 1.05 * 2_000_000 / 8_000
    assert done == pytest.approx(60 * 8_000, rel=0.05)
    _, slower, _ = summary(simulate(2_000_000, workers - 1, 300, 0.8, 8_000), 8_000, 60)
    assert slower > 1.05 * 2_000_000 / 8_000
