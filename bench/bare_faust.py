"""A bare Faust agent that only counts: the framework's ceiling as configured.

BENCH_TOPIC=… BENCH_COUNT=… BENCH_OUT=… python -m bench.bare_faust worker -l warn

It runs with the worker's Faust settings and fetch wait. For experiments, ``BENCH_FAUST`` adds
Faust settings as JSON (``'{"broker_max_poll_records": 5000}'``) and ``BENCH_TAKE=N`` counts in
batches of ``stream.take_events(N, within=0.01)`` (the README reports what they changed: nothing
measurable).
"""

from __future__ import annotations

import json
import os
import time

import faust

from app.settings import load_settings
from lifecycle.faust_app import faust_config, limit_fetch_wait

settings = load_settings()
config = {**faust_config(settings), "web_port": int(os.environ.get("BENCH_WEB_PORT", "6067")),
          **json.loads(os.environ.get("BENCH_FAUST", "{}"))}  # fmt: skip
app = faust.App("bench-bare", autodiscover=False, **config)
limit_fetch_wait(settings.fetch_max_wait_ms)
BATCH = int(os.environ.get("BENCH_TAKE", "0"))
topic = app.topic(os.environ["BENCH_TOPIC"], key_serializer="raw", value_serializer="raw")
EXPECTED = int(os.environ["BENCH_COUNT"])
state = {"count": 0, "first": 0.0}


@app.agent(topic)
async def count(stream):  # type: ignore[no-untyped-def]
    if BATCH:
        async for batch in stream.take_events(BATCH, within=0.01):
            seen(len(batch))
    else:
        async for _ in stream:
            seen(1)


def seen(n: int) -> None:
    if state["count"] == 0:
        state["first"] = time.time()
    state["count"] += n
    if state["count"] == EXPECTED:
        with open(os.environ["BENCH_OUT"], "w") as out:
            out.write(f"{state['first']} {time.time()}\n")


if __name__ == "__main__":
    app.main()
