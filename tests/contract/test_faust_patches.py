"""The patches of Faust internals (wiring/faust_patches/) hold only for the Faust they copy: this
fails when the installed faust-streaming differs from the pin or when a patched function changed
shape, so that someone reads the patch again before it runs on code it was not written for."""

from __future__ import annotations

import hashlib
import inspect
import re
import tomllib
from importlib.metadata import version

import pytest
from faust.sensors import Monitor
from mode.utils.queues import FlowControlQueue

from app.core.errors import ConfigError
from app.core.settings import PROJECT_ROOT
from wiring import faust_patches
from wiring.faust_patches import (
    FAUST_VERSION,
    check_version,
    conductor,
    decode,
    drain,
    fetch_wait,
    monitor,
    quiet_log,
    take,
)


def sha256_of_source(function: object) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()  # type: ignore[arg-type]


def test_the_installed_faust_is_the_pinned_one():
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [pin] = [d for d in pyproject["project"]["dependencies"] if d.startswith("faust-streaming")]
    assert (
        re.fullmatch(r"faust-streaming==([\d.]+)", pin.split(";")[0].strip()).group(1)
        == FAUST_VERSION
    )
    assert version("faust-streaming") == FAUST_VERSION


def test_the_drain_loop_copied_is_still_faust_s():
    assert sha256_of_source(drain.ORIGINAL) == drain.ORIGINAL_SHA256
    assert list(inspect.signature(drain.ORIGINAL).parameters) == ["self", "fetcher"]


def test_the_handler_factory_wrapped_is_still_faust_s_and_the_drop_signal_still_mode_s():
    assert sha256_of_source(conductor.ORIGINAL) == conductor.ORIGINAL_SHA256
    assert list(inspect.signature(conductor.ORIGINAL).parameters) == ["self", "tp", "channels"]
    assert sha256_of_source(conductor.DROP_SIGNAL) == conductor.DROP_SIGNAL_SHA256
    # ``drained`` counts on a reader that finds the queue empty to give the signal
    assert "self.maybe_endorse_pressure_drop()" in inspect.getsource(FlowControlQueue.get)


def test_the_decoder_factory_wrapped_is_still_faust_s():
    assert sha256_of_source(decode.ORIGINAL) == decode.ORIGINAL_SHA256
    params = ["self", "app", "on_key_decode_error", "on_value_decode_error", "default_propagate"]
    assert list(inspect.signature(decode.ORIGINAL).parameters) == params


def test_the_take_loop_copied_is_still_faust_s():
    assert sha256_of_source(take.ORIGINAL) == take.ORIGINAL_SHA256
    assert list(inspect.signature(take.ORIGINAL).parameters) == ["self", "max_", "within"]


def test_the_log_method_copied_is_still_mode_s():
    assert sha256_of_source(quiet_log.ORIGINAL) == quiet_log.ORIGINAL_SHA256
    params = ["self", "severity", "message", "args", "kwargs"]
    assert list(inspect.signature(quiet_log.ORIGINAL).parameters) == params


def test_the_consumer_factory_wrapped_still_sets_the_fetch_wait_it_overrides():
    assert sha256_of_source(fetch_wait.ORIGINAL) == fetch_wait.ORIGINAL_SHA256
    assert list(inspect.signature(fetch_wait.ORIGINAL).parameters) == ["self", "transport"]
    assert "fetch_max_wait_ms=1500" in inspect.getsource(fetch_wait.ORIGINAL)


@pytest.mark.parametrize("method", sorted(monitor.ORIGINAL_SHA256))
def test_the_monitor_methods_overridden_are_still_faust_s(method):
    original = getattr(Monitor, method)
    assert sha256_of_source(original) == monitor.ORIGINAL_SHA256[method]
    lean = getattr(monitor.LeanMonitor, method)
    assert list(inspect.signature(lean).parameters) == list(inspect.signature(original).parameters)


def test_the_stall_detector_still_reads_what_the_lean_monitor_keeps():
    from faust.transport.drivers import aiokafka

    assert "stream_inbound_time" in inspect.getsource(aiokafka)


def test_another_faust_version_is_refused_with_what_to_do():
    check_version(FAUST_VERSION)
    with pytest.raises(ConfigError) as refused:
        check_version("0.16.0")
    message = str(refused.value)
    assert "faust-streaming 0.16.0 is installed" in message
    assert f"faust-streaming=={FAUST_VERSION}" in message
    assert "wiring/faust_patches/" in message


def test_a_worker_checks_the_version_before_patching(monkeypatch):
    monkeypatch.setattr(faust_patches, "version", lambda name: "0.11.0")
    applied = []
    monkeypatch.setattr(faust_patches, "drain_in_batches", lambda: applied.append("drain"))
    with pytest.raises(ConfigError, match="0.11.0 is installed"):
        faust_patches.install(100)
    assert applied == []
