"""A bare Faust agent that only counts: the framework's ceiling as configured.

BENCH_TOPIC=… BENCH_COUNT=… BENCH_OUT=… python -m bench.bare_faust worker -l warn
"""

from __future__ import annotations

import os
import time

import faust

from app.settings import load_settings
from lifecycle.faust_app import faust_config

settings = load_settings()
app = faust.App("bench-bare", autodiscover=False, **{k: v for k, v in faust_config(settings).items() if k != "web_port"},
                web_port=int(os.environ.get("BENCH_WEB_PORT", "6067")))  # fmt: skip
topic = app.topic(os.environ["BENCH_TOPIC"], key_serializer="raw", value_serializer="raw")
EXPECTED = int(os.environ["BENCH_COUNT"])
state = {"count": 0, "first": 0.0}


@app.agent(topic)
async def count(stream):  # type: ignore[no-untyped-def]
    async for _ in stream:
        if state["count"] == 0:
            state["first"] = time.time()
        state["count"] += 1
        if state["count"] == EXPECTED:
            with open(os.environ["BENCH_OUT"], "w") as out:
                out.write(f"{state['first']} {time.time()}\n")


if __name__ == "__main__":
    app.main()
