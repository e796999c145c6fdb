"""The worker's garbage collector, set for a service that allocates many short-lived objects.

Python frees almost every object by reference counting; its cyclic collector only finds cycles,
of which the worker makes few. Yet it runs a young collection every 700 allocations (net of
frees), and every tenth of those a middle one, every tenth of those (when the heap grew by a
quarter) a full one that walks every object alive: Faust's app, the rules, the templates, the
modules. A fan-out recipient allocates a few hundred containers (dicts, lists, dataclasses,
futures): in one process (``bench.plan_chunk``, 20,000 recipients' profiles loaded, planned and
delivered) 2,164 collections, 29 µs a recipient over the run; with the two settings here 10, and
a recipient's CPU 86 → 73 µs (a fan-out's worker, end to end: 111 → 89 µs):

- the young generation's threshold, ``LIFECYCLE_GC_THRESHOLD`` (50,000 by default; ``0`` leaves
  Python's own settings, and skips the freeze below: to measure what this changes);
- ``gc.freeze()`` once the worker is ready: what start-up built (it stays for the process's
  life) moves out of the collector's view, so that a full collection no longer walks it.

The cost: cyclic garbage waits for up to 50,000 allocations instead of 700 before it is freed
(a few MB at most, measured as the worker's peak memory in the benchmarks); a cycle among the
frozen objects that becomes garbage later is never freed (start-up objects live as long as the
process).
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)


def tune(threshold: int) -> None:
    """The young generation's threshold (0: Python's own settings, left as they are)."""
    if threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(threshold, middle, old)


def freeze_startup(threshold: int) -> None:
    """Collect what start-up left as garbage, then take the survivors out of the collector's
    view (nothing when ``threshold`` is 0)."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    logger.info("garbage collector: %d start-up objects frozen, young threshold %d",
                gc.get_freeze_count(), gc.get_threshold()[0])  # fmt: skip
