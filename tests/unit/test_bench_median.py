"""`bench.pipeline`'s saturated figure: the median of its repeated runs, each run kept beside it."""

from __future__ import annotations

import pytest

from bench.pipeline import median_run


def run(per_s: int, cpu: int, rss: float) -> dict[str, float]:
    return {"workers": 1, "events_per_s": per_s, "worker_cpu_us_per_event": cpu,
            "redis_cpu_us_per_event": cpu // 3, "peak_rss_mb": rss}  # fmt: skip


def test_each_figure_is_the_median_of_the_runs_and_the_runs_are_kept_in_order() -> None:
    runs = [run(4_100, 190, 80.5), run(5_600, 140, 92.0), run(4_900, 160, 85.0)]
    out = median_run(runs)
    assert out["workers"] == 1
    assert out["events_per_s"] == 4_900  # not the best run, not the first
    assert out["worker_cpu_us_per_event"] == 160
    assert out["redis_cpu_us_per_event"] == 53
    assert out["peak_rss_mb"] == 92.0  # the largest: memory is a ceiling, not a typical figure
    assert out["runs"] == runs


def test_an_even_number_of_runs_takes_the_middle_two_and_no_run_is_refused() -> None:
    assert median_run([run(4_000, 150, 1), run(5_000, 170, 1)])["events_per_s"] == 4_500
    with pytest.raises(ValueError, match="no run"):
        median_run([])
