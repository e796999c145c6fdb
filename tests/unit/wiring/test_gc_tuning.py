"""The worker's garbage-collector settings (``wiring.gc_tuning``, ``LIFECYCLE_GC_THRESHOLD``)."""

import gc
from collections.abc import Iterator

import pytest

from app.core.errors import ConfigError
from app.core.settings import load_settings, to_environ
from wiring import gc_tuning


@pytest.fixture(autouse=True)
def python_defaults() -> Iterator[None]:
    """Each test starts from, and gives back, the process's own settings."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_the_young_threshold_is_set_and_the_older_ones_kept():
    _, middle, old = gc.get_threshold()
    gc_tuning.tune(50_000)
    assert gc.get_threshold() == (50_000, middle, old)


def test_0_leaves_python_s_own_settings_and_freezes_nothing():
    before = gc.get_threshold()
    gc_tuning.tune(0)
    gc_tuning.freeze_startup(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_start_up_is_frozen_and_its_garbage_collected_first():
    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # type: ignore[attr-defined]  # a cycle: only the collector frees it
    del garbage
    gc_tuning.freeze_startup(50_000)
    assert gc.get_freeze_count() > 1000  # the modules, pytest and this process's objects
    assert not [o for o in gc.get_objects() if type(o) is Cycle]  # freed, not frozen


def test_the_default_is_50000():
    assert load_settings({}, env_file=None).gc_threshold == 50_000


@pytest.mark.parametrize(("raw", "value"), [("50000", 50_000), ("0", 0), ("700", 700)])
def test_the_setting_reads_from_the_environment(raw, value):
    settings = load_settings({"LIFECYCLE_GC_THRESHOLD": raw}, env_file=None)
    assert settings.gc_threshold == value
    assert load_settings(to_environ(settings), env_file=None).gc_threshold == value


def test_a_negative_threshold_is_refused_by_name():
    with pytest.raises(ConfigError, match="LIFECYCLE_GC_THRESHOLD"):
        load_settings({"LIFECYCLE_GC_THRESHOLD": "-1"}, env_file=None)
