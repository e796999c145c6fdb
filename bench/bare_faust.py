"""A bare Faust agent that only counts: the framework's ceiling.

BENCH_TOPIC=… BENCH_COUNT=… BENCH_OUT=… [BENCH_FAUST_MODE=default] python -m bench.bare_faust worker -l warn

``BENCH_FAUST_MODE`` says which Faust:

- ``worker`` (the default): as ``lifecycle worker`` runs it — its Faust settings and fetch wait,
  the batched drain loop and lean monitor of ``wiring.faust_app``, and its event loop
  (``LIFECYCLE_EVENT_LOOP``);
- ``default``: Faust out of the box — only the broker, the web port and reading from the
  earliest offset are set.

For experiments, ``BENCH_ROOM=0`` and ``BENCH_RAW=0`` leave out the conductor and the decode
patches (``wiring.faust_patches``) in ``worker`` mode, ``BENCH_FAUST`` adds Faust settings as JSON (``'{"broker_max_poll_records":
5000}'``) and ``BENCH_TAKE=N`` counts in batches of ``stream.take_events(N, within=0.01)``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import faust
import uvloop

from app.core.settings import load_settings
from wiring.faust_app import faust_config
from wiring.faust_patches import (
    decode_raw_directly,
    drain_in_batches,
    limit_fetch_wait,
    wait_for_room,
)

settings = load_settings()
web_port = int(os.environ.get("BENCH_WEB_PORT", "6067"))
if os.environ.get("BENCH_FAUST_MODE", "worker") == "worker":
    config = {**faust_config(settings), "web_port": web_port}
    limit_fetch_wait(settings.fetch_max_wait_ms)
    drain_in_batches()
    if os.environ.get("BENCH_ROOM", "1") == "1":
        wait_for_room()
    if os.environ.get("BENCH_RAW", "1") == "1":
        decode_raw_directly()
    if settings.event_loop == "uvloop":
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
else:
    config = {"broker": settings.kafka_url, "web_port": web_port,
              "consumer_auto_offset_reset": "earliest"}  # fmt: skip
config.update(json.loads(os.environ.get("BENCH_FAUST", "{}")))
app = faust.App(os.environ.get("BENCH_APP", "bench-bare"), autodiscover=False, **config)
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
