"""mode's CompositeLogger patched (``wiring.faust_patches.quiet_log``): a level that is off
formats nothing; a level that is on gives the same record as mode's own ``log``."""

from __future__ import annotations

import logging

import pytest
from mode.utils.logging import CompositeLogger

from wiring.faust_patches import quiet_log


@pytest.fixture
def patched():
    before = CompositeLogger.log
    CompositeLogger.log = quiet_log.ORIGINAL  # type: ignore[method-assign]
    quiet_log.log_only_when_enabled()
    yield
    CompositeLogger.log = before  # type: ignore[method-assign]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def composite(name: str, level: int, formatted: list[str]) -> tuple[CompositeLogger, Records]:
    logger = logging.getLogger(f"test.quiet_log.{name}")
    logger.setLevel(level)
    logger.propagate = False
    handler = Records()
    logger.handlers[:] = [handler]

    def formatter(severity: int, message: str, *args: object, **kwargs: object) -> str:
        formatted.append(message)
        return f"[service] {message}"

    return CompositeLogger(logger, formatter), handler


def emit(log: CompositeLogger) -> None:
    log.debug("%r yielded: %r", "agent", "planned")  # the line a record names


def test_a_level_that_is_off_is_not_formatted(patched) -> None:
    formatted: list[str] = []
    log, handler = composite("off", logging.INFO, formatted)
    emit(log)
    assert formatted == [] and handler.records == []
    log.info("kept %s", 1)
    assert formatted == ["kept %s"]
    assert [r.getMessage() for r in handler.records] == ["[service] kept 1"]


def test_a_level_that_is_on_gives_mode_s_own_record(patched) -> None:
    got: list[str] = []
    log, handler = composite("on", logging.DEBUG, got)
    emit(log)
    CompositeLogger.log = quiet_log.ORIGINAL  # type: ignore[method-assign]
    want: list[str] = []
    log_before, handler_before = composite("on-before", logging.DEBUG, want)
    emit(log_before)
    [ours], [theirs] = handler.records, handler_before.records
    assert got == want == ["%r yielded: %r"]
    assert ours.getMessage() == theirs.getMessage() == "[service] 'agent' yielded: 'planned'"
    assert (ours.funcName, ours.lineno, ours.levelno) == (
        theirs.funcName,
        theirs.lineno,
        theirs.levelno,
    )
    assert ours.funcName == "emit"


def test_patching_twice_is_patching_once(patched) -> None:
    once = CompositeLogger.log
    quiet_log.log_only_when_enabled()
    assert CompositeLogger.log is once
