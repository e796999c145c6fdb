"""A timer, every second: apply the rule book's live set when an approval or a rollback changed it
(``Runtime.reload_rules``), so every worker runs an approved version within seconds, without a
restart. A set that does not load is refused and the last good one stays: one bad reminder rule
never stops the warnings. Each reload, applied or refused, is an entry in the audit log."""

from __future__ import annotations

import logging
import os
import socket

from agents.common import UNAVAILABLE
from app.access.audit import AuditEntry
from topics import audit
from wiring.faust_app import app, runtime

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0
WORKER = f"worker:{socket.gethostname()}:{os.getpid()}"  # who, in the audit log


@app.timer(interval=INTERVAL_SECONDS)
async def reload_rules() -> None:
    try:
        said = await runtime().reload_rules()
    except UNAVAILABLE as exc:  # the next tick tries again
        logger.warning("cannot read the rule book: %s", type(exc).__name__)
        return
    except Exception:  # never let a bad set stop the timer: the rules in use stay
        logger.exception("reloading the rules failed; the rules in use stay")
        return
    if said is None:
        return
    refused = "refused" in said
    if refused:
        logger.error("%s", said)
        await runtime().state.count("events", "rules_refused")
    else:
        logger.info("%s", said)
    entry = AuditEntry(who=WORKER, action="rules-reload", outcome="refused" if refused else "ok",
                       client=socket.gethostname(), details={"generation": str(runtime().rules_generation),
                                                             "said": said})  # fmt: skip
    try:
        key, value = entry.to_record()
        await audit.send(key=key, value=value)
    except Exception:  # the reload happened; a lost audit line must not undo it
        logger.exception("could not write the rule reload to the audit log")
