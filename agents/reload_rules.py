"""A timer, every second: apply the rule book's live set when an approval or a rollback changed it
(``Runtime.reload_rules``), so every worker runs an approved version within seconds, without a
restart. A set that does not load is refused and the last good one stays: one bad reminder rule
never stops the warnings."""

from __future__ import annotations

import logging

from agents.common import UNAVAILABLE
from wiring.faust_app import app, runtime

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 1.0


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
    if "refused" in said:
        logger.error("%s", said)
        await runtime().state.count("events", "rules_refused")
    else:
        logger.info("%s", said)
