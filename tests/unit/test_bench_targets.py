"""`make bench`'s closing table: each figure against its target, the ratio oriented so that 1.0
or more is met, and a missing figure shown as missing, not as met."""

from bench.targets import rows, table

PIPELINE = {
    "bare_faust_per_s": 20_000,
    "pipeline": [{"workers": 1, "events_per_s": 6_000}, {"workers": 2, "events_per_s": 9_000}],
    "offered": [{"workers": 1, "offered_per_s": 1000, "p99_ms": 100.0},
                {"workers": 2, "offered_per_s": 1000, "p99_ms": 10.0}],
}  # fmt: skip
FANOUT = {"profiles": 1_000_000, "matching": 100_000, "redis_bytes_per_profile": 250,
          "runs": [{"workers": 1, "first_s": 0.5, "last_s": 20.0, "per_second": 5_000}]}  # fmt: skip


def test_each_figure_is_set_against_its_target():
    found = {r.measure: r for r in rows(PIPELINE, FANOUT, {"lost": 0, "duplicated": 0})}
    assert (
        found["fan-out, 1 worker: last SMS handed over"].ratio,
        found["fan-out, 1 worker: last SMS handed over"].met,
    ) == (0.5, False)
    assert found["fan-out, 1 worker: first SMS"].ratio == 2.0
    assert found["subject events, saturated, 1 worker"].ratio == 1.2
    assert found["  as a share of bare Faust in the same run"].value == 30.0
    assert found["p99 at 1,000 events/s, 1 worker"].ratio == 0.5  # the one-worker run, not two
    assert found["Redis per profile, with its indexes"].met
    assert found["crash, kills mid-batch and mid-chunk: lost + dup."].met
    assert found["fan-out, 2 workers: recipients a second"].value is None
    assert not found["fan-out, 2 workers: recipients a second"].met


def test_a_lost_message_fails_and_a_missing_run_shows_as_missing():
    found = {r.measure: r for r in rows({}, {}, {"lost": 1, "duplicated": 0})}
    assert not found["crash, kills mid-batch and mid-chunk: lost + dup."].met
    assert all(r.value is None for m, r in found.items() if not m.startswith("crash"))
    assert "—" in table(list(found.values()))


def test_a_median_of_repeated_runs_names_each_run_beside_it():
    runs = [{"workers": 1, "events_per_s": n} for n in (4_100, 5_600, 4_900)]
    pipeline = PIPELINE | {"pipeline": [{"workers": 1, "events_per_s": 4_900, "runs": runs}]}
    found = {r.measure: r for r in rows(pipeline, FANOUT, {"lost": 0, "duplicated": 0})}
    row = found["subject events, saturated, 1 worker"]
    assert (row.value, row.ratio, row.met) == (4_900, 0.98, False)
    assert row.source == "pipeline.json: median of 3 runs (4,100, 5,600, 4,900)"
    single = {r.measure: r for r in rows(PIPELINE, FANOUT, {"lost": 0, "duplicated": 0})}
    assert single["subject events, saturated, 1 worker"].source == "pipeline.json"
