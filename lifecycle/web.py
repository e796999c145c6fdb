"""The worker's web pages for operators (Faust's web server, LIFECYCLE_WEB_PORT).

GET /stats/   counters: events received, rejected, notifications planned; per rule and
              outcome (sent, failed)
GET /health/  200 while Redis answers, 503 otherwise
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from lifecycle.faust_app import app, runtime


@app.page("/stats/")
async def stats(self: Any, request: Any) -> Any:
    state = runtime().state
    rules: dict[str, dict[str, int]] = {}
    for key, value in (await state.counters("rules")).items():
        rule, _, outcome = key.rpartition(":")
        rules.setdefault(rule, {})[outcome] = value
    return self.json({"events": await state.counters("events"), "rules": rules})


@app.page("/health/")
async def health(self: Any, request: Any) -> Any:
    try:
        await runtime().redis.ping()
    except (RedisError, OSError) as exc:
        return self.json({"redis": f"unavailable: {type(exc).__name__}"}, status=503)
    return self.json({"redis": "ok"})
