"""Patch: a Faust service's log call for a level that is off returns at once.

Faust's services log through mode's ``CompositeLogger``, whose ``log`` formats the message (the
service's name and state put in front of it) *before* ``logging`` decides whether the level is
on. ``Agent._slurp`` logs ``"%r yielded: %r"`` at DEBUG for every value an agent yields: one
per event or notification, formatted and then dropped. Measured: 1.7 % of a saturated worker's
samples on subject events (py-spy, ``bench.profile``). Here ``log`` asks the logger first; when
the level is on, it does exactly what mode 0.7.1's ``CompositeLogger.log`` does, so a record is
the same, its caller (``stacklevel``) included.
"""

from __future__ import annotations

from typing import Any

from mode.utils import logging as mode_logging
from mode.utils.logging import CompositeLogger

ORIGINAL = CompositeLogger.log  # as mode ships it, kept before patching
# SHA-256 of ``inspect.getsource(ORIGINAL)`` in mode-streaming 0.7.1 (faust-streaming 0.15.3's)
ORIGINAL_SHA256 = "04776bdb461b1905df2a141ece5f36c4933161b55ff6aed2e91b0efe053336bd"


def log_only_when_enabled() -> None:
    if getattr(CompositeLogger.log, "checks_level", False):
        return

    def log(self: Any, severity: int, message: str, *args: Any, **kwargs: Any) -> None:
        if not self.logger.isEnabledFor(severity):  # the patch
            return
        if mode_logging.HAS_STACKLEVEL:
            kwargs.setdefault("stacklevel", 2)
        self.logger.log(severity, self.format(severity, message, *args, **kwargs), *args, **kwargs)

    log.checks_level = True  # type: ignore[attr-defined]
    CompositeLogger.log = log  # type: ignore[method-assign]
